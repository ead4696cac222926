package dev.mooncakej.engine.sim;

import dev.mooncakej.engine.gguf.GgufFile;
import dev.mooncakej.engine.kv.KvCacheLayout;
import dev.mooncakej.engine.kv.PagedKvCache;
import dev.mooncakej.engine.spi.DecodeBatch;
import dev.mooncakej.engine.spi.InferenceEngine;
import dev.mooncakej.engine.spi.ModelInfo;
import dev.mooncakej.engine.spi.PrefillOptions;
import dev.mooncakej.engine.spi.Sequence;
import dev.mooncakej.engine.tokenizer.ChatTemplate;
import dev.mooncakej.engine.tokenizer.Tokenizer;
import dev.mooncakej.kvcache.cost.CostProfile;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.function.LongFunction;

/**
 * An engine without math, for load tests and the scheduler simulator: time is taken from a
 * {@link CostProfile} (scaled by {@code timeScale}), tokens are a deterministic function of the
 * sequence so far, and the K/V of each token is filled with a pattern derived from the chained hash
 * of the tokens up to it (the same chaining as a block key), so a receiver can check what arrived
 * ({@link #verify}). The tokenizer and chat template come from a GGUF file (a generated model will do).
 *
 * <p>KV geometry: {@code layers} layers and {@code kvBytesPerToken} bytes per token over all layers
 * (a multiple of {@code 16 x layers}), laid out like the real engine's cache. Word 0 of layer 0's K of a
 * token holds the chained hash itself, the other words {@code mix(hash + layer * GOLDEN + word)}, V the complement.
 */
public final class SimulatedEngine implements InferenceEngine {

    public record Config(
            Path tokenizerModel,
            CostProfile profile,
            double timeScale,
            int layers,
            long kvBytesPerToken,
            int blockTokens,
            int kvBlocks,
            int contextLength,
            String reply) {
        public Config {
            if (!(timeScale >= 0))
                throw new IllegalArgumentException("simulated time scale must be >= 0, got " + timeScale);
            if (layers < 1) throw new IllegalArgumentException("simulated layers must be >= 1, got " + layers);
            if (kvBytesPerToken <= 0 || kvBytesPerToken % (16L * layers) != 0) {
                throw new IllegalArgumentException(
                        "simulated kv bytes per token must be a positive multiple of 16 x layers (" + 16 * layers
                                + "), got " + kvBytesPerToken);
            }
            if (contextLength < 1)
                throw new IllegalArgumentException("simulated context length must be >= 1, got " + contextLength);
        }

        public static Config of(Path tokenizerModel, CostProfile profile) {
            return new Config(tokenizerModel, profile, 1.0, 4, 4096, 32, 1024, 32768, null);
        }

        public Config withTimeScale(double s) {
            return new Config(
                    tokenizerModel, profile, s, layers, kvBytesPerToken, blockTokens, kvBlocks, contextLength, reply);
        }

        public Config withKv(int l, long bytesPerToken) {
            return new Config(
                    tokenizerModel, profile, timeScale, l, bytesPerToken, blockTokens, kvBlocks, contextLength, reply);
        }

        public Config withBlocks(int tokens, int blocks) {
            return new Config(
                    tokenizerModel, profile, timeScale, layers, kvBytesPerToken, tokens, blocks, contextLength, reply);
        }
    }

    private static final long GOLDEN = 0x9E3779B97F4A7C15L;

    private final Config cfg;
    private final Tokenizer tokenizer;
    private final ChatTemplate chatTemplate;
    private final PagedKvCache cache;
    private final ModelInfo info;
    private final Sleeper sleeper;
    private final int[] generatable; // token ids the engine may emit (normal tokens only)
    private final float[] scratch;

    public SimulatedEngine(Config cfg) {
        this(cfg, Sleeper.REAL);
    }

    public SimulatedEngine(Config cfg, Sleeper sleeper) {
        this(cfg, sleeper, null);
    }

