package dev.mooncakej.scheduler;

import dev.mooncakej.kvcache.wire.WorkerMessages;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
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
            int kvTokens,
            long[] blocks,
            int inputTokens,
            boolean probe) {}

    private final ClusterScheduler scheduler;
    private final DoubleSupplier clock;
    private final Map<String, Integer> prefillSlots = new HashMap<>();
    private final Map<String, Integer> decodeSlots = new HashMap<>();
    private final Map<Integer, WorkerEndpoint> prefillBySlot = new HashMap<>();
    private final Map<Integer, WorkerEndpoint> decodeBySlot = new HashMap<>();
    private final OnlineFits fits;
    private volatile List<WorkerEndpoint> prefill = List.of();
    private volatile List<WorkerEndpoint> decode = List.of();

    /** A scheduler core with no instances yet ({@link #setWorkers} adds them). */
    public LiveScheduler(ClusterScheduler emptyScheduler, DoubleSupplier clock) {
        if (emptyScheduler.prefillCount() != 0 || emptyScheduler.decodeCount() != 0)
            throw new IllegalArgumentException("the live scheduler starts from an empty core");
        this.scheduler = emptyScheduler;
        this.clock = clock;
        this.fits = new OnlineFits(emptyScheduler);
        emptyScheduler.setTtftOverheadSeconds(WARM_HOP_SECONDS); // until the first request measures it
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
            return fits.prefillSamples();
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
    public Choice choose(long[] blockKeys, int inputTokens, int kvTokens) {
        return choose(blockKeys, inputTokens, kvTokens, false);
    }

    /**
     * As above; {@code probe}: the conductor's own start-up request through the path (it warms the
     * hop; its times, taken while the cluster warms, are left out of the estimators and of the
     * prediction-error figures users judge by).
     */
    public synchronized Choice choose(long[] blockKeys, int inputTokens, int kvTokens, boolean probe) {
        double now = clock.getAsDouble();
        Decision d = scheduler.decide(blockKeys, inputTokens, kvTokens, now);
        if (d.accepted()) scheduler.onScheduled(d, blockKeys, inputTokens, kvTokens, now);
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
                kvTokens,
                blockKeys,
                inputTokens,
                probe);
    }

    /**
     * The request's KV was reserved on {@code decode}: when that is not the decided instance (it was
     * full, or failed), the request's expected load moves there. Returns the choice to go on with.
     */
    public synchronized Choice reservedOn(Choice c, WorkerEndpoint decode) {
        Integer slot = decodeSlots.get(decode.url());
        if (slot == null
                || slot == c.decision().decode()
                || scheduler.decode(c.decision().decode()) != c.decodeInstance()) return c;
        Decision moved = scheduler.movedDecode(c.decision(), c.scheduledAt(), slot, c.inputTokens(), c.kvTokens());
        return new Choice(
                moved,
                c.prefill(),
                c.decodeCandidates(),
                c.scheduledAt(),
                c.prefillInstance(),
                scheduler.decode(slot),
                c.kvTokens(),
                c.blocks(),
                c.inputTokens(),
                c.probe());
    }

    /**
     * What the live estimators hear as requests run: the prediction and the outcome of each TTFT and
     * TBT (the conductor exports their errors as metrics).
     */
    public interface Observer {
        void ttft(double predictedSeconds, double actualSeconds);

        void tbt(double predictedSeconds, double actualSeconds);
    }

    private volatile Observer observer = new Observer() {
        @Override
        public void ttft(double predictedSeconds, double actualSeconds) {}

        @Override
        public void tbt(double predictedSeconds, double actualSeconds) {}
    };

    public void observe(Observer o) {
        this.observer = o;
    }

    private final PredictionErrors ttftErrors = new PredictionErrors(128), tbtErrors = new PredictionErrors(128);

    /** The TTFT predictions' relative error quantile {@code q} over the last 128 requests (NaN: none yet). */
    public synchronized double ttftError(double q) {
        return ttftErrors.quantile(q);
    }

    /** The TBT predictions' relative error quantile {@code q} over the last 128 requests (NaN: none yet). */
    public synchronized double tbtError(double q) {
        return tbtErrors.quantile(q);
    }

    public synchronized long ttftSamples() {
        return ttftErrors.count();
    }

    /** As {@link #prefillEnded(Choice, int, int, double, double, boolean)} with no queue wait reported. */
    public synchronized double prefillEnded(Choice c, int inputTokens, int cachedTokens, double seconds, boolean ok) {
        return prefillEnded(c, inputTokens, cachedTokens, seconds, 0, ok);
    }

    /**
     * The prefill ended (ok: the request went on to decode). Its compute time ({@code computeSeconds},
     * the worker's own measure without its queue wait, which the scheduler models apart) refines the
     * prefill-time regression; the instance's queue estimate is corrected by when it really ended; the
     * TTFT prediction is compared with what happened. Returns the decode start time to hand back to
     * {@link #decodeEnded}.
     */
    public synchronized double prefillEnded(
            Choice c, int inputTokens, int cachedTokens, double computeSeconds, double queueSeconds, boolean ok) {
        double now = clock.getAsDouble();
        boolean sameInstance = scheduler.prefill(c.decision().prefill()) == c.prefillInstance();
        if (sameInstance) { // a failed prefill ended too: the requests behind it start now
            scheduler.onPrefillDone(c.decision(), c.blocks(), computeSeconds, ok);
            scheduler.correctQueue(c.decision(), now);
        }
        if (scheduler.decode(c.decision().decode()) == c.decodeInstance())
            scheduler.onLeftPrefill(c.decision(), c.scheduledAt(), inputTokens, c.kvTokens(), ok, now);
        if (!ok) return now;
        if (!c.probe()) {
            ttftErrors.add(c.decision().ttft(), now - c.scheduledAt());
            observer.ttft(c.decision().ttft(), now - c.scheduledAt());
        }
        // a probe ran while the cluster was warming (several at once, on cold paths): its times teach nothing
        if (!c.probe()) fits.prefill(inputTokens, cachedTokens, computeSeconds);
        return now;
    }

    /**
     * The conductor's own start-up request of {@code inputTokens}, sent alone on the warmed path, took
     * {@code computeSeconds} of compute: a sample of the prefill fit like a request's (it counts in no
     * prediction-error figure).
     */
    public synchronized void calibrated(int inputTokens, int cachedTokens, double computeSeconds) {
        fits.calibration(inputTokens, cachedTokens, computeSeconds);
    }

    /**
     * A new pass of lone start-up requests begins (a warm-up, run again when another worker is
     * admitted): the earlier passes' samples keep only a seed's weight, as they measured colder
     * processes (on a shared 2-core machine, the same 512 tokens took 1,074 ms in a cluster's first
     * pass and 779 ms in its third, and a user's 500 then 710 ms).
     */
    public synchronized void calibrationPass() {
        fits.demoteCalibration();
    }

    /**
     * The request never reached its prefill worker (no decode worker could reserve its KV, or its
     * client left while one was reserving): it leaves the prefill instance's queue, with the time it
     * was expected to take there, and its decode instance's expected load. Nothing is learnt from it.
     */
    public synchronized void prefillNotStarted(Choice c) {
        double now = clock.getAsDouble();
        if (scheduler.prefill(c.decision().prefill()) == c.prefillInstance())
            scheduler.onPrefillAbandoned(c.decision(), c.blocks(), now);
        if (scheduler.decode(c.decision().decode()) == c.decodeInstance())
            scheduler.onLeftPrefill(c.decision(), c.scheduledAt(), 0, c.kvTokens(), false, now);
    }

    /**
     * A moved stream its decode worker took from the KV pool itself: no prefill ran, so it leaves the
     * prefill instance's queue as one that never started, and goes on to its decode instance's load as
     * a prefilled one would ({@code inputTokens} of context). Nothing is learnt about prefill time.
     * Returns the decode start time to hand back to {@link #decodeEnded}.
     */
    public synchronized double takenOnDecode(Choice c, int inputTokens) {
        double now = clock.getAsDouble();
        if (scheduler.prefill(c.decision().prefill()) == c.prefillInstance())
            scheduler.onPrefillAbandoned(c.decision(), c.blocks(), now);
        if (scheduler.decode(c.decision().decode()) == c.decodeInstance())
            scheduler.onLeftPrefill(c.decision(), c.scheduledAt(), inputTokens, c.kvTokens(), true, now);
        return now;
    }

    /**
     * A worker's start-up measurement of its engine (its profile at admission): the estimators take
     * its prefills and decode steps as samples, so predictions fit this cluster from the first request.
     */
    public synchronized void calibrate(WorkerMessages.WorkerProfile profile) {
        if (profile.prefill() != null)
            for (var c : profile.prefill()) fits.seedPrefill(c.inputTokens(), c.cachedTokens(), c.seconds());
        if (profile.decode() != null)
            for (var c : profile.decode()) fits.seedDecode(c.batch(), (double) c.contextTokens(), c.seconds());
    }

    /**
     * A decode worker's steps since its last report: {@code count} steps took {@code seconds} in all,
     * over {@code batchSum} sequences and {@code contextSum} context tokens (summed per step). The
     * mean step is one sample of the TBT model.
     */
    public synchronized void decodeSteps(int count, double seconds, long batchSum, long contextSum) {
        if (clock.getAsDouble() < coldStepsUntil) return; // steps of the warm-up's cold decodes
        fits.decodeSteps(count, seconds, batchSum, contextSum);
    }

    private double coldStepsUntil = Double.NEGATIVE_INFINITY;

    /**
     * Decode steps reported for the next {@code seconds} (replacing any earlier setting) are not
     * learnt from: they ran the
     * conductor's warm-up on cold paths (seen: steps 5x the warm ones, and a TBT model that refused
     * every request after). Decode workers report their steps about once a second.
     */
    public synchronized void ignoreStepsFor(double seconds) {
        coldStepsUntil = clock.getAsDouble() + seconds;
    }

    public long decodeStepSamples() {
        synchronized (this) {
            return fits.stepSamples();
        }
    }

    private final Map<String, PathSamples> paths = new HashMap<>();

    /** The last samples of one transfer path and its fitted model (null until they determine one). */
    private static final class PathSamples {
        final long[] writes = new long[64], bytes = new long[64];
        final double[] concurrency = new double[64], seconds = new double[64];
        long n;
        PathModel model;
        double ewmaBandwidth;
    }

    /**
     * A prefill's KV writes to its decode worker: {@code writes} writes of {@code bytes} in all took
     * {@code seconds} summed, with {@code concurrency} writes in flight from the source on average.
     * Fits the path's bandwidth and congestion term; kept across membership changes.
     */
    public synchronized void kvWrites(
            String source, String destination, int writes, long bytes, double seconds, double concurrency) {
        if (writes <= 0 || bytes <= 0 || !(seconds > 0)) return;
        PathSamples p = paths.computeIfAbsent(source + " -> " + destination, k -> new PathSamples());
        int i = (int) (p.n++ % 64);
        p.writes[i] = writes;
        p.bytes[i] = bytes;
        p.concurrency[i] = concurrency;
        p.seconds[i] = seconds;
        double bw = bytes / seconds;
        p.ewmaBandwidth = p.n == 1 ? bw : 0.8 * p.ewmaBandwidth + 0.2 * bw;
        if (p.n >= 8 && p.n % 4 == 0) {
            int n = (int) Math.min(p.n, 64);
            try {
                PathModel m = PathModel.fit(
                        Arrays.copyOf(p.writes, n),
                        Arrays.copyOf(p.bytes, n),
                        Arrays.copyOf(p.concurrency, n),
                        Arrays.copyOf(p.seconds, n));
                if (m.perByte() > 0 && m.perByteCongestion() >= 0) p.model = m;
            } catch (IllegalArgumentException notYet) {
                // one size and one concurrency so far
            }
        }
    }

    /** Each transfer path's measured bandwidth (bytes per second, one write in flight; EWMA until a fit). */
    public synchronized Map<String, Double> pathBandwidths() {
        Map<String, Double> out = new TreeMap<>();
        paths.forEach((k, p) -> out.put(k, p.model != null ? p.model.bandwidth(1) : p.ewmaBandwidth));
        return out;
    }

    /** Each decode worker's KV capacity as the scheduler counts it (tokens; reported by the worker). */
    public synchronized Map<String, Long> decodeCapacities() {
        Map<String, Long> out = new TreeMap<>();
        decodeSlots.forEach((url, slot) -> out.put(url, scheduler.decode(slot).kvCapacityTokens()));
        return out;
    }

    /** The decode workers' KV in use as the scheduler counts it, 0..1 of their capacity (0 with none). */
    public synchronized double decodeKvUsage() {
        long used = 0, capacity = 0;
        for (int slot : decodeSlots.values()) {
            used += scheduler.decode(slot).kvTokens();
            capacity += scheduler.decode(slot).kvCapacityTokens();
        }
        return capacity <= 0 ? 0 : Math.min(1, (double) used / capacity);
    }

    /** A transfer path's fitted model, or null while its samples do not determine one. */
    public synchronized PathModel pathModel(String source, String destination) {
        PathSamples p = paths.get(source + " -> " + destination);
        return p == null ? null : p.model;
    }

    private final double[] overheads = new double[32];

    /** What the hop (reservation, the calls, the commit) costs on one host, warm: the overhead's starting point. */
    static final double WARM_HOP_SECONDS = 0.01;

    private long overheadSamples;

    /**
     * A request's TTFT was {@code ttftSeconds}, of which its prefill worker accounted for {@code
     * workerSeconds} (its wait, fetch, compute, KV writes and commit): the rest (the calls to the
     * workers, the reservation) is the TTFT overhead the scheduler adds to every prediction, the median
     * of the last 32 (a cold start's first seconds-long request does not stay in it).
     */
    public synchronized void ttftOverhead(double ttftSeconds, double workerSeconds) {
        ttftOverhead(ttftSeconds, workerSeconds, false);
    }

    private double probeOverhead = Double.POSITIVE_INFINITY;

    /**
     * As above; a {@code probe}'s hop (the conductor's warm-up, partly cold) only sets the overhead
     * until the first request measures it: the fastest probe's, the warmest the path has been.
     */
    public synchronized void ttftOverhead(double ttftSeconds, double workerSeconds, boolean probe) {
        double o = ttftSeconds - workerSeconds;
        if (!Double.isFinite(o)) return;
        if (probe) {
            probeOverhead = Math.min(probeOverhead, Math.max(0, o));
            if (overheadSamples == 0) scheduler.setTtftOverheadSeconds(probeOverhead);
            return;
        }
        overheads[(int) (overheadSamples++ % overheads.length)] = Math.max(0, o);
        int k = (int) Math.min(overheadSamples, overheads.length);
        double[] sorted = Arrays.copyOf(overheads, k);
        Arrays.sort(sorted);
        scheduler.setTtftOverheadSeconds(sorted[k / 2]);
    }

    /**
     * A prefill fetched {@code tokens} tokens' KV from the pool in {@code seconds} (lookup, pins and
     * reads): the fetch price Algorithm 1 uses follows it (an exponentially weighted mean of bytes per
     * second, weight 0.2 for the newest).
     */
    public synchronized void fetched(int tokens, double seconds) {
        fetched(null, tokens, seconds);
    }

    /**
     * As above, for the fetch of choice {@code c} (null: path unknown): its path (source to the
     * prefill instance) learns its own bandwidth too, which that path's fetch decisions then use.
     */
    public synchronized void fetched(Choice c, int tokens, double seconds) {
        if (tokens <= 0 || !(seconds > 0) || Double.isInfinite(seconds)) return;
        double bw = tokens * (double) scheduler.config().profile().kvBytesPerToken() / seconds;
        double next = fetches++ == 0 ? bw : 0.8 * scheduler.bandwidthBytesPerSecond() + 0.2 * bw;
        scheduler.setBandwidthBytesPerSecond(Math.max(1e6, Math.min(1e12, next)));
        if (c == null || c.decision().fetchFrom() < 0) return;
        if (scheduler.prefill(c.decision().prefill()) != c.prefillInstance()) return; // the instance left
        int from = c.decision().fetchFrom(), to = c.decision().prefill();
        double old = scheduler.pathBandwidth(from, to);
        scheduler.setPathBandwidth(from, to, Math.max(1e6, Math.min(1e12, old > 0 ? 0.8 * old + 0.2 * bw : bw)));
    }

    private long fetches;

    /** The decode of a request that started at {@code decodeStart} ended holding {@code contextTokens}. */
    public synchronized void decodeEnded(Choice c, int contextTokens, double decodeStart) {
        decodeEnded(c, contextTokens, decodeStart, 0);
    }

    /** As above, after {@code tokens} generated tokens: the mean TBT is compared with the decision's prediction. */
    public synchronized void decodeEnded(Choice c, int contextTokens, double decodeStart, int tokens) {
        double now = clock.getAsDouble();
        boolean same = scheduler.decode(c.decision().decode()) == c.decodeInstance();
        scheduler.onDecodeEnd(same ? c.decision().decode() : -1, decodeStart, now, contextTokens, c.kvTokens());
        if (tokens > 1 && !c.probe() && Double.isFinite(c.decision().tbt())) {
            double actual = (now - decodeStart) / (tokens - 1);
            tbtErrors.add(c.decision().tbt(), actual);
            observer.tbt(c.decision().tbt(), actual);
        }
    }

    public double now() {
        return clock.getAsDouble();
    }

    /** A decode worker's pushed load (running requests, KV tokens held). */
    public synchronized void applyDecodeLoad(String workerUrl, int running, long kvTokens) {
        applyDecodeLoad(workerUrl, running, kvTokens, 0);
    }

    /** As above, with the KV capacity the worker has ({@code capacityTokens}, 0: not reported). */
    public synchronized void applyDecodeLoad(String workerUrl, int running, long kvTokens, long capacityTokens) {
        Integer slot = decodeSlots.get(workerUrl);
        if (slot == null) return;
        scheduler.onDecodeReport(slot, running, kvTokens);
        scheduler.setDecodeCapacity(slot, capacityTokens);
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
