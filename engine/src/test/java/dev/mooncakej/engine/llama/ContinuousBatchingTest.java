package dev.mooncakej.engine.llama;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.TestModels;
import dev.mooncakej.engine.TestPrompts;
import dev.mooncakej.engine.sampling.Sampler;
import dev.mooncakej.engine.spi.DecodeBatch;
import dev.mooncakej.engine.spi.PrefillOptions;
import dev.mooncakej.engine.spi.Sequence;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Sequences decoded together, joining and leaving the batch between steps, produce exactly the tokens
 *  (and logits) they produce alone. */
class ContinuousBatchingTest {
    private static final int SEQUENCES = 8;
    private static final int STEPS = 24;

    @Test
    void batchOfEightSequencesOfDifferentLengthsDecodesLikeEachAlone() {
        try (LlamaEngine engine =
                new LlamaEngine(LlamaEngine.Config.of(TestModels.tiny()).withKvBlocks(512))) {
            int vocab = engine.info().vocabSize();
            List<int[]> prompts = new ArrayList<>();
            for (int i = 0; i < SEQUENCES; i++)
                prompts.add(engine.tokenizer().encode(TestPrompts.TWENTY.get(i * 2 + 1)));
            assertThat(prompts.stream().mapToInt(p -> p.length).distinct().count())
                    .as("distinct prompt lengths")
                    .isGreaterThan(4);

            int[][] alone = new int[SEQUENCES][STEPS];
            float[][] aloneLastLogits = new float[SEQUENCES][];
            for (int i = 0; i < SEQUENCES; i++) {
                Sequence s = engine.newSequence();
                float[] logits = new float[vocab];
                engine.prefill(s, prompts.get(i), PrefillOptions.DEFAULT, logits);
                DecodeBatch b = new DecodeBatch(1, vocab);
                int t = Sampler.argmax(logits, 0, vocab);
                for (int step = 0; step < STEPS; step++) {
                    alone[i][step] = t;
                    b.clear();
                    b.add(s, t);
                    engine.decode(b);
                    t = Sampler.argmax(b.logits(), 0, vocab);
                    if (step == STEPS - 1) aloneLastLogits[i] = Arrays.copyOfRange(b.logits(), 0, vocab);
                }
                s.release();
            }

            // Together: sequence i joins at step i (staggered), and leaves after its STEPS tokens.
            Sequence[] seqs = new Sequence[SEQUENCES];
            int[] next = new int[SEQUENCES];
            int[] produced = new int[SEQUENCES];
            int[][] together = new int[SEQUENCES][STEPS];
            DecodeBatch batch = new DecodeBatch(SEQUENCES, vocab);
            int[] rowOf = new int[SEQUENCES];
            for (int step = 0; ; step++) {
                if (step < SEQUENCES) {
                    seqs[step] = engine.newSequence();
                    float[] logits = new float[vocab];
                    engine.prefill(seqs[step], prompts.get(step), PrefillOptions.DEFAULT, logits);
                    next[step] = Sampler.argmax(logits, 0, vocab);
                }
                batch.clear();
                for (int i = 0; i < SEQUENCES; i++) {
                    rowOf[i] = -1;
                    if (seqs[i] != null && produced[i] < STEPS) {
                        together[i][produced[i]] = next[i];
                        rowOf[i] = batch.add(seqs[i], next[i]);
                    }
                }
                if (batch.size() == 0) break;
                engine.decode(batch);
                for (int i = 0; i < SEQUENCES; i++) {
                    if (rowOf[i] < 0) continue;
                    assertThat(batch.ok(rowOf[i])).isTrue();
                    next[i] = Sampler.argmax(batch.logits(), batch.logitsOffset(rowOf[i]), vocab);
                    produced[i]++;
                    if (produced[i] == STEPS) {
                        float[] l = Arrays.copyOfRange(
                                batch.logits(), batch.logitsOffset(rowOf[i]), batch.logitsOffset(rowOf[i]) + vocab);
                        assertThat(l)
                                .as("last logits of sequence %d, batched vs alone", i)
                                .containsExactly(aloneLastLogits[i]);
                        seqs[i].release(); // leaves the batch
                    }
                }
            }
            for (int i = 0; i < SEQUENCES; i++) {
                assertThat(together[i]).as("tokens of sequence %d", i).containsExactly(alone[i]);
            }
            assertThat(engine.kvCache().usedBlocks()).isZero();
        }
    }

    @Test
    void aSequenceThatRunsOutOfKvBlocksIsReportedAndTheOthersGoOn() {
        try (LlamaEngine engine = new LlamaEngine(
                LlamaEngine.Config.of(TestModels.tiny()).withBlockTokens(8).withKvBlocks(3))) {
            int vocab = engine.info().vocabSize();
            Sequence a = engine.newSequence();
            Sequence b = engine.newSequence();
            engine.prefill(
                    a, new int[] {1, 2, 3, 4, 5, 6, 7, 8}, PrefillOptions.DEFAULT, new float[vocab]); // 1 block, full
            engine.prefill(b, new int[] {1, 2, 3}, PrefillOptions.DEFAULT, new float[vocab]); // 1 block
            Sequence c = engine.newSequence();
            assertThat(engine.prefill(c, new int[20], PrefillOptions.DEFAULT, new float[vocab]))
                    .as("20 tokens need 3 blocks, 1 is free")
                    .isFalse();
            c.release();
            assertThat(engine.kvCache().freeBlocks()).isEqualTo(1);
            DecodeBatch batch = new DecodeBatch(2, vocab);
            batch.add(a, 9); // needs a second block: takes the last free one
            batch.add(b, 9);
            engine.decode(batch);
            assertThat(batch.ok(0)).isTrue();
            assertThat(batch.ok(1)).isTrue();
            Sequence d = engine.newSequence();
            d.adoptPrefix(a.blockTable(), 1);
            batch.clear();
            batch.add(a, 10);
            engine.decode(batch);
            assertThat(batch.ok(0)).isTrue();
            a.release();
            b.release();
            d.release();
            assertThat(engine.kvCache().usedBlocks()).isZero();
        }
    }
}
