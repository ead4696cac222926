package dev.mooncakej.scheduler;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.DoubleSupplier;

/**
 * The live conductor's use of the same {@link ClusterScheduler} the simulator drives: a decision per
 * request on wall-clock time, the cluster view updated as prefills and decodes end, the prefill time
 * regression refitted from what the prefill workers report, and membership applied to the running
 * scheduler (workers join and leave; the fitted model, t_d and the other workers' state stay). Calls
 * are serialized (one lock).
 */
public final class LiveScheduler {
    /**
     * Where a request goes, and the decision that sent it there; {@code prefillInstance} and
     * {@code decodeInstance} are the scheduler's objects at that moment, so the end of a request
     * whose worker has left since touches nothing.
     */
    public record Choice(
            Decision decision,
            WorkerEndpoint prefill,
            List<WorkerEndpoint> decodeCandidates,
            double scheduledAt,
            PrefillInstance prefillInstance,
            DecodeInstance decodeInstance,
            int kvTokens) {}

    private static final int FIT_WINDOW = 256;
    private static final int REFIT_EVERY = 16;

    private final ClusterScheduler scheduler;
    private final DoubleSupplier clock;
    private final Map<String, Integer> prefillSlots = new HashMap<>();
    private final Map<String, Integer> decodeSlots = new HashMap<>();
    private final Map<Integer, WorkerEndpoint> prefillBySlot = new HashMap<>();
    private final Map<Integer, WorkerEndpoint> decodeBySlot = new HashMap<>();
    private final long[] sampleN = new long[FIT_WINDOW], sampleP = new long[FIT_WINDOW];
    private final double[] sampleT = new double[FIT_WINDOW];
    private long samples;
    private volatile List<WorkerEndpoint> prefill = List.of();
    private volatile List<WorkerEndpoint> decode = List.of();

    /** A scheduler core with no instances yet ({@link #setWorkers} adds them). */
    public LiveScheduler(ClusterScheduler emptyScheduler, DoubleSupplier clock) {
        if (emptyScheduler.prefillCount() != 0 || emptyScheduler.decodeCount() != 0)
            throw new IllegalArgumentException("the live scheduler starts from an empty core");
        this.scheduler = emptyScheduler;
        this.clock = clock;
    }

    public List<WorkerEndpoint> prefillWorkers() {
        return prefill;
    }

    public List<WorkerEndpoint> decodeWorkers() {
        return decode;
    }

    public ClusterScheduler core() {
        return scheduler;
    }

    public boolean ready() {
        return !prefill.isEmpty() && !decode.isEmpty();
    }

    public long fitSamples() {
        synchronized (this) {
            return samples;
        }
    }

    /**
     * Applies membership: workers not in the lists leave the scheduler (a prefill worker's blocks
     * leave the index), new ones join empty; the others keep their state. Returns the prefill
     * workers that joined (whose prefix index the caller may seed).
     */
    public synchronized List<WorkerEndpoint> setWorkers(
            List<WorkerEndpoint> prefillWorkers, List<WorkerEndpoint> decodeWorkers) {
        List<WorkerEndpoint> joined = new ArrayList<>();
        apply(prefillWorkers, prefillSlots, prefillBySlot, true, joined);
        apply(decodeWorkers, decodeSlots, decodeBySlot, false, new ArrayList<>());
        prefill = prefillBySlot.entrySet().stream()
                .sorted(Map.Entry.comparingByKey())
                .map(Map.Entry::getValue)
                .toList();
        decode = decodeBySlot.entrySet().stream()
                .sorted(Map.Entry.comparingByKey())
                .map(Map.Entry::getValue)
                .toList();
        return joined;
    }

    private void apply(
            List<WorkerEndpoint> want,
            Map<String, Integer> slots,
            Map<Integer, WorkerEndpoint> bySlot,
            boolean isPrefill,
            List<WorkerEndpoint> joined) {
        Map<String, WorkerEndpoint> wanted = new HashMap<>();
        for (WorkerEndpoint w : want) wanted.put(w.url(), w);
        for (var it = slots.entrySet().iterator(); it.hasNext(); ) {
            var e = it.next();
            if (wanted.containsKey(e.getKey())) continue;
            if (isPrefill) scheduler.removePrefill(e.getValue());
            else scheduler.removeDecode(e.getValue());
            bySlot.remove(e.getValue());
            it.remove();
        }
        for (WorkerEndpoint w : want) {
            if (slots.containsKey(w.url())) continue;
            int slot = isPrefill ? scheduler.addPrefill() : scheduler.addDecode();
            slots.put(w.url(), slot);
            bySlot.put(slot, w);
            joined.add(w);
        }
    }

    /**
     * A decision; rejected ones are returned too (the caller answers 429). {@code kvTokens}: what the request reserves
     * on decode.
     */
    public synchronized Choice choose(long[] blockKeys, int inputTokens, int kvTokens) {
        double now = clock.getAsDouble();
        Decision d = scheduler.decide(blockKeys, inputTokens, kvTokens, now);
        if (d.accepted()) scheduler.onScheduled(d, blockKeys, inputTokens, now);
        WorkerEndpoint first = decodeBySlot.get(d.decode());
        List<WorkerEndpoint> candidates = new ArrayList<>();
        candidates.add(first);
        decode.stream()
                .filter(w -> w != first)
                .sorted(Comparator.comparingInt(WorkerEndpoint::inFlight))
                .forEach(candidates::add);
        return new Choice(
                d,
                prefillBySlot.get(d.prefill()),
                candidates,
                now,
                scheduler.prefill(d.prefill()),
                scheduler.decode(d.decode()),
                kvTokens);
    }

