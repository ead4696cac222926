package dev.mooncakej.engine;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.engine.gguf.GgmlType;
import dev.mooncakej.engine.gguf.GgufFile;
import dev.mooncakej.engine.gguf.GgufTensor;
import dev.mooncakej.engine.llama.LlamaEngine;
import dev.mooncakej.engine.sampling.Sampler;
import dev.mooncakej.engine.spi.DecodeBatch;
import dev.mooncakej.engine.spi.PrefillOptions;
import dev.mooncakej.engine.spi.Sequence;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The built-in engine against llama.cpp, a reference no one here wrote, on generated models:
 * tokenization, next-token log-probabilities at every prompt position (teacher forcing) over the whole
 * vocabulary, and greedy continuations.
 */
@Timeout(value = 10, unit = TimeUnit.MINUTES)
class LlamaCppAgreementTest {
    private static final int CONTINUATION = 32;

    @TempDir
    static Path dir;

    @Test
    void llamaF32MatchesLlamaCppTokensLogprobsAndGreedyTokens() throws Exception {
        Path model = dir.resolve("tiny-llama-f32.gguf");
        ModelGenerator.generate(ModelGenerator.preset(ModelGenerator.Preset.TINY), model);
        assertExactAgreement(model);
    }

    @Test
    void qwen2F32WithQkvBiasAndNeoxRopeMatchesLlamaCpp() throws Exception {
        Path model = dir.resolve("tiny-qwen2-f32.gguf");
        ModelGenerator.generate(
                ModelGenerator.preset(ModelGenerator.Preset.TINY)
                        .withArchitecture("qwen2")
                        .withSeed(7),
                model);
        assertExactAgreement(model);
    }

    /**
     * Qwen3: no biases, NeoX RoPE, and each head of Q and K RMS-normed with its own weight before RoPE;
     * heads 32 wide on a 64-wide model, so Q is wider than the embedding as in Qwen3's real files.
     */
    @Test
    void qwen3WithQkNormMatchesLlamaCpp() throws Exception {
        Path model = dir.resolve("tiny-qwen3-f32.gguf");
        ModelGenerator.generate(
                ModelGenerator.preset(ModelGenerator.Preset.TINY)
                        .withArchitecture("qwen3")
                        .withHeadDim(32)
                        .withSeed(17),
                model);
        assertExactAgreement(model);
    }

    /**
     * Llama 3.1's RoPE frequency scaling (rope_freqs.weight), equal to llama.cpp; and the same weights
     * without the divisors give other numbers, so the agreement shows the scaling is applied.
     */
    @Test
    void llama31RopeScalingMatchesLlamaCpp() throws Exception {
        ModelGenerator.Spec spec =
                ModelGenerator.preset(ModelGenerator.Preset.TINY).withSeed(19);
        Path scaled = dir.resolve("tiny-llama31-f32.gguf");
        Path plain = dir.resolve("tiny-llama31-unscaled-f32.gguf");
        ModelGenerator.generate(spec.withRopeScaling("llama3"), scaled);
        ModelGenerator.generate(spec, plain);
        assertExactAgreement(scaled);
        String prompt = TestPrompts.TWENTY.get(0);
        try (LlamaEngine a = new LlamaEngine(LlamaEngine.Config.of(scaled));
                LlamaEngine b = new LlamaEngine(LlamaEngine.Config.of(plain))) {
            int[] tokens = a.tokenizer().encode(prompt);
            float[][] withScaling = teacherForcedLogprobs(a, tokens);
            float[][] without = teacherForcedLogprobs(b, tokens);
            double most = 0;
            for (int i = 0; i < tokens.length; i++) {
                for (int t = 0; t < withScaling[i].length; t++)
                    most = Math.max(most, Math.abs(withScaling[i][t] - without[i][t]));
            }
            assertThat(most).as("largest logprob change the divisors make").isGreaterThan(1e-2);
        }
    }

    @Test
    void tiedOutputWeightsMatchLlamaCpp() throws Exception {
        Path model = dir.resolve("tiny-tied-f32.gguf");
        ModelGenerator.generate(
                ModelGenerator.preset(ModelGenerator.Preset.TINY)
                        .withTiedOutput(true)
                        .withSeed(11),
                model);
        assertExactAgreement(model);
    }

