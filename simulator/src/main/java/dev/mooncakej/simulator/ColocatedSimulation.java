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
 * The colocated baseline in the style of vLLM, on the same cost profile: every instance runs prefill
 * and decode interleaved, one iteration at a time. With chunked prefill, an iteration is one decode
 * step for the running batch plus one prefill chunk of at most {@code chunkTokens}; without it, a
 * waiting prefill runs whole while the batch waits. Prefix caching (per-instance LRU of blocks) is on
 * or off. Requests go to the instance with the least work queued. Nothing is rejected at arrival;
 * a request that does not fit in KV waits.
 */
public final class ColocatedSimulation {
    private final CostProfile profile;
    private final PrefillTimeModel model;
    private final int instances, blockTokens, chunkTokens, cacheBlocks;
    private final boolean chunked, prefixCaching;
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
            double tbtSlo) {
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

    public SimulationResult run(List<TraceRequest> trace) {
        PriorityQueue<Event> events = new PriorityQueue<>(
                (a, b) -> a.time != b.time ? Double.compare(a.time, b.time) : Long.compare(a.seq, b.seq));
        long[] seq = {0};
        Instance[] inst = new Instance[instances];
        for (int i = 0; i < instances; i++) inst[i] = new Instance();
        for (TraceRequest r : trace) events.add(new Event(r.arrival(), seq[0]++, 0, r.index()));
        List<Double> ttfts = new ArrayList<>(), tbts = new ArrayList<>();
        int good = 0, completed = 0;
        double busySeconds = 0, now = 0;
        long hitTokens = 0, allTokens = 0;
        while (!events.isEmpty()) {
            Event e = events.poll();
            now = e.time;
            if (e.type == 0) { // arrival: least queued work
                TraceRequest r = trace.get(e.target);
                int best = 0;
                for (int i = 1; i < instances; i++)
                    if (inst[i].queuedWork + inst[i].running.size() * 0.01
                            < inst[best].queuedWork + inst[best].running.size() * 0.01) best = i;
                Instance in = inst[best];
                Req q = new Req(r);
                q.prefixTokens = in.cachedPrefix(r.blocks(), r.inputTokens());
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
            double step = 0;
            Req pre = null;
            long chunk = 0;
            Req head = in.waiting.peek();
            if (head != null && in.kv + head.r.inputTokens() <= kvCapacityTokens) {
                pre = head;
                chunk = chunked
                        ? Math.min(chunkTokens, head.r.inputTokens() - head.computed)
                        : head.r.inputTokens() - head.computed;
                step += model.seconds(head.computed + chunk, head.computed);
            }
            boolean decodeNow = chunked || pre == null;
            if (decodeNow && !in.running.isEmpty()) {
                long ctx = 0;
                for (Req q : in.running) ctx += q.r.inputTokens() + q.produced;
                step += profile.decodeStepSeconds(in.running.size(), ctx);
            }
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
                0,
                0,
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
