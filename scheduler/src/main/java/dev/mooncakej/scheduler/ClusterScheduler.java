package dev.mooncakej.scheduler;

import dev.mooncakej.kvcache.cost.CostProfile;
import dev.mooncakej.scheduler.admission.AdmissionRule;
import dev.mooncakej.scheduler.admission.DecodeLoads;
import dev.mooncakej.scheduler.policy.PrefillChoice;
import dev.mooncakej.scheduler.policy.PrefillSelector;
import dev.mooncakej.scheduler.policy.PrefillView;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * The conductor's scheduler (FAST Algorithm 1 and TR section 7), plain Java on caller-given time, so
 * the simulator and the live conductor run the same decisions. It holds the cluster view (prefill
 * queues and caches, decode batches and KV) that callers update through the {@code on*} methods.
 */
public final class ClusterScheduler implements DecodeLoads {
    private int decodeTurn;
    private boolean spreadDecodeTies;
    private final SchedulerConfig cfg;
    /**
     * Prefill instances by slot (a slot is the instance's bit in the prefix index; null: free), and the live slots in
     * order.
     */
    private final PrefillInstance[] prefill = new PrefillInstance[MAX_PREFILL];

    private final int[] activePrefill = new int[MAX_PREFILL];
    private int prefillCount;
    /** Decode instances by slot (never reused, so a request placed on a removed instance cannot touch a new one). */
    private DecodeInstance[] decode = new DecodeInstance[8];

    private int[] activeDecode = new int[8];
    private int decodeCount;
    private int decodeSlots;
    private final int cacheBlocksPerInstance;
    private final PrefixIndex index = new PrefixIndex();
    /** The blocks prefill instances will hold once their queued requests ran (counted on, not fetched from). */
    private final PrefixIndex pendingIndex = new PrefixIndex();

    private PrefillTimeModel prefillModel;
    private DecodeStepModel decodeModel;
    private final CostProfile profile;
    private final int[] prefixLengths;
    /** Per instance, the prefix it holds or will hold (what a request routed there reuses). */
    private final int[] localLengths;
    /**
     * Measured fetch bandwidth per path, source slot (a prefill instance or {@link #POOL}) by
     * destination slot, bytes per second; 0 where nothing was measured (the cluster-wide figure then).
     */
    private final double[][] pathBandwidth = new double[MAX_PREFILL + 1][MAX_PREFILL];

    private final SplittableRandom random;
    private final PrefillSelector selector;
    private final AdmissionRule admission;
    private final PrefillChoice choice = new PrefillChoice();
    private final View view = new View();

    /** The cluster as the prefill policy sees it during one decision. */
    private final class View implements PrefillView {
        private int usable, inputTokens, bestLen, bestInst;
        private double now;

        void set(int usable, int inputTokens, double now, int bestLen, int bestInst) {
            this.usable = usable;
            this.inputTokens = inputTokens;
            this.now = now;
            this.bestLen = bestLen;
            this.bestInst = bestInst;
        }

        @Override
        public int count() {
            return prefillCount;
        }

        @Override
        public int instance(int k) {
            return activePrefill[k];
        }

        @Override
        public double queueSeconds(int i) {
            return prefill[i].queueSeconds(now);
        }

        @Override
        public int localBlocks(int i) {
            return Math.min(localLengths[i], usable);
        }

        @Override
        public double prefillSeconds(int cachedBlocks) {
            return prefillModel.seconds(inputTokens, (long) cachedBlocks * cfg.blockTokens());
        }

        @Override
        public int bestBlocks() {
            return bestLen;
        }

        @Override
        public int bestHolder() {
            return bestInst;
        }

        @Override
        public double transferSeconds(int blocks, int from, int to) {
            return ClusterScheduler.this.transferSeconds(blocks, from, to);
        }

        @Override
        public double balancingThreshold() {
            return cfg.balancingThreshold();
        }

        @Override
        public int nextInt(int bound) {
            return random.nextInt(bound);
        }
    }

    private double tD;
    private long decodesSeen;

