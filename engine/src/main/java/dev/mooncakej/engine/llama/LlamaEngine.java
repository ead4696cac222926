package dev.mooncakej.engine.llama;

import dev.mooncakej.engine.gguf.GgufFile;
import dev.mooncakej.engine.kv.KvCacheLayout;
import dev.mooncakej.engine.kv.PagedKvCache;
import dev.mooncakej.engine.spi.DecodeBatch;
import dev.mooncakej.engine.spi.InferenceEngine;
import dev.mooncakej.engine.spi.ModelInfo;
import dev.mooncakej.engine.spi.PrefillOptions;
import dev.mooncakej.engine.spi.Sequence;
import dev.mooncakej.engine.tensor.ParallelExecutor;
import dev.mooncakej.engine.tokenizer.ChatTemplate;
import dev.mooncakej.engine.tokenizer.Tokenizer;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.function.LongFunction;

/**
 * The built-in engine: a GGUF Llama-family model, its tokenizer and chat template, a paged KV cache
 * and the forward pass, behind {@link InferenceEngine}. {@link #prefill} and {@link #decode} run one
 * at a time (synchronized); each uses all the engine's threads.
 */
public final class LlamaEngine implements InferenceEngine {

    /**
     * @param blockTokens  tokens per KV block. Default 32: with the {@code small} model one layer of one
     *                     block is 64 KiB, exactly one transfer slice; small enough that a partial last
     *                     block wastes little, large enough that block-key hashing and per-block
     *                     bookkeeping stay cheap.
     * @param kvBlocks     blocks in the slab (0: enough for {@code 4 x context} tokens)
     * @param maxRows      rows of one forward pass: the largest prefill chunk or decode batch
     */
    public record Config(Path model, int blockTokens, int kvBlocks, int maxRows, int threads) {
        public static final int DEFAULT_BLOCK_TOKENS = 32;

        public Config {
            if (blockTokens < 1 || blockTokens > 4096)
                throw new IllegalArgumentException("engine.block-tokens must be 1..4096, got " + blockTokens);
            if (kvBlocks < 0) throw new IllegalArgumentException("engine.kv-blocks must be >= 0, got " + kvBlocks);
            if (maxRows < 1 || maxRows > 8192)
                throw new IllegalArgumentException("engine.max-batch-tokens must be 1..8192, got " + maxRows);
            if (threads < 1 || threads > 1024)
                throw new IllegalArgumentException("engine.threads must be 1..1024, got " + threads);
        }

        public static Config of(Path model) {
            return new Config(
                    model, DEFAULT_BLOCK_TOKENS, 0, 128, Runtime.getRuntime().availableProcessors());
        }

        public Config withBlockTokens(int b) {
            return new Config(model, b, kvBlocks, maxRows, threads);
        }

        public Config withKvBlocks(int n) {
            return new Config(model, blockTokens, n, maxRows, threads);
        }

        public Config withMaxRows(int n) {
            return new Config(model, blockTokens, kvBlocks, n, threads);
        }

        public Config withThreads(int n) {
            return new Config(model, blockTokens, kvBlocks, maxRows, n);
        }
    }

    private final GgufFile file;
    private final LlamaConfig config;
    private final Tokenizer tokenizer;
    private final ChatTemplate chatTemplate;
    private final PagedKvCache cache;
    private final ParallelExecutor executor;
    private final LlamaModel model;
    private final ModelInfo info;
    private final ForwardBatch batch;
    private final float[] logits;
    private final ChunkListenerAdapter chunkListener = new ChunkListenerAdapter();

    public LlamaEngine(Config cfg) {
        this(cfg, null);
    }

