package dev.mooncakej.simulator;

import dev.mooncakej.kvcache.cost.CostProfile;
import dev.mooncakej.scheduler.ClusterScheduler;
import dev.mooncakej.scheduler.Decision;
import dev.mooncakej.scheduler.DecodeStepModel;
import dev.mooncakej.scheduler.OnlineFits;
import dev.mooncakej.scheduler.PrefillTimeModel;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.SplittableRandom;
import java.util.function.IntConsumer;

/**
 * Discrete-event simulation on virtual time that drives the real {@link ClusterScheduler}: requests
 * arrive from a trace; prefill instances run their FIFO queues in chunks; the KV streams layer by
 * layer, overlapped with the prefill; decode instances run continuous batching, one step for every
 * running request, KV capacity enforced through the scheduler's reservations.
 *
 * <p>The ground truth is not the scheduler's estimate: true times come from the cost profile with
 * log-normal noise ({@link SimulationConfig#noise}), a prefix fetch shares its source's bandwidth
 * with the other fetches from it, and the scheduler learns prefill and step times online from what
 * happened ({@link OnlineFits}, the live conductor's code), its queue estimate corrected at each
 * prefill end, starting from the profile times {@link SimulationConfig#estimateFactor}.
 */
public final class Simulation {
    private static final int ARRIVAL = 0, PREFILL_DONE = 1, DECODE_STEP = 2, SAMPLE = 3;

    private record Event(double time, long seq, int type, int target) {}

    /** A request on its way through the cluster. */
    private static final class Job {
        final TraceRequest r;
        Decision d;
        double scheduledAt, prefillSeconds, computeSeconds, firstTokenAt, decodeStart, lastTokenAt;
        int produced;
        double[] gaps;

        Job(TraceRequest r) {
            this.r = r;
        }
    }

    private final SimulationConfig cfg;
    private final ClusterScheduler scheduler;
    private final CostProfile profile;
    private final PrefillTimeModel truePrefill;
    private final DecodeStepModel trueStep;
    private final OnlineFits fits;
    private final SplittableRandom noise;
    private final Map<Integer, Integer> fetchesFrom = new HashMap<>();
    private final PriorityQueue<Event> events = new PriorityQueue<>(
            (a, b) -> a.time != b.time ? Double.compare(a.time, b.time) : Long.compare(a.seq, b.seq));
    private long seq;
    private final List<ArrayDeque<Job>> prefillQueues = new ArrayList<>();
    private final Job[] prefillRunning;
    private final List<List<Job>> decodeRunning = new ArrayList<>();
    private final boolean[] decodeStepping;
    private final List<TraceRequest> trace;
    private final IntConsumer progress;

    // results
    private int completed, rejectedArrival, rejectedAfterPrefill, good;
    private double wasted;
    private long hitBlocks, allBlocks, hitTokens, allTokens;
    private final List<Double> ttfts = new ArrayList<>();
    private final List<Double> tbts = new ArrayList<>();
    private final List<double[]> loads = new ArrayList<>();

    public Simulation(SimulationConfig cfg, List<TraceRequest> trace, IntConsumer progress) {
        this.cfg = cfg;
        this.trace = trace;
        this.progress = progress;
        this.scheduler = new ClusterScheduler(cfg.scheduler(), cfg.prefill(), cfg.decode(), cfg.cacheBlocks());
        this.profile = cfg.scheduler().profile();
        this.truePrefill = PrefillTimeModel.of(profile);
        this.trueStep = DecodeStepModel.of(profile);
        this.fits = new OnlineFits(scheduler);
        this.noise = new SplittableRandom(cfg.scheduler().seed() * 31 + 7);
        double f = cfg.estimateFactor();
        if (f != 1) {
            scheduler.setPrefillModel(
                    new PrefillTimeModel(truePrefill.c0() * f, truePrefill.c1() * f, truePrefill.c2() * f));
            scheduler.setDecodeModel(new DecodeStepModel(
                    trueStep.base() * f, trueStep.perSequence() * f, trueStep.perContextToken() * f));
        }
        if (cfg.hopSeconds() > 0) scheduler.setTtftOverheadSeconds(cfg.hopSeconds());
        for (int i = 0; i < cfg.prefill(); i++) prefillQueues.add(new ArrayDeque<>());
        this.prefillRunning = new Job[cfg.prefill()];
        for (int i = 0; i < cfg.decode(); i++) decodeRunning.add(new ArrayList<>());
        this.decodeStepping = new boolean[cfg.decode()];
    }

    public ClusterScheduler scheduler() {
        return scheduler;
    }

