package dev.mooncakej.simulator;

import dev.mooncakej.kvcache.cost.CostProfile;
import dev.mooncakej.scheduler.PrefillTimeModel;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.PriorityQueue;

/**
 * The colocated baseline as vLLM runs it, on the same cost profile: every instance runs prefill and
 * decode in one forward pass per iteration. With chunked prefill, an iteration carries the running
 * batch's decode tokens and one prefill chunk of at most {@code chunkTokens}, and costs one pass
 * ({@link #iterationSeconds}: the fixed per-pass cost once, plus each part's token and attention
 * work); without it, a waiting prefill runs whole while the batch waits. Prefix caching (per-instance
 * LRU of blocks) is on or off. Requests go to the instance with the least work queued or, with
 * cache-aware routing, to the one where queued work plus this prompt's uncached prefill is least.
 * With TTFT admission a request predicted over the TTFT SLO is rejected at arrival (as P/D does);
 * a request that does not fit in KV waits. The fair baseline (simulate's default for --colocated):
 * vLLM's chunk of {@value #VLLM_CHUNK_TOKENS} tokens, cache-aware routing, TTFT admission, and the
 * same cost profile (decode at its assumed HBM efficiency) as P/D.
 */
public final class ColocatedSimulation {
    private final CostProfile profile;
    private final PrefillTimeModel model;
    private final int instances, blockTokens, chunkTokens, cacheBlocks;
    private final boolean chunked, prefixCaching, cacheAwareRouting, ttftAdmission;

    /**
     * vLLM's default token budget of one forward pass with chunked prefill (max_num_batched_tokens) on
     * its OpenAI server, 2,048 (its V0 default was 512): what the fair baseline chunks prompts by.
     */
    public static final int VLLM_CHUNK_TOKENS = 2048;

    private final long kvCapacityTokens;
    private final double ttftSlo, tbtSlo;

    public ColocatedSimulation(
            CostProfile profile,
            int instances,
            int blockTokens,
            int chunkTokens,
            boolean chunked,
            boolean prefixCaching,
            int cacheBlocks,
            long kvCapacityTokens,
            double ttftSlo,
            double tbtSlo,
            boolean cacheAwareRouting) {
        this(
                profile,
                instances,
                blockTokens,
                chunkTokens,
                chunked,
                prefixCaching,
                cacheBlocks,
                kvCapacityTokens,
                ttftSlo,
                tbtSlo,
                cacheAwareRouting,
                false);
    }

    /**
     * As above; with {@code ttftAdmission} a request whose predicted TTFT on the instance it is routed to
     * (the prefill work queued there plus its own uncached prefill) is over the TTFT SLO is rejected at
     * arrival, the same check the P/D scheduler makes in every admission mode.
     */
    public ColocatedSimulation(
            CostProfile profile,
            int instances,
            int blockTokens,
            int chunkTokens,
            boolean chunked,
            boolean prefixCaching,
            int cacheBlocks,
            long kvCapacityTokens,
            double ttftSlo,
            double tbtSlo,
            boolean cacheAwareRouting,
            boolean ttftAdmission) {
        this.ttftAdmission = ttftAdmission;
        if (chunkTokens < 1)
            throw new IllegalArgumentException("--chunk-tokens " + chunkTokens + ": expected at least 1 token");
        this.cacheAwareRouting = cacheAwareRouting;
        this.profile = profile;
        this.model = PrefillTimeModel.of(profile);
        this.instances = instances;
        this.blockTokens = blockTokens;
        this.chunkTokens = chunkTokens;
        this.chunked = chunked;
        this.prefixCaching = prefixCaching;
        this.cacheBlocks = cacheBlocks;
        this.kvCapacityTokens = kvCapacityTokens;
        this.ttftSlo = ttftSlo;
        this.tbtSlo = tbtSlo;
    }

    private static final class Req {
        final TraceRequest r;
        long computed; // prompt tokens with KV
        long prefixTokens;
        double firstTokenAt = -1, lastTokenAt;
        int produced;
        double[] gaps;

        Req(TraceRequest r) {
            this.r = r;
        }
    }

    private final class Instance {
        final ArrayDeque<Req> waiting = new ArrayDeque<>();
        final List<Req> running = new ArrayList<>();
        final LinkedHashMap<Long, Boolean> cache = new LinkedHashMap<>(1024, 0.75f, true);
        long kv;
        boolean busy;
        double queuedWork; // predicted prefill seconds waiting

        long cachedPrefix(long[] blocks, int input) {
            if (!prefixCaching) return 0;
            int n = 0;
            while (n < blocks.length && cache.containsKey(blocks[n])) n++;
            return Math.min((long) n * blockTokens, input - 1L);
        }

        void remember(long[] blocks) {
            if (!prefixCaching) return;
            for (long b : blocks) cache.put(b, Boolean.TRUE);
            if (cacheBlocks > 0)
                for (Iterator<Long> it = cache.keySet().iterator(); cache.size() > cacheBlocks && it.hasNext(); ) {
                    it.next();
                    it.remove();
                }
        }
    }

    private record Event(double time, long seq, int type, int target) {}

    /**
     * One forward pass carrying prefill tokens {@code [from, to)} of one prompt and one decode token for
     * each of {@code batch} sequences over {@code context} tokens: the fixed per-pass cost (reading the
     * weights) once, the larger of the two parts' fixed costs, plus the prefill chunk's token and
     * attention work and the batch's per-sequence and per-context work.
     */
    public double iterationSeconds(long from, long to, int batch, long context) {
        boolean prefill = to > from, decode = batch > 0;
        if (!prefill && !decode) return 0;
        double t = 0, fixed = 0;
        if (prefill) {
            t += model.c1() * (to - from) + model.c2() * ((double) to * to - (double) from * from);
            fixed = model.c0();
        }
        if (decode) {
            t += profile.decodePerSequence() * batch + profile.decodePerContextToken() * context;
            fixed = Math.max(fixed, profile.decodeBase());
        }
        return t + fixed;
    }

