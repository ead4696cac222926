package dev.mooncakej.engine.llama;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.engine.gguf.GgufFile;
import dev.mooncakej.engine.gguf.GgufFormatException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Which Llama-family variants load: Qwen3 (per-head Q/K norm, head width apart from the embedding) and
 * Llama 3.1 (rope_freqs) do; mixture-of-experts and sliding-window files are refused by name, in the
 * engine and in {@code model info}'s check alike. Agreement of the ones that load with llama.cpp is in
 * LlamaCppAgreementTest.
 */
class ArchitectureSupportTest {
    @TempDir
    Path dir;

    @Test
    void qwen3ReadsItsQkNormsAndHeadWidth() throws Exception {
        Path model = dir.resolve("qwen3.gguf");
        ModelGenerator.generate(
                ModelGenerator.preset(ModelGenerator.Preset.TINY)
                        .withArchitecture("qwen3")
                        .withHeadDim(32),
                model);
        try (GgufFile f = GgufFile.open(model)) {
            LlamaConfig c = LlamaConfig.from(f);
            assertThat(c.qkNorm()).isTrue();
            assertThat(c.qkvBias()).isFalse();
            assertThat(c.ropeNeox()).isTrue();
            assertThat(c.headDim()).isEqualTo(32);
            assertThat(c.qDim()).isEqualTo(128).isNotEqualTo(c.embedding());
            LlamaWeights w = new LlamaWeights(f, c);
            assertThat(w.qNorm[1]).hasSize(32);
            assertThat(w.kNorm[0]).hasSize(32);
        }
        assertThat(ModelCheck.check(model).problems()).isEmpty();
    }

    @Test
    void llama31FileCarriesItsRopeFrequencyDivisors() throws Exception {
        Path model = dir.resolve("llama31.gguf");
        ModelGenerator.generate(
                ModelGenerator.preset(ModelGenerator.Preset.TINY).withRopeScaling("llama3"), model);
        try (GgufFile f = GgufFile.open(model)) {
            LlamaWeights w = new LlamaWeights(f, LlamaConfig.from(f));
            assertThat(w.ropeFreqFactors).hasSize(8);
            assertThat(w.ropeFreqFactors[0]).as("short wavelengths kept").isEqualTo(1f);
            assertThat(w.ropeFreqFactors[7])
                    .as("long wavelengths divided by the factor")
                    .isEqualTo(8f);
            assertThat(w.ropeFreqFactors[1]).as("smoothed between").isStrictlyBetween(1f, 8f);
        }
    }

    @Test
    void mixtureOfExpertsIsRefusedByName() {
        Path model = dir.resolve("moe.gguf");
        ModelGenerator.generate(
                ModelGenerator.preset(ModelGenerator.Preset.TINY),
                model,
                w -> w.putU32("llama.expert_count", 8).putU32("llama.expert_used_count", 2));
        assertRefused(
                model, "llama.expert_count", "mixture-of-experts models are not supported (llama.expert_count = 8)");
    }

    @Test
    void slidingWindowAttentionIsRefusedByName() {
        Path model = dir.resolve("swa.gguf");
        ModelGenerator.generate(
                ModelGenerator.preset(ModelGenerator.Preset.TINY).withArchitecture("qwen2"),
                model,
                w -> w.putU32("qwen2.attention.sliding_window", 4096));
        assertRefused(model, "qwen2.attention.sliding_window", "sliding-window attention is not supported");
    }

    @Test
    void differentKeyAndValueHeadWidthsAreRefused() {
        Path model = dir.resolve("kv-widths.gguf");
        ModelGenerator.generate(
                ModelGenerator.preset(ModelGenerator.Preset.TINY),
                model,
                w -> w.putU32("llama.attention.key_length", 16).putU32("llama.attention.value_length", 32));
        assertRefused(model, "llama.attention.value_length", "different key and value head sizes are not supported");
    }

    @Test
    void anUnknownPreTokenizerIsRefusedByName() {
        Path model = dir.resolve("tekken.gguf");
        ModelGenerator.generate(
                ModelGenerator.preset(ModelGenerator.Preset.TINY),
                model,
                w -> w.putString("tokenizer.ggml.pre", "tekken"));
        ModelCheck.Report r = ModelCheck.check(model);
        assertThat(r.loads()).isFalse();
        assertThat(r.problems())
                .anySatisfy(p -> assertThat(p)
                        .contains("tokenizer.ggml.pre")
                        .contains("pre-tokenizer 'tekken' is not supported"));
    }

    private static void assertRefused(Path model, String key, String why) {
        assertThatThrownBy(() -> {
                    try (GgufFile f = GgufFile.open(model)) {
                        LlamaConfig.from(f);
                    }
                })
                .isInstanceOf(GgufFormatException.class)
                .hasMessageContaining(key)
                .hasMessageContaining(why);
        ModelCheck.Report r = ModelCheck.check(model);
        assertThat(r.loads()).isFalse();
        assertThat(r.problems()).anySatisfy(p -> assertThat(p).contains(key).contains(why));
    }
}