    public SimulationResult run() {
        for (TraceRequest r : trace) push(r.arrival(), ARRIVAL, r.index());
        push(0, SAMPLE, 0);
        Job[] jobs = new Job[trace.size()];
        int arrived = 0;
        double now = 0, lastArrival = trace.get(trace.size() - 1).arrival();
        while (!events.isEmpty()) {
            Event e = events.poll();
            now = e.time;
            switch (e.type) {
                case ARRIVAL -> {
                    Job j = new Job(trace.get(e.target));
                    jobs[e.target] = j;
                    arrive(j, now);
                    if (++arrived % 1000 == 0 && progress != null) progress.accept(arrived);
                }
                case PREFILL_DONE -> prefillDone(e.target, now);
                case DECODE_STEP -> decodeStep(e.target, now);
                case SAMPLE -> {
                    double prefillLoad = 0;
                    for (int i = 0; i < cfg.prefill(); i++)
                        prefillLoad += scheduler.prefill(i).queueSeconds(now);
                    loads.add(new double[] {
                        now, prefillLoad / cfg.prefill() / cfg.scheduler().ttftSlo(), scheduler.decodeLoadNow()
                    });
                    if (now < lastArrival || busy()) push(now + 1, SAMPLE, 0);
                }
                default -> throw new IllegalStateException("unknown event " + e.type);
            }
        }
        return result(now);
    }

    private boolean busy() {
        for (Job j : prefillRunning) if (j != null) return true;
        for (boolean s : decodeStepping) if (s) return true;
        return false;
    }

    private void push(double time, int type, int target) {
        events.add(new Event(time, seq++, type, target));
    }

    private void arrive(Job j, double now) {
        TraceRequest r = j.r;
        Decision d = scheduler.decide(r.blocks(), r.inputTokens(), now);
        allBlocks += r.blocks().length;
        allTokens += r.inputTokens();
        if (!d.accepted()) {
            rejectedArrival++;
            return;
        }
        hitBlocks += d.prefixBlocks();
        hitTokens += Math.min((long) d.prefixBlocks() * cfg.scheduler().blockTokens(), r.inputTokens());
        j.d = d;
        j.scheduledAt = now;
        scheduler.onScheduled(d, r.blocks(), r.inputTokens(), now);
        prefillQueues.get(d.prefill()).add(j);
        if (prefillRunning[d.prefill()] == null) startPrefill(d.prefill(), now);
    }

    private void startPrefill(int p, double now) {
        Job j = prefillQueues.get(p).poll();
        if (j == null) return;
        prefillRunning[p] = j;
        int n = j.r.inputTokens(), bt = cfg.scheduler().blockTokens();
        long done = Math.min((long) j.d.prefixBlocks() * bt, n - 1L);
        double fetch = 0;
        if (j.d.fetchBlocks() > 0) { // the source's bandwidth is shared by every fetch from it
            int k = fetchesFrom.merge(j.d.fetchFrom(), 1, Integer::sum);
            fetch = (double) j.d.fetchBlocks()
                    * bt
                    * profile.kvBytesPerToken()
                    / (scheduler.config().bandwidthBytesPerSecond() / k);
        }
        double compute = 0;
        for (long from = done; from < n; from += cfg.chunkTokens())
            compute += truePrefill.seconds(Math.min(n, from + cfg.chunkTokens()), from);
        compute *= noise();
        j.computeSeconds = compute;
        j.prefillSeconds = fetch + compute;
        push(now + j.prefillSeconds, PREFILL_DONE, p);
    }

    private void prefillDone(int p, double now) {
        Job j = prefillRunning[p];
        prefillRunning[p] = null;
        if (j.d.fetchBlocks() > 0) fetchesFrom.merge(j.d.fetchFrom(), -1, Integer::sum);
        scheduler.onPrefillDone(j.d, j.r.blocks(), j.prefillSeconds, true);
        // what the live conductor does with a prefill's report: correct the queue, learn compute time
        scheduler.correctQueue(j.d, now);
        fits.prefill(
                j.r.inputTokens(),
                Math.min((long) j.d.prefixBlocks() * cfg.scheduler().blockTokens(), j.r.inputTokens() - 1L),
                j.computeSeconds);
        int d = j.d.decode();
        boolean admitted = scheduler.decodeAdmits(d, j.r.inputTokens());
        scheduler.onLeftPrefill(j.d, j.scheduledAt, j.r.inputTokens(), admitted, now);
        if (!admitted) {
            rejectedAfterPrefill++;
            wasted += j.prefillSeconds;
        } else {
            j.firstTokenAt = now + cfg.hopSeconds(); // the request path's hop before the client sees it
            j.decodeStart = now;
            j.lastTokenAt = now;
            j.produced = 1; // the prefill's token
            j.gaps = new double[Math.max(0, j.r.outputTokens() - 1)];
            if (j.r.outputTokens() <= 1) finish(d, j, now);
            else {
                decodeRunning.get(d).add(j);
                if (!decodeStepping[d]) scheduleStep(d, now);
            }
        }
        startPrefill(p, now);
    }

