package dev.mooncakej.engine.sampling;

import dev.mooncakej.engine.tokenizer.Tokenizer;
import java.util.Collections;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.stream.IntStream;

/**
 * What a request does to the logits before its token is sampled: OpenAI's {@code logit_bias} added,
 * and end-of-generation tokens forbidden (vLLM's {@code min_tokens} and {@code ignore_eos}). Applied
 * by the prefill worker to the first token and by the decode worker to every later one.
 */
public final class LogitAdjust {
    private LogitAdjust() {}

    private static final Map<Tokenizer, int[]> END_IDS = Collections.synchronizedMap(new WeakHashMap<>());

    /** Adds each bias to its token's logit in {@code logits[off ..]}. */
    public static void bias(float[] logits, int off, Map<Integer, Float> bias) {
        if (bias == null) return;
        for (Map.Entry<Integer, Float> e : bias.entrySet()) logits[off + e.getKey()] += e.getValue();
    }

    /** Sets the logits of {@code tokenizer}'s end-of-generation tokens to minus infinity. */
    public static void forbidEnd(float[] logits, int off, Tokenizer tokenizer) {
        int[] ids = END_IDS.computeIfAbsent(
                tokenizer,
                t -> IntStream.range(0, t.vocabSize())
                        .filter(t::isEndOfGeneration)
                        .toArray());
        for (int id : ids) logits[off + id] = Float.NEGATIVE_INFINITY;
    }
}
