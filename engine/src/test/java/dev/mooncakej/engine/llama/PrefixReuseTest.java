package dev.mooncakej.engine.llama;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.TestModels;
import dev.mooncakej.engine.kv.PagedKvCache;
import dev.mooncakej.engine.spi.PrefillOptions;
import dev.mooncakej.engine.spi.Sequence;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Incremental prefill over reused prefix blocks gives the logits of a full prefill. */
class PrefixReuseTest {
    private static final int BLOCK = 16;
    private static LlamaEngine engine;
    private static int[] prompt;

    @BeforeAll
    static void load() {
        engine = new LlamaEngine(
                LlamaEngine.Config.of(TestModels.tiny()).withBlockTokens(BLOCK).withKvBlocks(256));
        prompt = engine.tokenizer()
                .encode("Mooncake separates the prefill stage from the decode stage. When two requests share "
                        + "the same beginning, such as a long system prompt, the cache of that prefix can be "
                        + "reused instead of computed "
                        + "again. Reuse trades storage for computation, and the scheduler knows where every "
                        + "prefix lives.");
        assertThat(prompt.length).isGreaterThan(4 * BLOCK);
    }

    @AfterAll
    static void close() {
        assertThat(engine.kvCache().usedBlocks())
                .as("blocks leaked by the tests")
                .isZero();
        engine.close();
    }

    private static float[] fullPrefill(int chunk) {
        float[] logits = new float[engine.info().vocabSize()];
        Sequence s = engine.newSequence();
        try {
            assertThat(engine.prefill(s, prompt, PrefillOptions.chunked(chunk), logits))
                    .isTrue();
        } finally {
            s.release();
        }
        return logits;
    }

    @Test
    void prefixBlocksFromTheCacheGiveTheSameLogitsAsAFullPrefill() {
        float[] full = fullPrefill(256);
        Sequence first = engine.newSequence();
        Sequence second = engine.newSequence();
        try {
            float[] l1 = new float[full.length];
            engine.prefill(first, prompt, PrefillOptions.DEFAULT, l1);
            int prefixBlocks = 3;
            second.adoptPrefix(first.blockTable(), prefixBlocks);
            assertThat(engine.kvCache().refCount(first.blockTable()[0])).isEqualTo(2);
            assertThat(second.length()).isEqualTo(prefixBlocks * BLOCK);
            float[] l2 = new float[full.length];
            engine.prefill(second, prompt, PrefillOptions.DEFAULT, l2);
            assertClose(l2, full, 1e-5f);
            assertClose(l1, full, 1e-5f);
        } finally {
            first.release();
            second.release();
        }
    }

    @Test
    void prefixBlocksExportedAsRawBytesAndImportedElsewhereGiveTheSameLogits() {
        float[] full = fullPrefill(256);
        int prefixBlocks = 4;
        PagedKvCache cache = engine.kvCache();
        long layerBytes = cache.layout().layerBytes();
        int layers = cache.layout().layers();
        try (Arena arena = Arena.ofConfined();
                LlamaEngine other = new LlamaEngine(LlamaEngine.Config.of(TestModels.tiny())
                        .withBlockTokens(BLOCK)
                        .withKvBlocks(64))) {
            MemorySegment wire = arena.allocate(prefixBlocks * layers * layerBytes);
            Sequence source = engine.newSequence();
            try {
                engine.prefill(
                        source,
                        Arrays.copyOf(prompt, prefixBlocks * BLOCK + 1),
                        PrefillOptions.DEFAULT,
                        new float[full.length]);
                for (int b = 0; b < prefixBlocks; b++) {
                    for (int l = 0; l < layers; l++) {
                        cache.exportLayer(
                                source.blockTable()[b], l, wire.asSlice((b * layers + l) * layerBytes, layerBytes));
                    }
                }
            } finally {
                source.release();
            }
            int[] imported = new int[prefixBlocks];
            for (int b = 0; b < prefixBlocks; b++) {
                imported[b] = other.kvCache().allocate();
                for (int l = 0; l < layers; l++) {
                    other.kvCache()
                            .importLayer(imported[b], l, wire.asSlice((b * layers + l) * layerBytes, layerBytes));
                }
            }
            Sequence target = other.newSequence();
            try {
                target.adoptPrefix(imported, prefixBlocks);
                for (int id : imported) other.kvCache().release(id); // the sequence holds them now
                float[] logits = new float[full.length];
                other.prefill(target, prompt, PrefillOptions.DEFAULT, logits);
                assertClose(logits, full, 1e-5f);
            } finally {
                target.release();
            }
            assertThat(other.kvCache().usedBlocks()).isZero();
        }
    }

    @Test
    void chunkedPrefillGivesTheSameLogitsWhateverTheChunkSize() {
        float[] full = fullPrefill(256);
        for (int chunk : new int[] {1, 7, 16, 33}) {
            assertClose(fullPrefill(chunk), full, 1e-5f);
        }
    }

    @Test
    void layerListenerSeesEveryLayerOfEveryChunkInOrder() {
        StringBuilder seen = new StringBuilder();
        Sequence s = engine.newSequence();
        try {
            int[] p = Arrays.copyOf(prompt, 40);
            engine.prefill(
                    s,
                    p,
                    PrefillOptions.chunked(16)
                            .withLayers((from, to, layer) -> seen.append(from)
                                    .append('-')
                                    .append(to)
                                    .append(':')
                                    .append(layer)
                                    .append(' ')),
                    new float[engine.info().vocabSize()]);
        } finally {
            s.release();
        }
        assertThat(seen.toString().trim()).isEqualTo("0-16:0 0-16:1 16-32:0 16-32:1 32-40:0 32-40:1");
    }

    static void assertClose(float[] actual, float[] expected, float tol) {
        float worst = 0;
        for (int i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
        assertThat(worst).as("largest logit difference").isLessThanOrEqualTo(tol);
    }
}