    public ClusterScheduler(
            SchedulerConfig cfg, int prefillInstances, int decodeInstances, int cacheBlocksPerInstance) {
        if (prefillInstances < 0 || prefillInstances > MAX_PREFILL)
            throw new IllegalArgumentException(
                    "prefill instances must be 0.." + MAX_PREFILL + ", got " + prefillInstances);
        if (decodeInstances < 0)
            throw new IllegalArgumentException("decode instances must be >= 0, got " + decodeInstances);
        if (cacheBlocksPerInstance < 0)
            throw new IllegalArgumentException(
                    "cache blocks must be >= 0 (0: unbounded), got " + cacheBlocksPerInstance);
        this.cfg = cfg;
        this.profile = cfg.profile();
        this.prefillModel = PrefillTimeModel.of(profile);
        this.decodeModel = DecodeStepModel.of(profile);
        this.cacheBlocksPerInstance = cacheBlocksPerInstance;
        for (int i = 0; i < prefillInstances; i++) addPrefill();
        for (int i = 0; i < decodeInstances; i++) addDecode();
        this.prefixLengths = new int[MAX_PREFILL];
        this.localLengths = new int[MAX_PREFILL];
        this.random = new SplittableRandom(cfg.seed());
        this.selector = cfg.policy().create();
        this.admission = cfg.admission().rule();
        this.tD = cfg.initialDecodeSeconds();
        this.bandwidth = cfg.bandwidthBytesPerSecond();
    }

    /** Bytes per second a prefix fetch moves at: the configured figure until measurements replace it. */
    private double bandwidth;

    public double bandwidthBytesPerSecond() {
        return bandwidth;
    }

    /** The measured bandwidth of prefix fetches (the live conductor's estimate from what fetches took). */
    public void setBandwidthBytesPerSecond(double bytesPerSecond) {
        if (!(bytesPerSecond > 0) || Double.isInfinite(bytesPerSecond))
            throw new IllegalArgumentException("bandwidth " + bytesPerSecond + ": expected a positive number");
        this.bandwidth = bytesPerSecond;
    }

    /** The prefix index holds one bit per prefill instance, and one for the KV pool. */
    public static final int MAX_PREFILL = 63;

    /**
     * A decision's {@code fetchFrom} when the prefix comes from memory the KV pool allocated (e.g. the
     * finished sequences decode workers put there), not from a prefill instance's cache.
     */
    public static final int POOL = 63;

    /** The blocks the KV pool holds in memory it allocated (bounded by the store master, which reports them). */
    private final PrefillInstance pool = new PrefillInstance(POOL, 0, index);

    /** The pool's view: {@link PrefillInstance#cache} and {@link PrefillInstance#uncache} as the store reports. */
    public PrefillInstance pool() {
        return pool;
    }

    private PrefillInstance source(int slot) {
        return slot == POOL ? pool : prefill[slot];
    }

    public SchedulerConfig config() {
        return cfg;
    }
    /** The prefill instance in slot {@code i}, or null when the slot is free. */
    public PrefillInstance prefill(int i) {
        return prefill[i];
    }
    /** The decode instance in slot {@code i}, or null when it was removed. */
    public DecodeInstance decode(int i) {
        return decode[i];
    }

    public int prefillCount() {
        return prefillCount;
    }

    public int decodeCount() {
        return decodeCount;
    }

    // ---- membership: instances join and leave a running scheduler; what it learnt stays ----

    /** A new prefill instance (empty cache, empty queue) in the lowest free slot; returns the slot. */
    public int addPrefill() {
        int slot = 0;
        while (slot < MAX_PREFILL && prefill[slot] != null) slot++;
        if (slot == MAX_PREFILL)
            throw new IllegalStateException(
                    "the scheduler has " + MAX_PREFILL + " prefill instances, the most its prefix index can hold");
        prefill[slot] = new PrefillInstance(slot, cacheBlocksPerInstance, index, pendingIndex);
        int k = prefillCount++;
        while (k > 0 && activePrefill[k - 1] > slot) {
            activePrefill[k] = activePrefill[k - 1];
            k--;
        }
        activePrefill[k] = slot;
        return slot;
    }

    /** Removes a prefill instance: its blocks leave the prefix index, its slot is free for a newcomer. */
    public void removePrefill(int slot) {
        PrefillInstance pi = prefill[slot];
        if (pi == null) throw new IllegalArgumentException("no prefill instance in slot " + slot);
        pi.uncacheAll();
        prefill[slot] = null;
        int k = 0;
        while (activePrefill[k] != slot) k++;
        System.arraycopy(activePrefill, k + 1, activePrefill, k, --prefillCount - k);
    }

    /** A new decode instance in a fresh slot; returns the slot. */
    public int addDecode() {
        if (decodeSlots == decode.length) decode = Arrays.copyOf(decode, decode.length * 2);
        if (decodeCount == activeDecode.length) activeDecode = Arrays.copyOf(activeDecode, activeDecode.length * 2);
        int slot = decodeSlots++;
        decode[slot] = new DecodeInstance(slot, cfg.decodeKvTokens());
        activeDecode[decodeCount++] = slot;
        return slot;
    }