    @Test
    void sentencePieceTokenizerMatchesLlamaCpp() throws Exception {
        Path model = dir.resolve("tiny-spm-f32.gguf");
        ModelGenerator.generate(
                ModelGenerator.preset(ModelGenerator.Preset.TINY)
                        .withTokenizer("llama")
                        .withSeed(5),
                model);
        assertExactAgreement(model);
    }

    @Test
    void q8SmallModelStaysCloseToLlamaCpp() throws Exception {
        Path model = dir.resolve("small-q8.gguf");
        ModelGenerator.generate(ModelGenerator.preset(ModelGenerator.Preset.SMALL), model);
        assertClose(model, "Q8_0");
    }

    @ParameterizedTest
    @ValueSource(strings = {"F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1"})
    void otherWeightTypesStayCloseToLlamaCpp(String type) throws Exception {
        Path model = dir.resolve("tiny-" + type + ".gguf");
        ModelGenerator.generate(
                ModelGenerator.preset(ModelGenerator.Preset.TINY)
                        .withWeightType(GgmlType.valueOf(type))
                        .withSeed(3),
                model);
        assertClose(model, type);
    }

    /**
     * The K-quants people download, on a 256-wide model (every row a whole number of super-blocks):
     * Q4_K_M and Q5_K_M (with Q6_K for the output and some attn_v and ffn_down, as llama.cpp mixes
     * them) and Q6_K, each close to llama.cpp reading the same file.
     */
    @ParameterizedTest
    @ValueSource(strings = {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"})
    void kQuantModelsStayCloseToLlamaCpp(String type) throws Exception {
        Path model = dir.resolve("tiny-k-" + type + ".gguf");
        GgmlType t = GgmlType.valueOf(type);
        boolean mixed = t == GgmlType.Q4_K || t == GgmlType.Q5_K;
        ModelGenerator.generate(
                ModelGenerator.preset(ModelGenerator.Preset.TINY_K)
                        .withWeightType(t)
                        .withSeed(9),
                model);
        try (GgufFile f = GgufFile.open(model)) {
            Map<GgmlType, Long> types = f.tensors().values().stream()
                    .collect(Collectors.groupingBy(GgufTensor::type, Collectors.counting()));
            assertThat(types).as("tensor types of %s", model.getFileName()).containsKey(t);
            if (mixed) assertThat(types).as("the _M mix").containsKey(GgmlType.Q6_K);
            assertThat(types).as("no fallback to Q8_0 on a 256-wide model").doesNotContainKey(GgmlType.Q8_0);
        }
        assertClose(model, type + (mixed ? "_M" : ""));
    }

    /** Quantized weights: llama.cpp also rounds or quantizes activations, so small differences are expected. */
    private static void assertClose(Path model, String type) throws Exception {
        List<LlamaCppReference.Result> ref = LlamaCppReference.run(model, TestPrompts.TWENTY, CONTINUATION, true);
        try (LlamaEngine engine = new LlamaEngine(LlamaEngine.Config.of(model))) {
            double diffSum = 0;
            int diffCount = 0, agree = 0, steps = 0;
            for (int p = 0; p < ref.size(); p++) {
                int[] tokens = engine.tokenizer().encode(TestPrompts.TWENTY.get(p));
                assertThat(tokens)
                        .as("tokens of prompt %d", p)
                        .containsExactly(ref.get(p).tokens());
                float[][] ours = teacherForcedLogprobs(engine, tokens);
                float[][] theirs = ref.get(p).logprobs();
                for (int i = 0; i < tokens.length; i++) {
                    for (int t : topK(theirs[i], 10)) {
                        diffSum += Math.abs(ours[i][t] - theirs[i][t]);
                        diffCount++;
                    }
                    steps++;
                    if (argmax(ours[i]) == argmax(theirs[i])) agree++;
                }
                int[] greedy = greedy(engine, tokens, CONTINUATION);
                int[] refGreedy = ref.get(p).greedy();
                for (int i = 0; i < Math.min(greedy.length, refGreedy.length); i++) {
                    steps++;
                    if (greedy[i] == refGreedy[i]) agree++;
                    else break; // after a divergence the contexts differ; count the diverging step only
                }
            }
            double meanDiff = diffSum / diffCount;
            double agreement = (double) agree / steps;
            System.out.printf(
                    type + " vs llama.cpp: mean |dlogprob| over top-10 = %.4f, greedy agreement = %.3f over %d steps%n",
                    meanDiff,
                    agreement,
                    steps);
            assertThat(meanDiff)
                    .as("mean |logprob difference| over each position's top-10")
                    .isLessThanOrEqualTo(0.05);
            assertThat(agreement).as("share of greedy steps that agree").isGreaterThanOrEqualTo(0.95);
        }
    }

    private static void assertExactAgreement(Path model) throws Exception {
        List<LlamaCppReference.Result> ref = LlamaCppReference.run(model, TestPrompts.TWENTY, CONTINUATION, true);
        try (LlamaEngine engine = new LlamaEngine(LlamaEngine.Config.of(model))) {
            double worst = 0;
            for (int p = 0; p < ref.size(); p++) {
                String prompt = TestPrompts.TWENTY.get(p);
                int[] tokens = engine.tokenizer().encode(prompt);
                assertThat(tokens)
                        .as("token ids of prompt %d %s", p, prompt)
                        .containsExactly(ref.get(p).tokens());
                assertThat(engine.tokenizer().decode(tokens))
                        .as("round trip of prompt %d", p)
                        .isEqualTo(prompt);
                float[][] ours = teacherForcedLogprobs(engine, tokens);
                float[][] theirs = ref.get(p).logprobs();
                assertThat(ours.length).isEqualTo(theirs.length);
                for (int i = 0; i < ours.length; i++) {
                    for (int t = 0; t < ours[i].length; t++) {
                        if (theirs[i][t] < -80f) { // llama.cpp's probability underflowed float32
                            assertThat(ours[i][t])
                                    .as("prompt %d position %d token %d", p, i, t)
                                    .isLessThan(-70f);
                            continue;
                        }
                        double d = Math.abs(ours[i][t] - theirs[i][t]);
                        worst = Math.max(worst, d);
                        assertThat(d)
                                .as(
                                        "|logprob difference| prompt %d position %d token %d (ours %f, llama.cpp %f)",
                                        p, i, t, ours[i][t], theirs[i][t])
                                .isLessThanOrEqualTo(1e-4);
                    }
                }
                assertThat(greedy(engine, tokens, CONTINUATION))
                        .as("greedy continuation of prompt %d", p)
                        .containsExactly(ref.get(p).greedy());
            }
            System.out.printf(
                    "%s vs llama.cpp: worst |dlogprob| = %.2e over 20 prompts x whole vocabulary%n",
                    model.getFileName(), worst);
        }
    }

    static float[][] teacherForcedLogprobs(LlamaEngine engine, int[] tokens) {
        int vocab = engine.info().vocabSize();
        float[][] out = new float[tokens.length][];
        Sequence seq = engine.newSequence();
        try {
            engine.prefill(
                    seq,
                    tokens,
                    PrefillOptions.chunked(64).withAllLogits((pos, logits, off) -> {
                        float[] row = new float[vocab];
                        for (int t = 0; t < vocab; t++) row[t] = Sampler.logprob(logits, off, vocab, t);
                        out[pos] = row;
                    }),
                    new float[vocab]);
        } finally {
            seq.release();
        }
        return out;
    }

    static int[] greedy(LlamaEngine engine, int[] prompt, int n) {
        int vocab = engine.info().vocabSize();
        Sequence seq = engine.newSequence();
        try {
            float[] logits = new float[vocab];
            engine.prefill(seq, prompt, PrefillOptions.DEFAULT, logits);
            int[] out = new int[n];
            DecodeBatch b = new DecodeBatch(1, vocab);
            out[0] = Sampler.argmax(logits, 0, vocab);
            for (int i = 1; i < n; i++) {
                b.clear();
                b.add(seq, out[i - 1]);
                engine.decode(b);
                out[i] = Sampler.argmax(b.logits(), b.logitsOffset(0), vocab);
            }
            return out;
        } finally {
            seq.release();
        }
    }

    static int argmax(float[] v) {
        return Sampler.argmax(v, 0, v.length);
    }

    static int[] topK(float[] v, int k) {
        Integer[] idx = new Integer[v.length];
        for (int i = 0; i < v.length; i++) idx[i] = i;
        Arrays.sort(idx, (a, b) -> Float.compare(v[b], v[a]));
        int[] out = new int[k];
        for (int i = 0; i < k; i++) out[i] = idx[i];
        return out;
    }
}