    public SimulationResult run(List<TraceRequest> trace) {
        PriorityQueue<Event> events = new PriorityQueue<>(
                (a, b) -> a.time != b.time ? Double.compare(a.time, b.time) : Long.compare(a.seq, b.seq));
        long[] seq = {0};
        Instance[] inst = new Instance[instances];
        for (int i = 0; i < instances; i++) inst[i] = new Instance();
        for (TraceRequest r : trace) events.add(new Event(r.arrival(), seq[0]++, 0, r.index()));
        List<Double> ttfts = new ArrayList<>(), tbts = new ArrayList<>();
        int good = 0, completed = 0, rejected = 0;
        double busySeconds = 0, now = 0;
        long hitTokens = 0, allTokens = 0;
        while (!events.isEmpty()) {
            Event e = events.poll();
            now = e.time;
            if (e.type == 0) { // arrival: least queued work
                TraceRequest r = trace.get(e.target);
                int best = 0;
                double bestCost = Double.POSITIVE_INFINITY;
                for (int i = 0; i < instances; i++) {
                    double cost = inst[i].queuedWork + inst[i].running.size() * 0.01;
                    if (cacheAwareRouting) // what this prompt would cost there, its cached prefix reused
                    cost += model.seconds(r.inputTokens(), inst[i].cachedPrefix(r.blocks(), r.inputTokens()));
                    if (cost < bestCost) {
                        bestCost = cost;
                        best = i;
                    }
                }
                Instance in = inst[best];
                long cachedThere = in.cachedPrefix(r.blocks(), r.inputTokens());
                if (ttftAdmission && in.queuedWork + model.seconds(r.inputTokens(), cachedThere) > ttftSlo) {
                    rejected++;
                    continue;
                }
                Req q = new Req(r);
                q.prefixTokens = cachedThere;
                q.computed = q.prefixTokens;
                hitTokens += q.prefixTokens;
                allTokens += r.inputTokens();
                in.queuedWork += model.seconds(r.inputTokens(), q.prefixTokens);
                in.waiting.add(q);
                if (!in.busy) {
                    in.busy = true;
                    events.add(new Event(now, seq[0]++, 1, best));
                }
                continue;
            }
            // iteration on instance e.target
            Instance in = inst[e.target];
            Req pre = null;
            long chunk = 0;
            Req head = in.waiting.peek();
            if (head != null && in.kv + head.r.inputTokens() <= kvCapacityTokens) {
                pre = head;
                chunk = chunked
                        ? Math.min(chunkTokens, head.r.inputTokens() - head.computed)
                        : head.r.inputTokens() - head.computed;
            }
            boolean decodeNow = chunked || pre == null;
            int batch = decodeNow ? in.running.size() : 0;
            long ctx = 0;
            if (batch > 0) for (Req q : in.running) ctx += q.r.inputTokens() + q.produced;
            double step = iterationSeconds(
                    pre == null ? 0 : pre.computed, pre == null ? 0 : pre.computed + chunk, batch, ctx);
            if (step == 0) {
                in.busy = false;
                continue;
            }
            double end = now + step;
            busySeconds += step;
            if (decodeNow) {
                for (Iterator<Req> it = in.running.iterator(); it.hasNext(); ) {
                    Req q = it.next();
                    q.gaps[q.produced - 1] = end - q.lastTokenAt;
                    q.lastTokenAt = end;
                    in.kv++;
                    if (++q.produced >= q.r.outputTokens()) {
                        it.remove();
                        in.kv -= q.r.inputTokens() + q.produced - 1;
                        completed++;
                        double ttft = q.firstTokenAt - q.r.arrival(), tbt = Simulation.tbt(q.gaps);
                        ttfts.add(ttft);
                        tbts.add(tbt);
                        if (ttft <= ttftSlo && tbt <= tbtSlo) good++;
                    }
                }
            }
            if (pre != null) {
                pre.computed += chunk;
                if (pre.computed >= pre.r.inputTokens()) {
                    in.waiting.poll();
                    in.queuedWork = Math.max(0, in.queuedWork - model.seconds(pre.r.inputTokens(), pre.prefixTokens));
                    in.remember(pre.r.blocks());
                    pre.firstTokenAt = end;
                    pre.lastTokenAt = end;
                    pre.produced = 1;
                    pre.gaps = new double[Math.max(0, pre.r.outputTokens() - 1)];
                    in.kv += pre.r.inputTokens();
                    if (pre.r.outputTokens() <= 1) {
                        in.kv -= pre.r.inputTokens();
                        completed++;
                        double ttft = end - pre.r.arrival();
                        ttfts.add(ttft);
                        tbts.add(0.0);
                        if (ttft <= ttftSlo) good++;
                    } else {
                        in.running.add(pre);
                    }
                }
            }
            events.add(new Event(end, seq[0]++, 1, e.target));
        }
        int n = trace.size();
        double[] t = ttfts.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        double[] b = tbts.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        return new SimulationResult(
                n,
                completed,
                rejected,
                rejected,
                0,
                Simulation.mean(t),
                Simulation.percentile(t, 0.9),
                Simulation.percentile(b, 0.9),
                (double) good / n,
                good,
                0,
                0,
                0,
                allTokens == 0 ? 0 : (double) hitTokens / allTokens,
                busySeconds,
                now > 0 ? busySeconds / (now * instances) : 0,
                now,
                new double[0],
                new double[0],
                new double[0]);
    }
}