    /** Removes a decode instance; requests placed on it no longer count anywhere. */
    public void removeDecode(int slot) {
        if (slot < 0 || slot >= decodeSlots || decode[slot] == null)
            throw new IllegalArgumentException("no decode instance in slot " + slot);
        decode[slot] = null;
        int k = 0;
        while (activeDecode[k] != slot) k++;
        System.arraycopy(activeDecode, k + 1, activeDecode, k, --decodeCount - k);
    }

    public PrefixIndex index() {
        return index;
    }

    public double decodeSecondsEstimate() {
        return tD;
    }

    private double ttftOverhead;

    /**
     * What a request's TTFT has beyond its queue, prefill and fetch (the live conductor learns it: the
     * calls to the workers, the KV's last layers and the commit); 0 in the simulator.
     */
    public double ttftOverheadSeconds() {
        return ttftOverhead;
    }

    public void setTtftOverheadSeconds(double s) {
        if (!(s >= 0) || Double.isInfinite(s))
            throw new IllegalArgumentException("TTFT overhead " + s + " s: expected a finite value >= 0");
        this.ttftOverhead = s;
    }

    public DecodeStepModel decodeModel() {
        return decodeModel;
    }

    /** The decode-step (TBT) model every decode load uses from now on (the live conductor's fit). */
    public void setDecodeModel(DecodeStepModel m) {
        if (!(m.base() >= 0 && m.perSequence() >= 0 && m.perContextToken() >= 0))
            throw new IllegalArgumentException("a decode-step model needs non-negative coefficients: " + m);
        this.decodeModel = m;
    }

    /** A decode instance's KV capacity as its worker reports it (tokens). */
    public void setDecodeCapacity(int d, long kvTokens) {
        if (d >= 0 && d < decodeSlots && decode[d] != null && kvTokens > 0) decode[d].kvCapacityTokens = kvTokens;
    }

    public PrefillTimeModel prefillModel() {
        return prefillModel;
    }

    /** Replaces the prefill-time regression (the live conductor refits it from the workers' reports). */
    public void setPrefillModel(PrefillTimeModel m) {
        this.prefillModel = m;
    }

    /**
     * Live conductors: decode instances of equal load (idle ones, or requests scheduled before any
     * of them started decoding) are taken in turn, fewer incoming first, instead of always the first.
     * The simulator keeps the first (its documented results were made so).
     */
    public void spreadDecodeTies(boolean on) {
        this.spreadDecodeTies = on;
    }

    /** Seconds to move {@code blocks} blocks of KV between instances. */
    public double transferSeconds(long blocks) {
        return blocks * (double) cfg.blockTokens() * profile.kvBytesPerToken() / bandwidth;
    }

    /**
     * Seconds to move {@code blocks} blocks from {@code from} (a prefill slot or {@link #POOL}) to
     * prefill slot {@code to}: the path's measured bandwidth where there is one, else the cluster's.
     */
    public double transferSeconds(long blocks, int from, int to) {
        double bw = pathBandwidth[from][to];
        return blocks * (double) cfg.blockTokens() * profile.kvBytesPerToken() / (bw > 0 ? bw : bandwidth);
    }

    /** The measured fetch bandwidth of one path (0: none measured; the cluster's figure applies). */
    public double pathBandwidth(int from, int to) {
        return pathBandwidth[from][to];
    }

    /** Sets one path's fetch bandwidth (the live conductor's estimate from that path's fetches). */
    public void setPathBandwidth(int from, int to, double bytesPerSecond) {
        if (!(bytesPerSecond > 0) || Double.isInfinite(bytesPerSecond))
            throw new IllegalArgumentException("bandwidth " + bytesPerSecond + ": expected a positive number");
        pathBandwidth[from][to] = bytesPerSecond;
    }

    /**
     * Decides where a request of {@code inputTokens} tokens with prefix-block keys {@code blocks} goes, or rejects it.
     */
    public Decision decide(long[] blocks, int inputTokens, double now) {
        return decide(blocks, inputTokens, inputTokens, now);
    }

