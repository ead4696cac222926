package dev.mooncakej.engine.sampling;

import java.util.SplittableRandom;

/**
 * Picks the next token from logits: greedy, or temperature with top-k and top-p, from a seeded
 * generator (one sampler per request, so a seed gives the same tokens whatever else runs). Scratch
 * arrays are allocated once per sampler.
 */
public final class Sampler {
    private final SamplingParams params;
    private final SplittableRandom random;
    private final int[] order;
    private final float[] probs;

    public Sampler(SamplingParams params, int vocab) {
        this.params = params;
        this.random = new SplittableRandom(
                params.seed() != null
                        ? params.seed()
                        : System.nanoTime() ^ Thread.currentThread().threadId());
        this.order = params.greedy() ? null : new int[vocab];
        this.probs = params.greedy() ? null : new float[vocab];
    }

    /**
     * Advances the generator past {@code draws} samples (each sample that is not greedy takes one
     * draw), as if they had been made: a stream continued elsewhere draws on where it stood.
     */
    public void skip(long draws) {
        if (draws < 0) throw new IllegalArgumentException("draws " + draws + ": expected >= 0");
        if (params.greedy()) return;
        for (long i = 0; i < draws; i++) random.nextDouble();
    }

    public int sample(float[] logits, int off, int vocab) {
        if (params.greedy()) return argmax(logits, off, vocab);
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) max = Math.max(max, logits[off + i]);
        double sum = 0;
        float invT = 1f / params.temperature();
        for (int i = 0; i < vocab; i++) {
            float p = (float) Math.exp((logits[off + i] - max) * invT);
            probs[i] = p;
            sum += p;
        }
        int n = vocab;
        for (int i = 0; i < vocab; i++) {
            order[i] = i;
            probs[i] = (float) (probs[i] / sum);
        }
        boolean truncate = (params.topK() > 0 && params.topK() < vocab) || params.topP() < 1f;
        if (truncate) {
            sortByProbabilityDescending(n);
            if (params.topK() > 0) n = Math.min(n, params.topK());
            if (params.topP() < 1f) {
                double cum = 0;
                for (int i = 0; i < n; i++) {
                    cum += probs[order[i]];
                    if (cum >= params.topP()) {
                        n = i + 1;
                        break;
                    }
                }
            }
        }
        double total = 0;
        for (int i = 0; i < n; i++) total += probs[order[i]];
        double r = random.nextDouble() * total;
        for (int i = 0; i < n; i++) {
            r -= probs[order[i]];
            if (r <= 0) return order[i];
        }
        return order[n - 1];
    }

    public static int argmax(float[] logits, int off, int vocab) {
        int best = 0;
        float bv = logits[off];
        for (int i = 1; i < vocab; i++) {
            if (logits[off + i] > bv) {
                bv = logits[off + i];
                best = i;
            }
        }
        return best;
    }

    /** log softmax(logits)[token]: the model's log-probability of the token. */
    public static float logprob(float[] logits, int off, int vocab, int token) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) max = Math.max(max, logits[off + i]);
        double sum = 0;
        for (int i = 0; i < vocab; i++) sum += Math.exp(logits[off + i] - max);
        return (float) (logits[off + token] - max - Math.log(sum));
    }

    private void sortByProbabilityDescending(int n) {
        // heap sort on order[] by probs, descending; in place, no allocation
        for (int i = n / 2 - 1; i >= 0; i--) siftDown(i, n);
        for (int end = n - 1; end > 0; end--) {
            int t = order[0];
            order[0] = order[end];
            order[end] = t;
            siftDown(0, end);
        }
    }

    private void siftDown(int i, int n) {
        // min-heap on probability (ties: higher id first), so the sorted result is descending, lower id first
        while (true) {
            int l = 2 * i + 1, r = l + 1, m = i;
            if (l < n && less(order[l], order[m])) m = l;
            if (r < n && less(order[r], order[m])) m = r;
            if (m == i) return;
            int t = order[i];
            order[i] = order[m];
            order[m] = t;
            i = m;
        }
    }

    private boolean less(int a, int b) {
        return probs[a] < probs[b] || (probs[a] == probs[b] && a > b);
    }
}
