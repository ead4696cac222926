package dev.mooncakej.engine.tensor;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.generate.Quantizer;
import dev.mooncakej.engine.gguf.GgmlType;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * K-quant rows written by the generator read back close to what was written, each type within the
 * error its bits allow (relative RMS), and a row's dequantized values do not depend on the row next to
 * it. That the layout is ggml's is shown against llama.cpp (LlamaCppAgreementTest).
 */
class KQuantsTest {
    @ParameterizedTest(name = "{0}")
    @CsvSource({"Q4_K, 0.12", "Q5_K, 0.06", "Q6_K, 0.035"})
    void rowsReadBackWithinTheirTypesError(GgmlType type, double bound) {
        int rows = 3, cols = 512;
        float[] v = new float[rows * cols];
        SplittableRandom rnd = new SplittableRandom(17);
        for (int i = 0; i < v.length; i++) v[i] = (float) (rnd.nextGaussian() * (1 + (i / 64) % 5));
        byte[] bytes = Quantizer.encode(v, type);
        assertThat((long) bytes.length).isEqualTo(type.byteSize(v.length));
        WeightMatrix w = new WeightMatrix("w", type, MemorySegment.ofArray(bytes), rows, cols);
        float[] out = new float[rows * cols];
        for (int r = 0; r < rows; r++) w.dequantizeRow(r, out, r * cols);
        double err = 0, norm = 0;
        for (int i = 0; i < v.length; i++) {
            err += (out[i] - v[i]) * (out[i] - v[i]);
            norm += v[i] * v[i];
        }
        double rel = Math.sqrt(err / norm);
        System.out.printf("%s: relative RMS error %.4f%n", type, rel);
        assertThat(rel).as("relative RMS error of %s", type).isLessThan(bound).isGreaterThan(0);
        float[] alone = new float[cols];
        new WeightMatrix(
                        "w1",
                        type,
                        MemorySegment.ofArray(bytes).asSlice(type.byteSize(cols), type.byteSize(cols)),
                        1,
                        cols)
                .dequantizeRow(0, alone, 0);
        for (int i = 0; i < cols; i++) assertThat(alone[i]).isEqualTo(out[cols + i]);
    }
}