    /**
     * As {@link #decide(long[], int, double)}, with the KV the request will hold on its decode instance
     * ({@code kvTokens}: the live conductor reserves prompt plus max tokens) counted in the decode load.
     */
    public Decision decide(long[] blocks, int inputTokens, int kvTokens, double now) {
        int bt = cfg.blockTokens();
        int usable = Math.min(blocks.length, (inputTokens - 1) / bt); // keep one token to compute
        if (prefillCount == 0 || decodeCount == 0)
            throw new IllegalStateException("the scheduler has " + prefillCount + " prefill and " + decodeCount
                    + " decode instances: it needs one of each");
        int slots = activePrefill[prefillCount - 1] + 1;
        index.prefixLengths(blocks, slots, prefixLengths);
        index.prefixLengths(blocks, slots, localLengths, pendingIndex);
        int bestLen = 0, bestInst = -1;
        for (int k = 0; k < prefillCount; k++) {
            int i = activePrefill[k];
            int l = Math.min(prefixLengths[i], usable);
            if (l > bestLen) {
                bestLen = l;
                bestInst = i;
            }
        }
        long holders = 1L << POOL; // the pool, and every instance: a prefix may come from several holders
        for (int k = 0; k < prefillCount; k++) holders |= 1L << activePrefill[k];
        int poolLen = Math.min(index.prefixLengthAny(blocks, holders), usable);
        if (poolLen > bestLen) {
            bestLen = poolLen;
            bestInst = POOL;
        }
        view.set(usable, inputTokens, now, bestLen, bestInst);
        selector.choose(view, choice);
        int p = choice.instance, fetchFrom = choice.fetchFrom, fetchBlocks = choice.fetchBlocks;
        int prefixBlocks;
        double ttft, tq, tp, tt;
        prefixBlocks = Math.min(localLengths[p], usable) + fetchBlocks;
        tt = fetchBlocks > 0 ? transferSeconds(fetchBlocks, fetchFrom, p) : 0;
        tq = prefill[p].queueSeconds(now);
        tp = prefillModel.seconds(inputTokens, (long) prefixBlocks * bt);
        ttft = tt + tq + tp + ttftOverhead;

        int d = -1;
        double tbt = Double.POSITIVE_INFINITY, best = Double.POSITIVE_INFINITY;
        int start = spreadDecodeTies ? decodeTurn++ % decodeCount : 0;
        for (int k = 0; k < decodeCount; k++) { // the instance whose load stays lowest with this request
            int i = activeDecode[(start + k) % decodeCount]; // equal loads (idle instances) go round in turn
            DecodeInstance di = decode[i];
            // requests placed here but still in prefill count as they will decode here (as the live
            // conductor's reservations do): a burst spreads instead of herding onto one instance
            double t = decodeModel.seconds(
                    di.running + di.externalRunning + di.incoming() + 1,
                    di.contextTokens + di.externalKvTokens + di.incomingTokenSum + inputTokens);
            // the KV term counts what requests still in prefill reserved here too: without it a burst,
            // when KV binds, piles onto one instance, which admission then refuses
            double load = Math.max(
                    t / cfg.tbtSlo(),
                    (double) (di.kvTokens + di.externalKvTokens + di.incomingKvSum + kvTokens) / di.kvCapacityTokens);
            if (load < best || spreadDecodeTies && load == best && di.incoming() < decode[d].incoming()) {
                best = load;
                tbt = t;
                d = i;
            }
        }
        double prefillLoad = ttft / cfg.ttftSlo();
        double decodeLoad = admission.decodeLoad(this, now, ttft, d, inputTokens, kvTokens);
        String reject = null;
        if (prefillLoad >= 1) reject = Decision.TTFT_SLO;
        else if (admission.checksAtArrival() && decodeLoad >= 1) reject = Decision.DECODE_LOAD;
        return new Decision(
                reject == null,
                reject,
                p,
                d,
                prefixBlocks,
                fetchFrom,
                fetchBlocks,
                tt,
                tq,
                tp,
                ttft,
                tbt,
                prefillLoad,
                decodeLoad);
    }

    /**
     * Predictive early rejection's decode load (TR 7.4, system-level prediction): the chosen decode
     * instance at time {@code t}, when this request's prefill would end: its running requests whose
     * decode (assumed to last t_d, learnt from history) has not ended by then, the requests whose
     * prefill will have ended by then, and this request; the larger of step time over the TBT SLO and
     * their KV over the instance's capacity.
     */
    @Override
    public double chosenLoadAt(double t, int d, int inputTokens, int kvTokens) {
        DecodeInstance di = decode[d];
        int n = di.predictedAt(t, tD) + 1;
        long held = di.predictedTokensAt(t, tD);
        return Math.max(
                decodeModel.seconds(n, held + inputTokens) / cfg.tbtSlo(),
                (double) (held + kvTokens) / di.kvCapacityTokens);
    }