    private void scheduleStep(int d, double now) {
        List<Job> running = decodeRunning.get(d);
        if (running.isEmpty()) {
            decodeStepping[d] = false;
            return;
        }
        decodeStepping[d] = true;
        long context = scheduler.decode(d).contextTokens();
        double step = trueStep.seconds(running.size(), context) * noise();
        fits.decodeSteps(1, step, running.size(), context); // as a decode worker reports its steps
        push(now + step, DECODE_STEP, d);
    }

    /** A log-normal factor of mean 1 and sigma {@link SimulationConfig#noise} (1 without noise). */
    private double noise() {
        double s = cfg.noise();
        return s == 0 ? 1 : Math.exp(s * noise.nextGaussian() - s * s / 2);
    }

    private void decodeStep(int d, double now) {
        List<Job> running = decodeRunning.get(d);
        scheduler.onDecodeTokens(d, running.size());
        for (int i = running.size() - 1; i >= 0; i--) {
            Job j = running.get(i);
            j.gaps[j.produced - 1] = now - j.lastTokenAt;
            j.lastTokenAt = now;
            if (++j.produced >= j.r.outputTokens()) {
                running.set(i, running.get(running.size() - 1));
                running.remove(running.size() - 1);
                finish(d, j, now);
            }
        }
        scheduleStep(d, now);
    }

    private void finish(int d, Job j, double now) {
        scheduler.onDecodeEnd(d, j.decodeStart, now, j.r.inputTokens() + j.produced - 1);
        completed++;
        double ttft = j.firstTokenAt - j.r.arrival();
        double tbt = tbt(j.gaps);
        ttfts.add(ttft);
        tbts.add(tbt);
        if (ttft <= cfg.scheduler().ttftSlo() && tbt <= cfg.scheduler().tbtSlo()) good++;
        j.gaps = null;
    }

    /** Mean of the largest 10% of the gaps (at least one), as the paper measures TBT. */
    static double tbt(double[] gaps) {
        if (gaps.length == 0) return 0;
        double[] g = gaps.clone();
        Arrays.sort(g);
        int k = Math.max(1, (int) Math.ceil(g.length * 0.1));
        double s = 0;
        for (int i = g.length - k; i < g.length; i++) s += g[i];
        return s / k;
    }

    private SimulationResult result(double end) {
        int n = trace.size();
        double[] t = ttfts.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        double[] b = tbts.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        double busy = 0;
        for (int i = 0; i < cfg.prefill(); i++) busy += scheduler.prefill(i).busySeconds();
        double[] lt = new double[loads.size()], lp = new double[loads.size()], ld = new double[loads.size()];
        for (int i = 0; i < loads.size(); i++) {
            lt[i] = loads.get(i)[0];
            lp[i] = loads.get(i)[1];
            ld[i] = loads.get(i)[2];
        }
        return new SimulationResult(
                n,
                completed,
                rejectedArrival + rejectedAfterPrefill,
                rejectedArrival,
                rejectedAfterPrefill,
                mean(t),
                percentile(t, 0.9),
                percentile(b, 0.9),
                (double) good / n,
                good,
                wasted,
                std(ld),
                allBlocks == 0 ? 0 : (double) hitBlocks / allBlocks,
                allTokens == 0 ? 0 : (double) hitTokens / allTokens,
                busy,
                end > 0 ? busy / (end * cfg.prefill()) : 0,
                end,
                lt,
                lp,
                ld);
    }

    static double mean(double[] v) {
        return v.length == 0 ? 0 : Arrays.stream(v).average().orElse(0);
    }

    static double percentile(double[] sorted, double q) {
        if (sorted.length == 0) return 0;
        return sorted[Math.min(sorted.length - 1, (int) Math.ceil(q * sorted.length) - 1)];
    }

    static double std(double[] v) {
        if (v.length == 0) return 0;
        double m = mean(v), s = 0;
        for (double x : v) s += (x - m) * (x - m);
        return Math.sqrt(s / v.length);
    }
}
