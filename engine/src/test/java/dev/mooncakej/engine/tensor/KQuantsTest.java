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
    @CsvSource({
        "Q2_K, 0.6",
        "Q3_K, 0.3",
        "Q4_K, 0.12",
        "Q5_K, 0.06",
        "Q6_K, 0.035",
        "Q4_1, 0.12",
        "Q5_0, 0.06",
        "Q5_1, 0.06"
    })
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

    /** The Vector API dequantization equals the scalar reference bit for bit, on rows of several blocks. */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"Q4_K", "Q5_K", "Q6_K"})
    void vectorDequantizationEqualsTheScalarReference(GgmlType type) {
        int cols = 1024;
        float[] v = new float[cols];
        SplittableRandom rnd = new SplittableRandom(29);
        for (int i = 0; i < v.length; i++) v[i] = (float) (rnd.nextGaussian() * (1 + (i / 32) % 7) - 0.3);
        MemorySegment m = MemorySegment.ofArray(Quantizer.encode(v, type));
        float[] vec = new float[cols + 3], ref = new float[cols + 3];
        switch (type) {
            case Q4_K -> {
                KQuantsVector.dequantizeQ4K(m, 0, cols, vec, 3);
                KQuants.dequantizeQ4K(m, 0, cols, ref, 3);
            }
            case Q5_K -> {
                KQuantsVector.dequantizeQ5K(m, 0, cols, vec, 3);
                KQuants.dequantizeQ5K(m, 0, cols, ref, 3);
            }
            default -> {
                KQuantsVector.dequantizeQ6K(m, 0, cols, vec, 3);
                KQuants.dequantizeQ6K(m, 0, cols, ref, 3);
            }
        }
        for (int i = 0; i < vec.length; i++) {
            assertThat(Float.floatToRawIntBits(vec[i]))
                    .as("%s value %d: vector %s, scalar %s", type, i, vec[i], ref[i])
                    .isEqualTo(Float.floatToRawIntBits(ref[i]));
        }
    }

    /**
     * The fused decode dot products (Q4_K, Q6_K) equal the batched path (the row dequantized, then
     * {@link WeightMatrix#dot(float[], int, float[], int, int)}) bit for bit, so continuous batching
     * stays exact with them.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"Q4_K", "Q6_K"})
    void fusedDotEqualsTheBatchedPath(GgmlType type) {
        int rows = 4, cols = 768;
        SplittableRandom rnd = new SplittableRandom(31);
        float[] v = new float[rows * cols], x = new float[2 * cols];
        for (int i = 0; i < v.length; i++) v[i] = (float) (rnd.nextGaussian() * (1 + (i / 48) % 3));
        for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
        WeightMatrix w = new WeightMatrix("w", type, MemorySegment.ofArray(Quantizer.encode(v, type)), rows, cols);
        assertThat(w.fusedDot()).isTrue();
        PreparedInput in = new PreparedInput(2, cols).prepare(w.inputKind(), x, 2, cols);
        float[] row = new float[cols];
        for (int o = 0; o < rows; o++) {
            w.dequantizeRow(o, row, 0);
            for (int r = 0; r < 2; r++) {
                float batched = WeightMatrix.dot(row, 0, in.values, r * cols, cols);
                assertThat(Float.floatToRawIntBits(w.dot(o, in, r)))
                        .as("%s row %d input %d: fused vs batched %s", type, o, r, batched)
                        .isEqualTo(Float.floatToRawIntBits(batched));
            }
        }
    }
}
