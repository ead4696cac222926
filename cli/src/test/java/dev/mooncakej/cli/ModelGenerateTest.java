package dev.mooncakej.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.gguf.GgmlType;
import dev.mooncakej.engine.gguf.GgufFile;
import dev.mooncakej.engine.gguf.GgufTensor;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * {@code model generate --quant}: a Q4_K_M file mixes Q4_K with Q6_K the way llama.cpp's does, and a
 * quantization the engine does not read is refused by name with the ones it does.
 */
class ModelGenerateTest {
    @TempDir
    Path dir;

    @Test
    void q4KmMixesQ4KWithQ6KAndAnUnknownQuantIsRefusedByName() throws Exception {
        Path out = dir.resolve("k.gguf");
        int exit = new CommandLine(new MooncakeCli())
                .execute("model", "generate", "--preset", "tiny-k", "--quant", "q4_k_m", "--out", out.toString());
        assertThat(exit).isZero();
        try (GgufFile f = GgufFile.open(out)) {
            Map<String, GgmlType> types =
                    f.tensors().values().stream().collect(Collectors.toMap(GgufTensor::name, GgufTensor::type));
            assertThat(types.get("blk.0.attn_q.weight")).isEqualTo(GgmlType.Q4_K);
            assertThat(types.get("output.weight")).isEqualTo(GgmlType.Q6_K);
            assertThat(types.get("blk.1.ffn_down.weight"))
                    .as("last layer: more bits")
                    .isEqualTo(GgmlType.Q6_K);
            assertThat(types.get("blk.0.ffn_down.weight")).isEqualTo(GgmlType.Q4_K);
        }

        PrintStream old = System.err;
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        try {
            exit = new CommandLine(new MooncakeCli())
                    .execute(
                            "model",
                            "generate",
                            "--quant",
                            "q3_k_m",
                            "--out",
                            dir.resolve("x.gguf").toString());
        } finally {
            System.setErr(old);
        }
        assertThat(exit).isNotZero();
        assertThat(err.toString(StandardCharsets.UTF_8)).contains("'q3_k_m'").contains("q4_k_m");
        assertThat(Files.exists(dir.resolve("x.gguf"))).isFalse();
    }
}
