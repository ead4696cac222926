package dev.mooncakej.scheduler;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.function.DoubleSupplier;

/**
 * The live conductor's use of the same {@link ClusterScheduler} the simulator drives: a decision per
 * request on wall-clock time, the cluster view updated as prefills and decodes end, and the prefill
 * time regression refitted from what the prefill workers report. Calls are serialized (one lock).
 */
public final class LiveScheduler {
    /** Where a request goes, and the decision that sent it there. */
    public record Choice(Decision decision, WorkerEndpoint prefill, List<WorkerEndpoint> decodeCandidates, double scheduledAt) {}

    private static final int FIT_WINDOW = 256;
    private static final int REFIT_EVERY = 16;

    private final ClusterScheduler scheduler;
    private final List<WorkerEndpoint> prefill;
    private final List<WorkerEndpoint> decode;
    private final DoubleSupplier clock;
    private final long[] sampleN = new long[FIT_WINDOW], sampleP = new long[FIT_WINDOW];
    private final double[] sampleT = new double[FIT_WINDOW];
    private long samples;

    public LiveScheduler(ClusterScheduler scheduler, List<WorkerEndpoint> prefill, List<WorkerEndpoint> decode, DoubleSupplier clock) {
        this.scheduler = scheduler;
        this.prefill = List.copyOf(prefill);
        this.decode = List.copyOf(decode);
        this.clock = clock;
    }

    public List<WorkerEndpoint> prefillWorkers() { return prefill; }
    public List<WorkerEndpoint> decodeWorkers() { return decode; }
    public ClusterScheduler core() { return scheduler; }

    /** A decision; rejected ones are returned too (the caller answers 429). */
    public synchronized Choice choose(long[] blockKeys, int inputTokens) {
        double now = clock.getAsDouble();
        Decision d = scheduler.decide(blockKeys, inputTokens, now);
        if (d.accepted()) scheduler.onScheduled(d, blockKeys, inputTokens, now);
        List<WorkerEndpoint> candidates = new ArrayList<>();
        candidates.add(decode.get(d.decode()));
        decode.stream().filter(w -> w != candidates.get(0)).sorted(Comparator.comparingInt(WorkerEndpoint::inFlight)).forEach(candidates::add);
        return new Choice(d, prefill.get(d.prefill()), candidates, now);
    }

    /**
     * The prefill ended (ok: the request went on to decode); its time refines the regression. Returns
     * the decode start time to hand back to {@link #decodeEnded}.
     */
    public synchronized double prefillEnded(Choice c, int inputTokens, int cachedTokens, double seconds, boolean ok) {
        double now = clock.getAsDouble();
        scheduler.onPrefillDone(c.decision(), seconds);
        scheduler.onLeftPrefill(c.decision(), c.scheduledAt(), inputTokens, ok, now);
        if (!ok) return now;
        int i = (int) (samples++ % FIT_WINDOW);
        sampleN[i] = inputTokens;
        sampleP[i] = cachedTokens;
        sampleT[i] = seconds;
        if (samples >= REFIT_EVERY && samples % REFIT_EVERY == 0) {
            int n = (int) Math.min(samples, FIT_WINDOW);
            try {
                PrefillTimeModel m = PrefillTimeModel.fit(java.util.Arrays.copyOf(sampleN, n), java.util.Arrays.copyOf(sampleP, n), java.util.Arrays.copyOf(sampleT, n));
                if (m.c1() >= 0 && m.c2() >= 0) scheduler.setPrefillModel(m);
            } catch (IllegalArgumentException notYet) {
                // the samples do not determine a fit yet (e.g. all the same length): keep the current model
            }
        }
        return now;
    }

    /** The decode of a request that started at {@code decodeStart} ended holding {@code contextTokens}. */
    public synchronized void decodeEnded(Choice c, int contextTokens, double decodeStart) {
        scheduler.onDecodeEnd(c.decision().decode(), decodeStart, clock.getAsDouble(), contextTokens);
    }

    public double now() { return clock.getAsDouble(); }

    /** A decode worker's pushed load (running requests, KV tokens held). */
    public synchronized void applyDecodeLoad(String workerUrl, int running, long kvTokens) {
        for (int i = 0; i < decode.size(); i++) {
            if (decode.get(i).url().equals(workerUrl)) {
                scheduler.onDecodeReport(i, running, kvTokens);
                return;
            }
        }
    }

    /** Cache changes a prefill worker reported: stored blocks join its view and the global index, evicted ones leave. */
    public synchronized void applyKvEvents(String workerUrl, long[] stored, long[] evicted) {
        for (int i = 0; i < prefill.size(); i++) {
            if (prefill.get(i).url().equals(workerUrl)) {
                scheduler.prefill(i).cache(stored);
                scheduler.prefill(i).uncache(evicted);
                return;
            }
        }
    }
}
