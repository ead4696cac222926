package dev.mooncakej.engine.spi;

import dev.mooncakej.engine.gguf.GgufFile;
import dev.mooncakej.kvcache.BlockKeys;
import dev.mooncakej.kvcache.wire.WorkerMessages;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A worker's start-up measurement of its own engine, so the conductor's estimators are right from the
 * first request instead of starting from another model's coefficients: a few prefill lengths (growing
 * by 4x from 16 tokens) and a few decode batch sizes (1, 2, 4, 8), each after a warm-up run that is
 * not kept, within a time budget (the next length is skipped when its predicted time would overrun
 * it). Runs on the caller's thread before the worker serves; KV it uses is released.
 */
public final class Calibration {
    private Calibration() {}

    /** A prefill of {@code inputTokens} (nothing cached) took {@code seconds}. */
    public record PrefillSample(int inputTokens, double seconds) {}

    /** A decode step over {@code batch} sequences attending to {@code contextTokens} in all took {@code seconds}. */
    public record StepSample(int batch, long contextTokens, double seconds) {}

    /**
     * A worker's profile: its block-key contract (from its own copy of the model file and its block
     * size) and, within {@code budgetSeconds}, its prefill costs ({@code role} "prefill") or decode-step
     * costs ("decode").
     */
    public static WorkerMessages.WorkerProfile profile(
            String role, InferenceEngine engine, Path modelFile, int chunkTokens, double budgetSeconds) {
        ModelInfo info = engine.info();
        String identity = GgufFile.keyIdentity(modelFile);
        long seed = new BlockKeys(identity, info.blockTokens()).seed();
        var prefill = "prefill".equals(role)
                ? prefill(engine, chunkTokens, 4096, budgetSeconds).stream()
                        .map(p -> new WorkerMessages.PrefillCost(p.inputTokens(), 0, p.seconds()))
                        .toList()
                : List.<WorkerMessages.PrefillCost>of();
        var decode = "decode".equals(role)
                ? decode(engine, 64, budgetSeconds).stream()
                        .map(d -> new WorkerMessages.StepCost(d.batch(), d.contextTokens(), d.seconds()))
                        .toList()
                : List.<WorkerMessages.StepCost>of();
        return new WorkerMessages.WorkerProfile(
                role,
                identity,
                BlockKeys.VERSION,
                info.blockTokens(),
                seed,
                info.contextLength(),
                (long) info.kvBlocks() * info.blockTokens(),
                prefill,
                decode);
    }