    /**
     * @param kvMemory where the KV slab comes from (e.g. a transfer engine's registered memory, so a
     *                 simulated worker's KV moves like a real one's); null: private off-heap memory
     */
    public SimulatedEngine(Config cfg, Sleeper sleeper, LongFunction<MemorySegment> kvMemory) {
        this.cfg = cfg;
        this.sleeper = sleeper;
        try (GgufFile f = GgufFile.open(cfg.tokenizerModel())) {
            this.tokenizer = Tokenizer.from(f);
            String tpl = f.has("tokenizer.chat_template") ? f.getString("tokenizer.chat_template") : null;
            this.chatTemplate = tpl == null
                    ? null
                    : new ChatTemplate(tpl, "", tokenizer.eos() >= 0 ? tokenizer.tokenText(tokenizer.eos()) : "");
        }
        int kvDim = (int) (cfg.kvBytesPerToken() / (8L * cfg.layers()));
        this.cache = new PagedKvCache(
                new KvCacheLayout(cfg.layers(), 1, kvDim, cfg.blockTokens()), cfg.kvBlocks(), kvMemory);
        this.info = new ModelInfo(
                "simulated:" + cfg.profile().name(),
                "simulated-" + cfg.profile().name(),
                "simulated",
                tokenizer.vocabSize(),
                cfg.contextLength(),
                cfg.layers(),
                cfg.blockTokens(),
                cache.layout().layerBytes(),
                cfg.kvBlocks());
        int n = 0;
        int[] ids = new int[tokenizer.vocabSize()];
        for (int i = 0; i < ids.length; i++) if (tokenizer.tokenType(i) == Tokenizer.TYPE_NORMAL) ids[n++] = i;
        this.generatable = Arrays.copyOf(ids, n);
        this.scratch = new float[tokenizer.vocabSize()];
        if (cfg.reply() != null) {
            int[] r = tokenizer.encodeWithSpecials(cfg.reply());
            this.reply = Arrays.copyOf(r, r.length + 1);
            this.reply[r.length] = tokenizer.eos() >= 0 ? tokenizer.eos() : generatable[0];
        } else this.reply = null;
    }

    /** The scripted answer's ids and end (null: tokens from the sequence's hash). */
    private final int[] reply;

    /** Decode steps each sequence has taken, for the scripted answer (a sequence's prefill gives its first id). */
    private final Map<Sequence, Integer> replyStep = new WeakHashMap<>();

    private void replyHot(int step, float[] logits) {
        Arrays.fill(logits, 0, tokenizer.vocabSize(), 0f);
        logits[reply[Math.min(step, reply.length - 1)]] = 20f;
    }

    public CostProfile profile() {
        return cfg.profile();
    }

    @Override
    public ModelInfo info() {
        return info;
    }

    @Override
    public Tokenizer tokenizer() {
        return tokenizer;
    }

    @Override
    public ChatTemplate chatTemplate() {
        return chatTemplate;
    }

    @Override
    public PagedKvCache kvCache() {
        return cache;
    }

    @Override
    public synchronized boolean prefill(Sequence seq, int[] tokens, PrefillOptions options, float[] logits) {
        int start = seq.length();
        int n = tokens.length;
        if (start >= n)
            throw new IllegalArgumentException("nothing to prefill: " + start + " of " + n
                    + " tokens are already cached (keep at least one token uncached)");
        if (n > cfg.contextLength())
            throw new IllegalArgumentException(
                    "prompt of " + n + " tokens exceeds the context of " + cfg.contextLength());
        if (!seq.reserve(n)) return false;
        long h = 0;
        for (int p = 0; p < start; p++) h = chain(h, tokens[p]);
        int chunk = options.chunkTokens();
        for (int from = start; from < n; from += chunk) {
            int to = Math.min(n, from + chunk);
            long nanosPerLayer = (long) (cfg.profile().prefillSeconds(to, from) * cfg.timeScale() * 1e9 / cfg.layers());
            long hFrom = h;
            for (int l = 0; l < cfg.layers(); l++) {
                sleeper.sleep(nanosPerLayer);
                long hl = hFrom;
                for (int p = from; p < to; p++) {
                    hl = chain(hl, tokens[p]);
                    fill(seq.blockTable(), p, l, hl);
                }
                if (options.layers() != null) options.layers().onLayer(from, to, l);
            }
            for (int p = from; p < to; p++) {
                h = chain(h, tokens[p]);
                if (options.allLogits() != null) { // each position's, as the next token would be drawn from
                    oneHot(h, logits);
                    options.allLogits().accept(p, logits, 0);
                }
            }
            seq.setLength(to);
        }
        if (reply != null) replyHot(0, logits);
        else oneHot(h, logits);
        return true;
    }