    /**
     * Early rejection's decode load: the chosen decode instance as it is now, with this request added:
     * the larger of step time over the TBT SLO and KV over capacity. It lags: requests still in
     * prefill, and decodes that will have ended by the time this request arrives, are not counted.
     */
    @Override
    public double chosenLoadNow(int d, int inputTokens, int kvTokens) {
        DecodeInstance di = decode[d];
        return Math.max(
                decodeModel.seconds(di.running + 1, di.contextTokens + inputTokens) / cfg.tbtSlo(),
                (double) (di.kvTokens + kvTokens) / di.kvCapacityTokens);
    }

    /**
     * Decode load now: over decode instances, the largest of step time over
     * the TBT SLO and KV in use over KV capacity (TR 7.1: load is the predicted max TBT over its SLO).
     * It lags: requests still in prefill are not in it yet.
     */
    public double decodeLoadNow() {
        double max = 0;
        for (int k = 0; k < decodeCount; k++) {
            DecodeInstance di = decode[activeDecode[k]];
            max = Math.max(
                    max,
                    Math.max(
                            decodeModel.seconds(di.running, di.contextTokens) / cfg.tbtSlo(),
                            (double) di.kvTokens / di.kvCapacityTokens));
        }
        return max;
    }

    /**
     * The decode stage's own check when a prefill is done: does its KV fit, and (admission NONE,
     * where nothing was checked before) does TBT stay inside its SLO? A no wastes the prefill.
     */
    public boolean decodeAdmits(int d, int inputTokens) {
        DecodeInstance di = decode[d];
        if (!di.fits(inputTokens)) return false;
        return admission.checksAtArrival()
                || decodeModel.seconds(di.running + 1, di.contextTokens + inputTokens) <= cfg.tbtSlo();
    }

    // ---- the cluster view, updated by the caller ----

    /**
     * An accepted request is queued on its prefill instance (whose cache takes its blocks) and expected at its decode
     * instance.
     */
    public void onScheduled(Decision dec, long[] blocks, int inputTokens, double now) {
        onScheduled(dec, blocks, inputTokens, inputTokens, now);
    }

    /** As above, the request reserving {@code kvTokens} of KV on its decode instance (prompt plus max tokens). */
    public void onScheduled(Decision dec, long[] blocks, int inputTokens, int kvTokens, double now) {
        PrefillInstance pi = prefill[dec.prefill()];
        double seconds = dec.transferSeconds() + dec.prefillSeconds();
        pi.busyUntil = Math.max(pi.busyUntil, now) + seconds;
        pi.pendingSeconds += seconds;
        pi.queued++;
        pi.touch(blocks, Math.min(dec.prefixBlocks() - dec.fetchBlocks(), blocks.length));
        if (dec.fetchFrom() >= 0 && source(dec.fetchFrom()) != null)
            source(dec.fetchFrom()).touch(blocks, dec.prefixBlocks());
        // bookkeeping at the choice (FAST 4.1), as blocks the instance *will* hold once its FIFO reaches
        // this request: later requests routed there count on them, no other instance fetches them yet
        pi.willHold(blocks);
        decode[dec.decode()].expect(now + dec.ttft(), inputTokens, kvTokens);
    }

    /**
     * The prefill ended after {@code busySeconds} on its instance: it leaves the instance's FIFO, and
     * the blocks it was to produce are held there now ({@code produced}), or were never made.
     */
    public void onPrefillDone(Decision dec, long[] blocks, double busySeconds, boolean produced) {
        PrefillInstance pi = prefill[dec.prefill()];
        if (pi == null) return; // the instance left meanwhile
        pi.queued--;
        pi.pendingSeconds = pi.queued <= 0 ? 0 : pi.pendingSeconds - dec.transferSeconds() - dec.prefillSeconds();
        pi.busySeconds += busySeconds;
        if (produced) pi.cache(blocks);
        else pi.producedOrDropped(blocks);
    }

    /**
     * A request queued on its prefill instance never reached it (its decode reservation was refused or
     * its client left first): it leaves the instance's FIFO, and the time it was expected to take
     * leaves the queue estimate, which would otherwise keep it until the instance next ran dry. The
     * blocks cached at the choice stay (whether the instance held them before is not known).
     */
    public void onPrefillAbandoned(Decision dec, long[] blocks, double now) {
        PrefillInstance pi = prefill[dec.prefill()];
        if (pi == null) return;
        pi.queued--;
        double seconds = dec.transferSeconds() + dec.prefillSeconds();
        pi.pendingSeconds = pi.queued <= 0 ? 0 : pi.pendingSeconds - seconds;
        pi.busyUntil = pi.queued <= 0 ? Math.min(pi.busyUntil, now) : Math.max(now, pi.busyUntil - seconds);
        pi.producedOrDropped(blocks);
    }