    /**
     * @param kvMemory where the KV cache slab comes from (bytes to memory), e.g. a transfer engine's
     *                 registered memory; null: private off-heap memory
     */
    public LlamaEngine(Config cfg, LongFunction<MemorySegment> kvMemory) {
        GgufFile f = GgufFile.open(cfg.model());
        try {
            this.file = f;
            this.config = LlamaConfig.from(f);
            this.tokenizer = Tokenizer.from(f);
            String tpl = f.has("tokenizer.chat_template") ? f.getString("tokenizer.chat_template") : null;
            this.chatTemplate = tpl == null
                    ? null
                    : new ChatTemplate(
                            tpl,
                            tokenizer.bos() >= 0 ? tokenizer.tokenText(tokenizer.bos()) : "",
                            tokenizer.eos() >= 0 ? tokenizer.tokenText(tokenizer.eos()) : "");
            int blocks = cfg.kvBlocks() > 0
                    ? cfg.kvBlocks()
                    : 4 * ((config.contextLength() + cfg.blockTokens() - 1) / cfg.blockTokens());
            this.cache = new PagedKvCache(
                    new KvCacheLayout(config.layers(), config.kvHeads(), config.headDim(), cfg.blockTokens()),
                    blocks,
                    kvMemory);
            this.executor = new ParallelExecutor(cfg.threads());
            this.model = new LlamaModel(f, config, cache, cfg.maxRows(), executor);
            this.batch = new ForwardBatch(cfg.maxRows());
            this.logits = new float[cfg.maxRows() * config.vocab()];
            String name = f.has("general.name")
                    ? f.getString("general.name")
                    : cfg.model().getFileName().toString();
            this.info = new ModelInfo(
                    name + "@" + Long.toHexString(f.fileSize()) + "-"
                            + Integer.toHexString(f.tensors().keySet().hashCode()),
                    name,
                    config.architecture(),
                    config.vocab(),
                    config.contextLength(),
                    config.layers(),
                    cfg.blockTokens(),
                    cache.layout().layerBytes(),
                    blocks);
        } catch (RuntimeException e) {
            f.close();
            throw e;
        }
    }

    public LlamaConfig config() {
        return config;
    }

    public GgufFile file() {
        return file;
    }

    public int threads() {
        return executor.threads();
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
    public synchronized boolean prefill(Sequence seq, int[] tokens, PrefillOptions options, float[] out) {
        int start = seq.length();
        int n = tokens.length;
        if (start >= n)
            throw new IllegalArgumentException("nothing to prefill: " + start + " of " + n
                    + " tokens are already cached (keep at least one token uncached)");
        if (n > config.contextLength())
            throw new IllegalArgumentException(
                    "prompt of " + n + " tokens exceeds the context of " + config.contextLength());
        if (!seq.reserve(n)) return false;
        int chunk = Math.min(options.chunkTokens(), model.maxRows());
        int vocab = config.vocab();
        for (int from = start; from < n; from += chunk) {
            int to = Math.min(n, from + chunk);
            batch.clear();
            boolean all = options.allLogits() != null;
            for (int p = from; p < to; p++) batch.add(tokens[p], p, seq.blockTable(), all || p == n - 1);
            chunkListener.set(options.layers(), from, to);
            model.forward(batch, logits, chunkListener);
            chunkListener.set(null, 0, 0);
            seq.setLength(to);
            if (all) {
                for (int p = from; p < to; p++) options.allLogits().accept(p, logits, (p - from) * vocab);
            }
            if (to == n) {
                int row = all ? (n - 1 - from) : 0;
                System.arraycopy(logits, row * vocab, out, 0, vocab);
            }
        }
        batch.clear();
        return true;
    }

    @Override
    public synchronized void decode(DecodeBatch db) {
        batch.clear();
        int vocab = config.vocab();
        for (int i = 0; i < db.size(); i++) {
            Sequence s = db.sequence(i);
            int pos = s.length();
            boolean ok = pos < config.contextLength() && s.reserve(pos + 1);
            db.setOk(i, ok);
            if (ok) batch.add(db.token(i), pos, s.blockTable(), true);
        }
        model.forward(batch, logits, LayerListener.NONE);
        int r = 0;
        for (int i = 0; i < db.size(); i++) {
            if (!db.ok(i)) continue;
            System.arraycopy(logits, r * vocab, db.logits(), db.logitsOffset(i), vocab);
            Sequence s = db.sequence(i);
            s.setLength(s.length() + 1);
            r++;
        }
        batch.clear();
    }

    @Override
    public void close() {
        executor.close();
        cache.close();
        file.close();
    }

    /** Turns per-layer callbacks of one forward pass into (chunk range, layer) callbacks, without allocation. */
    private static final class ChunkListenerAdapter implements LayerListener {
        private PrefillOptions.ChunkLayerListener target;
        private int from, to;

        void set(PrefillOptions.ChunkLayerListener t, int from, int to) {
            this.target = t;
            this.from = from;
            this.to = to;
        }

        @Override
        public void onLayer(int layer) {
            if (target != null) target.onLayer(from, to, layer);
        }
    }
}
