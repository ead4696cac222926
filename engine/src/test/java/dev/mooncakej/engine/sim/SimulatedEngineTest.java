package dev.mooncakej.engine.sim;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.data.Offset.offset;

import dev.mooncakej.engine.TestModels;
import dev.mooncakej.engine.sampling.Sampler;
import dev.mooncakej.engine.spi.DecodeBatch;
import dev.mooncakej.engine.spi.PrefillOptions;
import dev.mooncakej.engine.spi.Sequence;
import dev.mooncakej.kvcache.cost.CostProfile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class SimulatedEngineTest {

    @Test
    void llama3ProfileFollowsThePapersTable1() {
        CostProfile p = CostProfile.llama3_70bOn8xA800();
        assertThat(p.kvBytesPerToken()).isEqualTo(327_680L); // 80 * (2 * 8192 / 8) * 2 = 320 KiB
        double g = 8 * 312e12 * 0.4;
        // 8k tokens, nothing cached: 5 ms + 80 (4 n^2 8192 + 22 n 8192^2) / G
        double n = 8192;
        double expected = 0.005 + 80 * (4 * n * n * 8192 + 22 * n * 8192.0 * 8192) / g;
        assertThat(p.prefillSeconds(8192, 0)).isCloseTo(expected, offset(1e-9));
        assertThat(p.prefillSeconds(8192, 0)).isBetween(1.0, 1.5);
        // with 4k cached only the increment is paid
        double inc = 0.005 + 80 * (4 * (n * n - 4096.0 * 4096) * 8192 + 22 * 4096 * 8192.0 * 8192) / g;
        assertThat(p.prefillSeconds(8192, 4096)).isCloseTo(inc, offset(1e-9));
        // decode: weights over HBM + compute per sequence + KV read per context token
        double hbm = 8 * 2.039e12 * CostProfile.ASSUMED_MBU; // HBM at the assumed utilisation
        assertThat(p.decodeStepSeconds(1, 0)).isCloseTo(140e9 / hbm + 140e9 / g, offset(1e-12));
        assertThat(p.decodeStepSeconds(64, 64 * 8192L))
                .isCloseTo(140e9 / hbm + 64 * 140e9 / g + 64 * 8192.0 * 327_680 / hbm, offset(1e-12));
        assertThat(p.decodeStepSeconds(0, 0)).isZero();
    }

    @Test
    void sleepsTheModelledTimeLayerByLayerAndStepByStep() {
        List<Long> sleeps = new ArrayList<>();
        CostProfile p = new CostProfile("t", 0.001, 1e-5, 1e-9, 0.002, 1e-4, 1e-7, 64);
        try (SimulatedEngine e = new SimulatedEngine(
                SimulatedEngine.Config.of(TestModels.tiny(), p).withKv(2, 64), sleeps::add)) {
            Sequence s = e.newSequence();
            int[] prompt = new int[100];
            for (int i = 0; i < prompt.length; i++) prompt[i] = 10 + i % 50;
            List<String> layers = new ArrayList<>();
            e.prefill(
                    s,
                    prompt,
                    PrefillOptions.chunked(60).withLayers((from, to, l) -> layers.add(from + "-" + to + ":" + l)),
                    new float[e.info().vocabSize()]);
            assertThat(layers).containsExactly("0-60:0", "0-60:1", "60-100:0", "60-100:1");
            assertThat(sleeps).hasSize(4);
            assertThat(sleeps.get(0)).isEqualTo((long) (p.prefillSeconds(60, 0) * 1e9 / 2));
            assertThat(sleeps.get(2)).isEqualTo((long) (p.prefillSeconds(100, 60) * 1e9 / 2));
            sleeps.clear();
            DecodeBatch b = new DecodeBatch(2, e.info().vocabSize());
            Sequence s2 = e.newSequence();
            e.prefill(
                    s2,
                    new int[] {5, 6, 7},
                    PrefillOptions.DEFAULT,
                    new float[e.info().vocabSize()]);
            sleeps.clear();
            b.add(s, 11);
            b.add(s2, 12);
            e.decode(b);
            assertThat(sleeps).containsExactly((long) (p.decodeStepSeconds(2, 101 + 4) * 1e9));
            s.release();
            s2.release();
        }
    }

    @Test
    void tokensAreDeterministicAndKvCarriesAVerifiablePattern() {
        try (SimulatedEngine e =
                new SimulatedEngine(SimulatedEngine.Config.of(TestModels.tiny(), CostProfile.llama3_70bOn8xA800())
                        .withTimeScale(0)
                        .withBlocks(16, 64))) {
            int vocab = e.info().vocabSize();
            int[] prompt =
                    e.tokenizer().encode("the same prompt gives the same tokens, and the KV says which prompt it was");
            int[] first = run(e, prompt, 10);
            assertThat(run(e, prompt, 10)).containsExactly(first);
            for (int t : first) assertThat(e.tokenizer().isEndOfGeneration(t)).isFalse();

            Sequence s = e.newSequence();
            float[] logits = new float[vocab];
            e.prefill(s, prompt, PrefillOptions.chunked(7), logits);
            int next = Sampler.argmax(logits, 0, vocab);
            DecodeBatch b = new DecodeBatch(1, vocab);
            b.add(s, next);
            e.decode(b);
            int[] all = Arrays.copyOf(prompt, prompt.length + 1);
            all[prompt.length] = next;
            assertThat(e.verify(s, all)).as("first wrong position").isEqualTo(-1);

            // a receiver that got the blocks as raw bytes can check them
            try (Arena arena = Arena.ofConfined()) {
                int blocks = s.blockCount();
                MemorySegment wire = arena.allocate(blocks * e.info().kvBlockBytes());
                for (int i = 0; i < blocks; i++)
                    e.kvCache()
                            .exportBlock(
                                    s.blockTable()[i],
                                    wire.asSlice(
                                            i * e.info().kvBlockBytes(),
                                            e.info().kvBlockBytes()));
                Sequence r = e.newSequence();
                assertThat(r.reserve(all.length)).isTrue();
                for (int i = 0; i < blocks; i++)
                    e.kvCache()
                            .importBlock(
                                    r.blockTable()[i],
                                    wire.asSlice(
                                            i * e.info().kvBlockBytes(),
                                            e.info().kvBlockBytes()));
                assertThat(e.verify(r, all)).isEqualTo(-1);
                int[] other = all.clone();
                other[20]++;
                assertThat(e.verify(r, other))
                        .as("a different token at 20 is detected")
                        .isEqualTo(20);
                r.release();
            }
            s.release();
            assertThat(e.kvCache().usedBlocks()).isZero();
        }
    }

    @Test
    void badConfigurationIsNamed() {
        assertThatThrownBy(() -> SimulatedEngine.Config.of(TestModels.tiny(), CostProfile.llama3_70bOn8xA800())
                        .withKv(3, 100))
                .hasMessageContaining("kv bytes per token")
                .hasMessageContaining("100");
        assertThatThrownBy(() -> new CostProfile("x", -1, 0, 0, 0, 0, 0, 8)).hasMessageContaining(">= 0");
        assertThatThrownBy(() -> CostProfile.llama3_70bOn8xA800().prefillSeconds(10, 11))
                .hasMessageContaining("cached tokens 11");
    }

    private static int[] run(SimulatedEngine e, int[] prompt, int n) {
        int vocab = e.info().vocabSize();
        Sequence s = e.newSequence();
        try {
            float[] logits = new float[vocab];
            e.prefill(s, prompt, PrefillOptions.DEFAULT, logits);
            int[] out = new int[n];
            DecodeBatch b = new DecodeBatch(1, vocab);
            out[0] = Sampler.argmax(logits, 0, vocab);
            for (int i = 1; i < n; i++) {
                b.clear();
                b.add(s, out[i - 1]);
                e.decode(b);
                out[i] = Sampler.argmax(b.logits(), 0, vocab);
            }
            return out;
        } finally {
            s.release();
        }
    }
}