    /**
     * The queue estimate corrected by what happened (call after {@link #onPrefillDone}): a prefill
     * ended at {@code now}, so the requests still queued on its instance start now and end after
     * their predicted seconds. (Adding each ended request's lateness to the estimate instead counts
     * one request's lateness again for every request queued behind it.) An empty instance is free now.
     */
    public void correctQueue(Decision dec, double now) {
        PrefillInstance pi = prefill[dec.prefill()];
        if (pi == null) return;
        pi.busyUntil = now + (pi.queued <= 0 ? 0 : Math.max(0, pi.pendingSeconds));
    }

    /**
     * The reservation of a scheduled request landed on decode instance {@code to} instead of the
     * decision's: its expected arrival and KV move there. Returns the decision with that instance.
     */
    public Decision movedDecode(Decision dec, double scheduledAt, int to, int inputTokens, int kvTokens) {
        if (to == dec.decode() || decode[to] == null) return dec;
        DecodeInstance from = decode[dec.decode()];
        double arrival = scheduledAt + dec.ttft(); // what identifies the expectation (as in onLeftPrefill)
        if (from != null) from.arrived(arrival);
        decode[to].expect(arrival, inputTokens, kvTokens);
        return new Decision(
                dec.accepted(),
                dec.rejectReason(),
                dec.prefill(),
                to,
                dec.prefixBlocks(),
                dec.fetchFrom(),
                dec.fetchBlocks(),
                dec.transferSeconds(),
                dec.queueSeconds(),
                dec.prefillSeconds(),
                dec.ttft(),
                dec.tbt(),
                dec.prefillLoad(),
                dec.decodeLoad());
    }

    /**
     * The request left prefill: it no longer counts as incoming; admitted, it starts decoding now and
     * its KV is taken on the decode instance.
     */
    public void onLeftPrefill(Decision dec, double scheduledAt, int inputTokens, boolean admitted, double now) {
        onLeftPrefill(dec, scheduledAt, inputTokens, inputTokens, admitted, now);
    }

    /** As above, the request holding {@code kvTokens} of KV while it decodes (its reservation). */
    public void onLeftPrefill(
            Decision dec, double scheduledAt, int inputTokens, int kvTokens, boolean admitted, double now) {
        DecodeInstance di = decode[dec.decode()];
        if (di == null) return; // the instance left meanwhile
        di.arrived(scheduledAt + dec.ttft());
        if (admitted) {
            di.startRunning(now, inputTokens);
            di.kvTokens += kvTokens;
        }
    }

    /**
     * What a decode worker reports running and holding: the part this scheduler did not place itself
     * (requests of a previous leader, before a failover) counts in its load until they end.
     */
    public void onDecodeReport(int d, int reportedRunning, long reportedKvTokens) {
        DecodeInstance di = decode[d];
        if (di == null) return;
        di.externalRunning = Math.max(0, reportedRunning - di.running - di.incoming());
        di.externalKvTokens = Math.max(0, reportedKvTokens - di.kvTokens);
    }

    /** A decode step added one token to each of {@code batch} running requests. */
    public void onDecodeTokens(int d, int batch) {
        decode[d].contextTokens += batch;
        decode[d].kvTokens += batch;
    }

    /** A request finished decoding: its KV ({@code contextTokens}) is freed; t_d learns from its duration. */
    public void onDecodeEnd(int d, double start, double now, int contextTokens) {
        onDecodeEnd(d, start, now, contextTokens, contextTokens);
    }

    /**
     * As above, freeing {@code kvTokens} of KV (a reservation's size); {@code d} = -1: its instance left (t_d still
     * learns).
     */
    public void onDecodeEnd(int d, double start, double now, int contextTokens, int kvTokens) {
        DecodeInstance di = d < 0 ? null : decode[d];
        if (di != null) {
            di.stopRunning(start, contextTokens);
            di.kvTokens -= kvTokens;
        }
        double seconds = now - start;
        tD = decodesSeen++ == 0 ? seconds : 0.98 * tD + 0.02 * seconds; // t_d learnt from history
    }
}
