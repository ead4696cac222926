package dev.mooncakej.engine.sampling;

import java.util.List;

/**
 * How to pick tokens and when to stop.
 *
 * @param temperature  0 for greedy (argmax, lowest id on ties); else logits are divided by it
 * @param topP         keep the smallest set of most likely tokens whose probability reaches topP (1: all)
 * @param topK         keep the topK most likely tokens (0: all)
 * @param seed         random seed; the same seed gives the same tokens (null: a random seed)
 * @param maxTokens    tokens to generate at most
 * @param stop         stop sequences: generation ends before the first occurrence, which is not returned
 * @param logprobs     whether to report the log-probability of each chosen token
 */
public record SamplingParams(
        float temperature, float topP, int topK, Long seed, int maxTokens, List<String> stop, boolean logprobs) {
    public SamplingParams {
        if (!(temperature >= 0 && temperature <= 100))
            throw new IllegalArgumentException("temperature must be in [0, 100], got " + temperature);
        if (!(topP > 0 && topP <= 1)) throw new IllegalArgumentException("top_p must be in (0, 1], got " + topP);
        if (topK < 0) throw new IllegalArgumentException("top_k must be >= 0, got " + topK);
        if (maxTokens < 1) throw new IllegalArgumentException("max_tokens must be >= 1, got " + maxTokens);
        stop = stop == null ? List.of() : List.copyOf(stop);
        for (String s : stop) {
            if (s.isEmpty()) throw new IllegalArgumentException("stop sequences must not be empty");
        }
    }

    public static SamplingParams greedy(int maxTokens) {
        return new SamplingParams(0f, 1f, 0, null, maxTokens, List.of(), false);
    }

    public boolean greedy() {
        return temperature == 0f;
    }
}
