package dev.mooncakej.engine.spi;

import dev.mooncakej.engine.kv.PagedKvCache;
import dev.mooncakej.engine.tokenizer.ChatTemplate;
import dev.mooncakej.engine.tokenizer.Tokenizer;

/**
 * The engine SPI the prefill and decode workers use: a model, its tokenizer, a paged KV cache, and
 * two operations. Implementations: {@code LlamaEngine} (real math) and {@code SimulatedEngine}
 * (cost-model timing, synthetic KV). Calls to {@link #prefill} and {@link #decode} are serialized by
 * the engine; a worker interleaves them between continuous-batching steps.
 */
public interface InferenceEngine extends AutoCloseable {

    ModelInfo info();

    Tokenizer tokenizer();

    /** The model's chat template, or null when it has none. */
    ChatTemplate chatTemplate();

    PagedKvCache kvCache();

    default Sequence newSequence() {
        return new Sequence(kvCache(), info().contextLength());
    }

    /**
     * Computes K/V for {@code tokens[seq.length() ..]} (the positions before are reused from the
     * sequence's prefix blocks), in chunks, and writes the logits of the last token to
     * {@code logits[0 .. vocab)}. Returns false, computing nothing, when the KV pool has no room.
     */
    boolean prefill(Sequence seq, int[] tokens, PrefillOptions options, float[] logits);

    /** One decode step for every sequence of the batch (continuous batching). */
    void decode(DecodeBatch batch);

    @Override
    void close();
}