    /**
     * The prefill ended (ok: the request went on to decode); its compute time refines the regression.
     * Returns the decode start time to hand back to {@link #decodeEnded}.
     */
    public synchronized double prefillEnded(Choice c, int inputTokens, int cachedTokens, double seconds, boolean ok) {
        double now = clock.getAsDouble();
        if (scheduler.prefill(c.decision().prefill()) == c.prefillInstance())
            scheduler.onPrefillDone(c.decision(), seconds);
        if (scheduler.decode(c.decision().decode()) == c.decodeInstance())
            scheduler.onLeftPrefill(c.decision(), c.scheduledAt(), inputTokens, c.kvTokens(), ok, now);
        if (!ok) return now;
        int i = (int) (samples++ % FIT_WINDOW);
        sampleN[i] = inputTokens;
        sampleP[i] = cachedTokens;
        sampleT[i] = seconds;
        if (samples >= REFIT_EVERY && samples % REFIT_EVERY == 0) {
            int n = (int) Math.min(samples, FIT_WINDOW);
            try {
                PrefillTimeModel m = PrefillTimeModel.fit(
                        Arrays.copyOf(sampleN, n), Arrays.copyOf(sampleP, n), Arrays.copyOf(sampleT, n));
                if (m.c1() >= 0 && m.c2() >= 0) scheduler.setPrefillModel(m);
            } catch (IllegalArgumentException notYet) {
                // the samples do not determine a fit yet (e.g. all the same length): keep the current model
            }
        }
        return now;
    }

    /**
     * A prefill fetched {@code tokens} tokens' KV from the pool in {@code seconds} (lookup, pins and
     * reads): the fetch price Algorithm 1 uses follows it (an exponentially weighted mean of bytes per
     * second, weight 0.2 for the newest).
     */
    public synchronized void fetched(int tokens, double seconds) {
        if (tokens <= 0 || !(seconds > 0) || Double.isInfinite(seconds)) return;
        double bw = tokens * (double) scheduler.config().profile().kvBytesPerToken() / seconds;
        double next = fetches++ == 0 ? bw : 0.8 * scheduler.bandwidthBytesPerSecond() + 0.2 * bw;
        scheduler.setBandwidthBytesPerSecond(Math.max(1e6, Math.min(1e12, next)));
    }

    private long fetches;

    /** The decode of a request that started at {@code decodeStart} ended holding {@code contextTokens}. */
    public synchronized void decodeEnded(Choice c, int contextTokens, double decodeStart) {
        boolean same = scheduler.decode(c.decision().decode()) == c.decodeInstance();
        scheduler.onDecodeEnd(
                same ? c.decision().decode() : -1, decodeStart, clock.getAsDouble(), contextTokens, c.kvTokens());
    }

    public double now() {
        return clock.getAsDouble();
    }

    /** A decode worker's pushed load (running requests, KV tokens held). */
    public synchronized void applyDecodeLoad(String workerUrl, int running, long kvTokens) {
        Integer slot = decodeSlots.get(workerUrl);
        if (slot != null) scheduler.onDecodeReport(slot, running, kvTokens);
    }

    /**
     * Cache changes a prefill worker reported: stored blocks join its view and the global index, evicted ones leave.
     */
    public synchronized void applyKvEvents(String workerUrl, long[] stored, long[] evicted) {
        Integer slot = prefillSlots.get(workerUrl);
        if (slot == null) return;
        scheduler.prefill(slot).cache(stored);
        scheduler.prefill(slot).uncache(evicted);
    }

    /**
     * Blocks that became readable in, or all left, memory the KV pool allocated (the store master's
     * report): the scheduler's view of the pool, a fetch source like a prefill worker's cache.
     */
    public synchronized void applyPoolChanges(long[] added, long[] removed) {
        scheduler.pool().cache(added);
        scheduler.pool().uncache(removed);
    }

    /** The URL of the prefill worker in a scheduler slot (a decision's fetch source), or "?" once it left. */
    public synchronized String prefillUrl(int slot) {
        if (slot == ClusterScheduler.POOL) return "the KV pool";
        WorkerEndpoint w = prefillBySlot.get(slot);
        return w == null ? "?" : w.url();
    }

    /** A prefill worker's cache is gone (it stopped heartbeating): its blocks leave the index; it stays a member. */
    public synchronized void forget(String workerUrl) {
        Integer slot = prefillSlots.get(workerUrl);
        if (slot != null) scheduler.prefill(slot).uncacheAll();
    }

    /** Seeds a joined prefill worker's view with the blocks it reports holding (after a failover or a join). */
    public synchronized int seed(String workerUrl, long[] keys) {
        Integer slot = prefillSlots.get(workerUrl);
        if (slot == null) return 0;
        scheduler.prefill(slot).cache(keys);
        return keys.length;
    }
}