    /** Tokens of a calibration prompt: deterministic, spread over the vocabulary. */
    static int[] prompt(int n, int vocab) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) t[i] = (int) ((i * 2654435761L + 17) % vocab);
        return t;
    }

    /**
     * Prefill samples within {@code budgetSeconds} (0: none), lengths 16, 64, 256, 1024 (up to
     * {@code maxTokens} and half the context): 16-token runs that warm the JIT until they stop getting
     * faster (within half the budget) and are not kept, then passes over the lengths until the budget
     * is spent, a length skipped where its expected time would overrun it, the fastest run of each
     * length kept. The two shortest lengths are measured even past the budget (a start-up slowed by
     * other processes starting must still give the estimator a slope, not one point to extrapolate
     * from).
     */
    public static List<PrefillSample> prefill(
            InferenceEngine engine, int chunkTokens, int maxTokens, double budgetSeconds) {
        List<PrefillSample> out = new ArrayList<>();
        if (!(budgetSeconds > 0)) return out;
        ModelInfo info = engine.info();
        int longest = Math.min(maxTokens, info.contextLength() / 2);
        List<Integer> lengths = new ArrayList<>();
        for (int n = 16; n <= Math.min(longest, 1024); n *= 4) lengths.add(n);
        double[] best = new double[lengths.size()];
        int[] runs = new int[lengths.size()];
        Arrays.fill(best, Double.POSITIVE_INFINITY);
        float[] logits = new float[info.vocabSize()];
        PrefillOptions opts = PrefillOptions.chunked(chunkTokens);
        long t0 = System.nanoTime();
        // the JIT's: the shortest length again until it stops getting faster (the kernels compiled), so
        // what is kept is the engine as it serves, not the interpreter (a tiny model's 64 tokens took 736 ms
        // measured after one warm-up run, 8 ms warm)
        if (warm(engine, prompt(lengths.get(0), info.vocabSize()), opts, logits, t0, budgetSeconds / 2) < 0) return out;
        for (int pass = 0; pass < 20; pass++) {
            boolean ran = false;
            for (int i = 0; i < lengths.size(); i++) {
                double spent = (System.nanoTime() - t0) / 1e9;
                // expected: this length's last time, else four times the previous length's (at least linear)
                double expect = Double.isFinite(best[i])
                        ? best[i]
                        : i > 0 && Double.isFinite(best[i - 1]) ? best[i - 1] * 4 : 0;
                boolean owed = pass == 0 && i < 2; // the two shortest, once, whatever the budget
                if (!owed && spent + expect > budgetSeconds || (i > 0 && !Double.isFinite(best[i - 1]))) break;
                double s = run(engine, prompt(lengths.get(i), info.vocabSize()), opts, logits);
                if (s < 0) break; // no room in the KV pool
                best[i] = Math.min(best[i], s);
                runs[i]++;
                ran = true;
            }
            if (!ran) break;
        }
        for (int i = 0; i < lengths.size(); i++) if (runs[i] >= 1) out.add(new PrefillSample(lengths.get(i), best[i]));
        return out;
    }

    /** Runs that must each be no faster than 0.9x the best so far before the engine is taken as warm. */
    static final int WARM_STALE_RUNS = 4;

    /**
     * Prefills {@code tokens} until {@value #WARM_STALE_RUNS} runs in a row are no faster than 0.9x the
     * best so far, or {@code limitSeconds} since {@code t0} have passed (at most 200 runs): the best
     * time, or -1 when the pool had no room.
     */
    static double warm(
            InferenceEngine engine, int[] tokens, PrefillOptions opts, float[] logits, long t0, double limitSeconds) {
        double best = Double.POSITIVE_INFINITY;
        int stale = 0;
        for (int i = 0; i < 200 && stale < WARM_STALE_RUNS; i++) {
            double s = run(engine, tokens, opts, logits);
            if (s < 0) return -1;
            if (s < best * 0.9) stale = 0;
            else stale++;
            best = Math.min(best, s);
            if ((System.nanoTime() - t0) / 1e9 > limitSeconds) break;
        }
        return best;
    }

    private static double run(InferenceEngine engine, int[] tokens, PrefillOptions opts, float[] logits) {
        Sequence seq = engine.newSequence();
        try {
            long t = System.nanoTime();
            if (!engine.prefill(seq, tokens, opts, logits)) return -1;
            return (System.nanoTime() - t) / 1e9;
        } finally {
            seq.release();
        }
    }

    /**
     * Decode-step samples within {@code budgetSeconds} (0: none): batches of 1, 2, 4 and 8 sequences of
     * a {@code contextTokens}-token prompt, passes of four steps per batch size until the budget is
     * spent, the fastest step of each size kept.
     */
    public static List<StepSample> decode(InferenceEngine engine, int contextTokens, double budgetSeconds) {
        List<StepSample> out = new ArrayList<>();
        if (!(budgetSeconds > 0)) return out;
        ModelInfo info = engine.info();
        int ctx = Math.max(1, Math.min(contextTokens, info.contextLength() / 4));
        float[] logits = new float[info.vocabSize()];
        int[] sizes = {1, 2, 4, 8};
        double[] best = new double[sizes.length];
        long[] context = new long[sizes.length];
        Arrays.fill(best, Double.POSITIVE_INFINITY);
        long t0 = System.nanoTime();
        List<Sequence> seqs = new ArrayList<>();
        try {
            for (int pass = 0; pass < 20 && (System.nanoTime() - t0) / 1e9 < budgetSeconds; pass++) {
                for (int k = 0; k < sizes.length && (System.nanoTime() - t0) / 1e9 < budgetSeconds; k++) {
                    while (seqs.size() < sizes[k]) {
                        Sequence s = engine.newSequence();
                        seqs.add(s);
                        if (!engine.prefill(s, prompt(ctx, info.vocabSize()), PrefillOptions.DEFAULT, logits))
                            return collect(sizes, best, context);
                    }
                    DecodeBatch db = new DecodeBatch(sizes[k], info.vocabSize());
                    for (int step = 0; step < 4; step++) {
                        db.clear();
                        long c = 0;
                        for (int i = 0; i < sizes[k]; i++) {
                            Sequence s = seqs.get(i);
                            if (s.length() + 1 >= info.contextLength()) return collect(sizes, best, context);
                            db.add(s, 1);
                            c += s.length() + 1;
                        }
                        long t = System.nanoTime();
                        engine.decode(db);
                        double secs = (System.nanoTime() - t) / 1e9;
                        for (int i = 0; i < sizes[k]; i++) if (!db.ok(i)) return collect(sizes, best, context);
                        if (secs < best[k]) {
                            best[k] = secs;
                            context[k] = c;
                        }
                    }
                }
            }
            return collect(sizes, best, context);
        } finally {
            for (Sequence s : seqs) s.release();
        }
    }

    private static List<StepSample> collect(int[] sizes, double[] best, long[] context) {
        List<StepSample> out = new ArrayList<>();
        for (int k = 0; k < sizes.length; k++)
            if (Double.isFinite(best[k])) out.add(new StepSample(sizes[k], context[k], best[k]));
        return out;
    }
}
