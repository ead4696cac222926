package dev.mooncakej.engine.sampling;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mooncakej.engine.TestModels;
import dev.mooncakej.engine.llama.LlamaEngine;
import dev.mooncakej.engine.spi.PrefillOptions;
import java.util.Arrays;
import java.util.List;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;

class SamplerTest {
    private static final float[] LOGITS = {1f, 3f, 2f, 0f, 2.5f};

    private static SamplingParams params(float t, float p, int k, Long seed) {
        return new SamplingParams(t, p, k, seed, 16, List.of(), false);
    }

    @Test
    void greedyTakesTheArgmaxAndTheLowestIdOnTies() {
        assertThat(new Sampler(SamplingParams.greedy(1), 5).sample(LOGITS, 0, 5))
                .isEqualTo(1);
        assertThat(Sampler.argmax(new float[] {0f, 5f, 5f}, 0, 3)).isEqualTo(1);
    }

    @Test
    void theSameSeedGivesTheSameTokensAndAnotherSeedOtherTokens() {
        int[] a = draw(new Sampler(params(1.5f, 1f, 0, 7L), 5), 200);
        int[] b = draw(new Sampler(params(1.5f, 1f, 0, 7L), 5), 200);
        int[] c = draw(new Sampler(params(1.5f, 1f, 0, 8L), 5), 200);
        assertThat(a).containsExactly(b);
        assertThat(a).isNotEqualTo(c);
    }

    @Test
    void aSamplerThatSkipsTheDrawsMadeElsewhereGoesOnAsTheOneThatMadeThem() {
        int[] whole = draw(new Sampler(params(1.5f, 0.9f, 4, 7L), 5), 60);
        Sampler moved = new Sampler(params(1.5f, 0.9f, 4, 7L), 5);
        moved.skip(25); // a stream continued elsewhere after 25 sampled tokens
        assertThat(draw(moved, 35)).containsExactly(Arrays.copyOfRange(whole, 25, 60));
        Sampler fresh = new Sampler(params(1.5f, 0.9f, 4, 7L), 5);
        assertThat(draw(fresh, 35))
                .as("without the skip it would draw other tokens")
                .isNotEqualTo(Arrays.copyOfRange(whole, 25, 60));
        assertThatThrownBy(() -> moved.skip(-1)).hasMessageContaining("draws -1");
    }

    @Test
    void temperatureSamplesFollowTheSoftmax() {
        int[] counts = new int[5];
        for (int t : draw(new Sampler(params(1f, 1f, 0, 1L), 5), 20_000)) counts[t]++;
        double z = 0;
        for (float l : LOGITS) z += Math.exp(l);
        for (int i = 0; i < 5; i++) {
            double expected = Math.exp(LOGITS[i]) / z;
            assertThat(counts[i] / 20_000.0).as("frequency of token %d", i).isCloseTo(expected, Offset.offset(0.02));
        }
    }

    @Test
    void topKAndTopPKeepOnlyTheMostLikelyTokens() {
        for (int t : draw(new Sampler(params(1f, 1f, 2, 3L), 5), 500))
            assertThat(t).isIn(1, 4);
        // probabilities: 1:0.43 4:0.26 2:0.16 0:0.06 3:0.02 -> top_p 0.6 keeps tokens 1 and 4
        for (int t : draw(new Sampler(params(1f, 0.6f, 0, 3L), 5), 500))
            assertThat(t).isIn(1, 4);
        for (int t : draw(new Sampler(params(1f, 0.1f, 0, 3L), 5), 100))
            assertThat(t).isEqualTo(1);
    }

    @Test
    void logprobIsTheLogSoftmax() {
        double z = 0;
        for (float l : LOGITS) z += Math.exp(l);
        assertThat(Sampler.logprob(LOGITS, 0, 5, 2)).isCloseTo((float) (2 - Math.log(z)), Offset.offset(1e-6f));
    }

    @Test
    void badParametersAreNamed() {
        assertThatThrownBy(() -> params(-1f, 1f, 0, null))
                .hasMessageContaining("temperature")
                .hasMessageContaining("-1");
        assertThatThrownBy(() -> params(1f, 0f, 0, null)).hasMessageContaining("top_p");
        assertThatThrownBy(() -> params(1f, 1f, -3, null)).hasMessageContaining("top_k");
        assertThatThrownBy(() -> new SamplingParams(0, 1, 0, null, 0, List.of(), false))
                .hasMessageContaining("max_tokens");
        assertThatThrownBy(() -> new SamplingParams(0, 1, 0, null, 5, List.of(""), false))
                .hasMessageContaining("stop");
    }

    @Test
    void generationStopsAtMaxTokensOrBeforeAStopSequenceAndReportsLogprobs() {
        try (LlamaEngine engine = new LlamaEngine(LlamaEngine.Config.of(TestModels.tiny()))) {
            int[] prompt = engine.tokenizer().encode("Once upon a time");
            TextGenerator.Result full = TextGenerator.generate(
                    engine, prompt, new SamplingParams(0, 1, 0, null, 12, List.of(), true), PrefillOptions.DEFAULT);
            assertThat(full.tokens()).hasSize(12);
            assertThat(full.finishReason()).isEqualTo(TextGenerator.FinishReason.LENGTH);
            assertThat(full.logprobs())
                    .hasSize(12)
                    .allSatisfy(lp -> assertThat(lp).isLessThanOrEqualTo(0f));
            String stop = full.text().substring(3, 5);
            TextGenerator.Result stopped = TextGenerator.generate(
                    engine,
                    prompt,
                    new SamplingParams(0, 1, 0, null, 12, List.of(stop), false),
                    PrefillOptions.DEFAULT);
            assertThat(stopped.finishReason()).isEqualTo(TextGenerator.FinishReason.STOP);
            assertThat(stopped.text())
                    .isEqualTo(full.text().substring(0, full.text().indexOf(stop)));
            assertThat(engine.kvCache().usedBlocks()).isZero();
        }
    }

    @Test
    void seededSamplingOfTheEngineIsReproducible() {
        try (LlamaEngine engine = new LlamaEngine(LlamaEngine.Config.of(TestModels.tiny()))) {
            int[] prompt = engine.tokenizer().encode("The quick brown fox");
            SamplingParams p = new SamplingParams(0.9f, 0.95f, 40, 1234L, 20, List.of(), false);
            assertThat(TextGenerator.generate(engine, prompt, p, PrefillOptions.DEFAULT)
                            .tokens())
                    .isEqualTo(TextGenerator.generate(engine, prompt, p, PrefillOptions.DEFAULT)
                            .tokens());
        }
    }

    private static int[] draw(Sampler s, int n) {
        int[] out = new int[n];
        for (int i = 0; i < n; i++) out[i] = s.sample(LOGITS, 0, 5);
        return out;
    }
}