    @Override
    public synchronized void decode(DecodeBatch batch) {
        long context = 0;
        int active = 0;
        for (int i = 0; i < batch.size(); i++) {
            Sequence s = batch.sequence(i);
            boolean ok = s.length() < cfg.contextLength() && s.reserve(s.length() + 1);
            batch.setOk(i, ok);
            if (ok) {
                active++;
                context += s.length() + 1;
            }
        }
        sleeper.sleep((long) (cfg.profile().decodeStepSeconds(active, context) * cfg.timeScale() * 1e9));
        for (int i = 0; i < batch.size(); i++) {
            if (!batch.ok(i)) continue;
            Sequence s = batch.sequence(i);
            int pos = s.length();
            long h = prefixHash(s, pos);
            h = chain(h, batch.token(i));
            for (int l = 0; l < cfg.layers(); l++) fill(s.blockTable(), pos, l, h);
            s.setLength(pos + 1);
            if (reply != null) replyHot(replyStep.merge(s, 1, Integer::sum), scratch);
            else oneHot(h, scratch);
            System.arraycopy(scratch, 0, batch.logits(), batch.logitsOffset(i), scratch.length);
        }
    }

    /** The chained hash stored with the K/V of the token at {@code pos - 1} (0 for pos 0). */
    private long prefixHash(Sequence s, int pos) {
        if (pos == 0) return 0;
        return cache.slab().get(ValueLayout.JAVA_LONG_UNALIGNED, slot(s.blockTable(), pos - 1, 0));
    }

    /**
     * Checks the K/V of positions [0, tokens.length) of {@code seq} against the pattern {@code tokens}
     * imply; returns the first wrong position, or -1 when all is as expected.
     */
    public int verify(Sequence seq, int[] tokens) {
        long h = 0;
        for (int p = 0; p < tokens.length; p++) {
            h = chain(h, tokens[p]);
            for (int l = 0; l < cfg.layers(); l++) {
                long k = slot(seq.blockTable(), p, l);
                long v = k + cache.layout().valueOffset(0);
                int words = cache.layout().kvDim() / 2;
                for (int w = 0; w < words; w++) {
                    long expect = word(h, l, w);
                    if (cache.slab().get(ValueLayout.JAVA_LONG_UNALIGNED, k + 8L * w) != expect) return p;
                    if (cache.slab().get(ValueLayout.JAVA_LONG_UNALIGNED, v + 8L * w) != ~expect) return p;
                }
            }
        }
        return -1;
    }

    /** Offset of the K of {@code pos} in layer {@code l}. */
    private long slot(int[] table, int pos, int l) {
        int bt = cfg.blockTokens();
        return cache.layerOffset(table[pos / bt], l) + cache.layout().keyOffset(pos % bt);
    }

    private void fill(int[] table, int pos, int l, long h) {
        MemorySegment slab = cache.slab();
        long k = slot(table, pos, l);
        long v = k + cache.layout().valueOffset(0);
        int words = cache.layout().kvDim() / 2;
        for (int w = 0; w < words; w++) {
            long x = word(h, l, w);
            slab.set(ValueLayout.JAVA_LONG_UNALIGNED, k + 8L * w, x);
            slab.set(ValueLayout.JAVA_LONG_UNALIGNED, v + 8L * w, ~x);
        }
    }

    private static long word(long h, int layer, int w) {
        return layer == 0 && w == 0 ? h : mix(h + layer * GOLDEN + w);
    }

    private void oneHot(long h, float[] logits) {
        Arrays.fill(logits, 0, tokenizer.vocabSize(), 0f);
        logits[generatable[(int) Long.remainderUnsigned(mix(h ^ GOLDEN), generatable.length)]] = 20f;
    }

    /** The chained hash of a token sequence, one token at a time: {@code h' = mix(h * GOLDEN + token + 1)}. */
    public static long chain(long h, int token) {
        return mix(h * GOLDEN + token + 1);
    }

    /** SplitMix64's finaliser. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    @Override
    public void close() {
        cache.close();
    }
}
