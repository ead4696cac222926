package dev.mooncakej.prefill;

import dev.mooncakej.cluster.LeaderLink;
import dev.mooncakej.engine.constrain.TokenConstraint;
import dev.mooncakej.engine.kv.PagedKvCache;
import dev.mooncakej.engine.sampling.Sampler;
import dev.mooncakej.engine.sampling.SamplingParams;
import dev.mooncakej.engine.spi.InferenceEngine;
import dev.mooncakej.engine.spi.PrefillOptions;
import dev.mooncakej.engine.spi.Sequence;
import dev.mooncakej.kvcache.wire.KvControl;
import dev.mooncakej.kvcache.wire.PoolPin;
import dev.mooncakej.kvcache.wire.WorkerMessages;
import dev.mooncakej.kvcache.wire.WorkerMessages.KvTarget;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillResult;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillTimes;
import dev.mooncakej.kvcache.wire.WorkerMessages.Sampling;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerStatus;
import dev.mooncakej.kvstore.client.SsdTier;
import dev.mooncakej.kvstore.client.StoreClient;
import dev.mooncakej.kvtransfer.engine.TransferBatch;
import dev.mooncakej.kvtransfer.engine.TransferEngine;
import dev.mooncakej.kvtransfer.engine.TransferRequest;
import dev.mooncakej.kvtransfer.engine.WorkerSegment;
import dev.mooncakej.web.Traced;
import dev.mooncakej.web.VllmMetrics;
import dev.mooncakej.worker.FirstToken;
import dev.mooncakej.worker.WorkerRuntime;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Prefill: reuse the longest locally cached prefix, compute the rest in chunks, and after each layer
 * of each chunk submit that layer of every block it completed to the transfer engine (WRITEs straight
 * from this worker's KV slab into the decode worker's reserved blocks, moving while the next layer is
 * computed). Each block layer is written once, so writes in flight never race. Before the first write
 * the reservation is CLAIMED from the decode worker, after the last one COMMITTED ({@link KvControl});
 * an ABORT from the decode worker (the reservation was dropped) stops the job at its next layer, and
 * once its last write has ended the decode worker hears STOPPED. Where the KV goes is looked up by
 * segment name in this worker's own metadata (the host registry or etcd), never taken from the task.
 * Built by {@link PrefillWorkerConfig} after the segment and the engine; starts no thread.
 */
public final class PrefillService {
    private static final Logger LOG = LoggerFactory.getLogger(PrefillService.class);

    /** One prefill in progress, by reservation. */
    private static final class Job {
        final String target;
        final List<CompletableFuture<TransferBatch>> inflight = Collections.synchronizedList(new ArrayList<>());
        volatile boolean aborted;
        /** When the task's deadline passes ({@link System#nanoTime()}; far off when it has none). */
        long deadline = Long.MAX_VALUE;
        /** Its KV writes: how many ended, their summed time, and the writes in flight when each started. */
        final AtomicLong writes = new AtomicLong(), writeNanos = new AtomicLong(), concurrencySum = new AtomicLong();

        Job(String target) {
            this.target = target;
        }

        boolean past(long now) {
            return deadline != Long.MAX_VALUE && now - deadline > 0;
        }
    }

    /** Thrown from a layer callback to stop a prefill whose reservation was aborted. */
    private static final class Aborted extends RuntimeException {
        Aborted(long id) {
            super("reservation " + id + " was dropped by its decode worker; prefill stopped", null, false, false);
        }
    }

    /**
     * The task's deadline passed: its work is abandoned (its writes stop, its blocks are released once
     * they ended) and the conductor places it again.
     */
    public static final class PastDeadline extends IllegalStateException {
        PastDeadline(long id, long millis, String where) {
            super("reservation " + id + ": the prefill's deadline of " + millis + " ms passed " + where
                    + "; its KV transfer was abandoned");
        }
    }

    /** Handed back by a draining worker before it was computed: the conductor places it elsewhere. */
    public static final class HandedBack extends IllegalStateException {
        HandedBack(long id) {
            super("reservation " + id + ": this prefill worker is draining and handed the task back");
        }
    }

    private final PrefillProperties props;
    private final WorkerRuntime runtime;
    private final Duration kvTimeout;
    private final InferenceEngine engine;
    private final PagedKvCache cache;
    private final PrefixBlockPool pool;
    private final TransferEngine transfer;
    private final AtomicInteger queued = new AtomicInteger();
    private final Map<Long, Job> jobs = new ConcurrentHashMap<>();
    private final PrefillMetrics metrics;

    private volatile VllmMetrics vllm;
    private final SsdTier ssd;
    private final WorkerSegment segment;
    private final PrefixFetch fetcher;
    private final BlockProduction production;

    /** @param ssd this worker's SSD tier, or null: cold prefix blocks go there instead of being dropped */
    public PrefillService(PrefillProperties props, WorkerRuntime runtime, PrefillMetrics metrics, SsdTier ssd) {
        this.props = props;
        this.runtime = runtime;
        this.kvTimeout = Duration.ofMillis(runtime.settings().kvTimeoutMillis());
        this.engine = runtime.engine();
        this.cache = engine.kvCache();
        this.transfer = runtime.transfer();
        this.segment = runtime.segment();
        this.ssd = ssd;
        this.pool = new PrefixBlockPool(cache, ssd);
        this.metrics = metrics;
        this.production = new BlockProduction(pool, kvTimeout);
        this.fetcher = new PrefixFetch(cache, pool, transfer, metrics, kvTimeout);
    }

    /** Wires the transfer engine's control messages to this service. Called once, before serving. */
    void attach() {
        transfer.onNotify(this::onControl);
    }

    private volatile WorkerMessages.WorkerProfile profile;

    /**
     * Measures the engine (a few prefill lengths within {@code mooncakej.prefill.calibration-seconds})
     * and keeps the profile the conductor reads at admission. Called once, before serving.
     */
    void calibrate() {
        long t0 = System.nanoTime();
        synchronized (this) { // the engine's prefill lock
            profile = runtime.calibrate(props.chunkTokens());
        }
        LOG.info(
                "calibrated the engine in {} ms: prefill (tokens, seconds) {}",
                (System.nanoTime() - t0) / 1_000_000,
                profile.prefill().stream()
                        .map(c -> c.inputTokens() + ": " + String.format("%.4f", c.seconds()))
                        .toList());
    }

    /** This worker's block-key contract and measured costs ({@code GET /internal/profile}). */
    public WorkerMessages.WorkerProfile profile() {
        return profile;
    }

    public InferenceEngine engine() {
        return engine;
    }

    PrefixBlockPool pool() {
        return pool;
    }

    TransferEngine transfer() {
        return transfer;
    }

    /** The SSD tier, or null. */
    SsdTier ssd() {
        return ssd;
    }

    WorkerSegment segment() {
        return segment;
    }

    int queued() {
        return queued.get();
    }

    public PrefillResult prefill(PrefillTask task) throws IOException {
        return prefill(task, Traced.NONE);
    }

    /** The vLLM-named metrics this service records into (prompt tokens, prefix cache queries and hits). */
    void recordInto(VllmMetrics v) {
        this.vllm = v;
    }

    /**
     * Runs {@code task}; {@code span} (this worker's span of the request) gets its parts: the prefix
     * fetch (blocks, bytes, source), the wait for the engine, the compute, and the KV transfer to the
     * decode worker (path, bytes, writes).
     */
    public PrefillResult prefill(PrefillTask task, Traced span) throws IOException {
        int[] tokens = task.tokens();
        int bt = engine.info().blockTokens();
        int vocab = engine.info().vocabSize();
        if (tokens == null || tokens.length < 1 || tokens.length > engine.info().contextLength()) {
            throw new IllegalArgumentException("prompt of " + (tokens == null ? 0 : tokens.length)
                    + " tokens: expected 1.." + engine.info().contextLength());
        }
        int n = tokens.length;
        for (int i = 0; i < n; i++) {
            if (tokens[i] < 0 || tokens[i] >= vocab)
                throw new IllegalArgumentException(
                        "token " + tokens[i] + " at position " + i + ": expected 0.." + (vocab - 1));
        }
        long[] keys = task.blockKeys() == null ? new long[0] : task.blockKeys();
        if (keys.length > n / bt)
            throw new IllegalArgumentException(
                    keys.length + " block keys for " + n + " tokens: expected at most " + n / bt);
        Sampling s = task.sampling();
        if (s == null) throw new IllegalArgumentException("prefill task without sampling");
        KvTarget kv = task.kv();
        long layerBytes = cache.layout().layerBytes();
        if (kv == null || kv.segment() == null || kv.blockOffsets() == null)
            throw new IllegalArgumentException("prefill task without a KV target (kv.segment, kv.blockOffsets)");
        if (!kv.segment().matches("[A-Za-z0-9._-]{1,64}"))
            throw new IllegalArgumentException(
                    "kv.segment '" + kv.segment() + "': expected a segment name of 1-64 [A-Za-z0-9._-]");
        if (kv.layerBytes() != layerBytes) {
            throw new IllegalArgumentException(
                    "the decode worker's KV layout has " + kv.layerBytes() + " bytes per block layer, this worker "
                            + layerBytes + ": both must serve the same model with the same block size");
        }
        int blocks = (n + bt - 1) / bt;
        if (kv.blockOffsets().length != blocks)
            throw new IllegalArgumentException(
                    kv.blockOffsets().length + " reserved blocks for " + n + " tokens: expected " + blocks);
        for (long off : kv.blockOffsets())
            if (off < 0) throw new IllegalArgumentException("block offset " + off + ": expected >= 0");
        int choices = Math.max(1, task.choices());
        if (choices > 16) throw new IllegalArgumentException("choices " + task.choices() + ": expected 1..16");
        if (s.resumeAt() < 0 || s.resumeAt() >= n) // the tokens drawn before are the prompt's last ones
        throw new IllegalArgumentException("sampling.resumeAt " + s.resumeAt() + ": expected 0.." + (n - 1)
                + " (fewer than the prompt's " + n + " tokens)");
        if (s.resumeAt() > 0 && task.choices() > 1)
            throw new IllegalArgumentException("sampling.resumeAt with " + task.choices() + " choices: expected one");
        try {
            transfer.openSegment(kv.segment()); // from this worker's own metadata only
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException(
                    "the KV target: " + e.getMessage() + " in this worker's segment metadata", e);
        }
        long id = task.reservationId();
        if (draining) throw new HandedBack(id);
        Long deadlineMillis = task.deadlineMillis();
        if (deadlineMillis != null && (deadlineMillis < 1 || deadlineMillis > 3_600_000))
            throw new IllegalArgumentException("deadline " + deadlineMillis + " ms: expected 1..3600000");
        Job job = new Job(kv.segment());
        if (deadlineMillis != null) job.deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(deadlineMillis);
        if (jobs.putIfAbsent(id, job) != null)
            throw new IllegalArgumentException("reservation " + id + " is already being prefilled here");
        queued.incrementAndGet();
        Sequence seq = engine.newSequence();
        long t0 = System.nanoTime();
        long[] bytes = {0};
        BlockProduction.Production mine = production.begin();
        try {
            byte claim = control(kv.segment(), KvControl.claim(id, transfer.name()));
            if (claim != KvControl.OK)
                throw new IllegalStateException(
                        "the decode worker refused the claim of reservation " + id + " (" + statusName(claim) + ")");
            int layers = engine.info().layers();
            // keep at least one token to compute; the prompt's log-probabilities need every position computed
            int limit = task.promptLogprobs() ? 0 : (n - 1) / bt;
            int[] local = production.localPrefix(keys, limit, mine, id);
            int fromSsd = pool.lastPromoted();
            int[] prefix = local;
            double fetchSeconds = 0;
            if (Math.min(task.poolPrefixBlocks(), limit) > local.length && store != null) {
                long tf = System.nanoTime();
                int want = Math.min(task.poolPrefixBlocks(), limit);
                prefix = fetcher.fetch(store, keys, local, want, id);
                long fetchEnd = System.nanoTime();
                fetchSeconds = (fetchEnd - tf) / 1e9; // lookup, pins and reads: what a fetch costs
                int got = prefix.length - local.length;
                span.part(
                        "prefix.fetch",
                        tf,
                        fetchEnd,
                        "mooncakej.fetch.source",
                        "pool",
                        "mooncakej.fetch.blocks_wanted",
                        want - local.length,
                        "mooncakej.fetch.blocks",
                        got,
                        "mooncakej.fetch.bytes",
                        (long) got * layerBytes * engine.info().layers());
            }
            seq.adoptPrefix(prefix, prefix.length);
            for (int b = local.length; b < prefix.length; b++) cache.release(prefix[b]); // the sequence holds them now
            if (job.past(System.nanoTime())) throw new PastDeadline(id, deadlineMillis, "while its prefix was fetched");
            int cached = prefix.length * bt;
            int fetched = (prefix.length - local.length) * bt;
            if (prefix.length > 0) job.inflight.add(write(job, kv, seq, 0, prefix.length, 0, layers, bytes));
            float[] logits = new float[vocab];
            float[] promptLogprobs = task.promptLogprobs() ? new float[n - 1] : null;
            PrefillOptions opts = PrefillOptions.chunked(props.chunkTokens()).withLayers((from, to, layer) -> {
                if (job.aborted) throw new Aborted(id);
                if (job.past(System.nanoTime()))
                    throw new PastDeadline(id, deadlineMillis, "while its KV was computed and written");
                // blocks this chunk completed; the last chunk also sends the final partial block
                int first = from / bt, end = to == n ? (to + bt - 1) / bt : to / bt;
                if (end > first) job.inflight.add(write(job, kv, seq, first, end, layer, layer + 1, bytes));
            });
            if (promptLogprobs != null) // position p's logits predict token p + 1
            opts = opts.withAllLogits((pos, all, off) -> {
                if (pos < n - 1) promptLogprobs[pos] = Sampler.logprob(all, off, vocab, tokens[pos + 1]);
            });
            boolean ok;
            long waitFrom = System.nanoTime(), computeFrom;
            synchronized (this) { // one prefill at a time on this engine; eviction and retry under the same lock
                computeFrom = System.nanoTime();
                if (handBack) throw new HandedBack(id); // queued behind others when the drain's half budget ended
                if (job.past(computeFrom)) throw new PastDeadline(id, deadlineMillis, "in the queue");
                ok = engine.prefill(seq, tokens, opts, logits);
                if (!ok) {
                    pool.evict(blocks);
                    ok = engine.prefill(seq, tokens, opts, logits);
                }
            }
            long computeEnd = System.nanoTime();
            double computeSeconds = (computeEnd - computeFrom) / 1e9, queueSeconds = (computeFrom - waitFrom) / 1e9;
            span.part("prefill.queue", waitFrom, computeFrom);
            span.part(
                    "prefill.compute",
                    computeFrom,
                    computeEnd,
                    "mooncakej.tokens.computed",
                    n - cached,
                    "mooncakej.tokens.cached",
                    cached);
            if (!ok) throw new IllegalStateException("no free KV blocks on this prefill worker for " + n + " tokens");
            // computed blocks, and fetched ones (a local replica now: hot prefixes replicate themselves),
            // cached as soon as they hold their KV: requests waiting for them go on now
            for (int b = local.length; b < keys.length; b++) pool.put(keys[b], seq.blockTable()[b]);
            mine.end();
            double prefillSeconds = (System.nanoTime() - t0) / 1e9;
            // the engine's busy time (what utilisation is made of), not the wait for it behind other prefills
            metrics.prefillTime.record(Duration.ofNanos((long) ((computeSeconds + fetchSeconds) * 1e9)));
            TokenConstraint constraint = s.schema() == null // the first token obeys the schema too
                    ? null
                    : TokenConstraint.of(engine.tokenizer(), s.schema(), s.strict());
            // a moved stream's constraint replays what it drew before (the prompt's last resumeAt tokens)
            for (int p = n - s.resumeAt(); constraint != null && p < n; p++)
                if (!constraint.accept(tokens[p]))
                    throw new IllegalArgumentException("prefill task of reservation " + id + ": resumed token "
                            + tokens[p] + " at " + p + " does not fit the response_format schema");
            // a moved stream's first token draws where its generator stood
            FirstToken.Drawn drawn = FirstToken.draw(s, logits, engine.tokenizer(), constraint, task.maxTokens());
            int first = drawn.token();
            float lp = drawn.logprob();
            // n > 1: each further choice's first token from the same logits, under its own seed
            int[] more = choices > 1 ? new int[choices - 1] : null;
            float[] moreLps = choices > 1 ? new float[choices - 1] : null;
            for (int c = 1; c < choices; c++) {
                Sampler own = new Sampler(
                        new SamplingParams(
                                s.temperature(), s.topP(), s.topK(), s.seedOfChoice(c), 1, List.of(), s.logprobs()),
                        vocab);
                int t = own.sample(logits, 0, logits.length);
                if (constraint != null && task.maxTokens() != null) t = constraint.steer(t, task.maxTokens() - 2);
                more[c - 1] = t;
                moreLps[c - 1] = s.logprobs() ? Sampler.logprob(logits, 0, logits.length, t) : 0f;
            }
            long tk = System.nanoTime();
            awaitWrites(job, id, deadlineMillis);
            if (job.aborted) throw new Aborted(id);
            byte commit = control(kv.segment(), KvControl.commit(id, n));
            if (commit != KvControl.OK)
                throw new IllegalStateException("the decode worker refused the KV of reservation " + id + " (commit: "
                        + statusName(commit) + ")");
            long kvEnd = System.nanoTime();
            double kvSeconds = (kvEnd - tk) / 1e9;
            // written layer by layer while computed, then awaited and committed: the span covers both
            span.part(
                    "kv.transfer",
                    computeFrom,
                    kvEnd,
                    "mooncakej.kv.path",
                    transportTo(kv.segment()),
                    "mooncakej.kv.segment",
                    kv.segment(),
                    "mooncakej.kv.bytes",
                    bytes[0],
                    "mooncakej.kv.writes",
                    job.writes.get(),
                    "mooncakej.kv.write_seconds",
                    job.writeNanos.get() / 1e9,
                    "mooncakej.kv.wait_after_compute_seconds",
                    kvSeconds);
            span.tag("mooncakej.reservation", id)
                    .tag("mooncakej.tokens.prompt", n)
                    .tag("mooncakej.prefix.local_tokens", (long) Math.max(0, local.length - fromSsd) * bt)
                    .tag("mooncakej.prefix.ssd_tokens", (long) fromSsd * bt)
                    .tag("mooncakej.prefix.pool_tokens", fetched);
            metrics.kvTime.record(Duration.ofNanos(System.nanoTime() - tk));
            metrics.kvBytes.increment(bytes[0]);
            metrics.cachedTokens.record(cached);
            VllmMetrics v = vllm;
            if (v != null) {
                v.promptTokens.increment(n);
                v.prefixQueries.increment(n);
                v.prefixHits.increment(cached);
            }
            if (fetched > 0) metrics.fetchedTokens.increment(fetched);
            if (fromSsd > 0) metrics.ssdTokens.increment((long) fromSsd * bt);
            return new PrefillResult(
                    id,
                    first,
                    lp,
                    cached,
                    fetched,
                    prefillSeconds,
                    bytes[0],
                    kvSeconds,
                    fetched > 0 ? fetchSeconds : 0,
                    new PrefillTimes(
                            computeSeconds,
                            queueSeconds,
                            (int) job.writes.get(),
                            job.writeNanos.get() / 1e9,
                            job.writes.get() == 0 ? 0 : (double) job.concurrencySum.get() / job.writes.get()),
                    more,
                    moreLps,
                    promptLogprobs);
        } catch (Aborted e) {
            throw new IllegalStateException(e.getMessage());
        } finally {
            mine.end(); // a failed prefill: whoever waited for its blocks computes them itself
            // never hand blocks back, nor tell the decode worker we stopped, while a write may still run
            for (var f : List.copyOf(job.inflight)) {
                try {
                    f.get(kvTimeout.toMillis() + 1000, TimeUnit.MILLISECONDS);
                } catch (Exception ignored) {
                    // reported above; the batch has a final status by its deadline
                }
            }
            seq.release();
            boolean aborted;
            synchronized (job) {
                jobs.remove(id, job);
                aborted = job.aborted;
            }
            if (aborted) Thread.ofVirtual().start(() -> stopped(job, id));
            queued.decrementAndGet();
        }
    }

    private volatile StoreClient store;

    /** Where to ask for the replicas of a prefix (the store master on the leader conductor). */
    void useStore(LeaderLink link) {
        this.store = new StoreClient(link::post);
    }

    /** ABORT from a decode worker: the job stops at its next layer; STOPPED follows once its writes ended. */
    byte onControl(byte[] payload) {
        if (PoolPin.isPoolPin(payload)) return onPoolPin(payload);
        KvControl m;
        try {
            m = KvControl.decode(payload);
        } catch (IllegalArgumentException e) {
            LOG.warn("refused a malformed kv control message: {}", e.getMessage());
            return KvControl.MALFORMED;
        }
        if (m.type() != KvControl.ABORT) return KvControl.REJECTED;
        Job job = jobs.get(m.reservationId());
        if (job == null) return KvControl.OK; // nothing of this worker writes it
        synchronized (job) {
            if (jobs.get(m.reservationId()) != job) return KvControl.OK;
            job.aborted = true;
            LOG.info("reservation {} aborted by its decode worker: stopping the prefill", m.reservationId());
            return KvControl.STOPPING;
        }
    }

    /** A reader's pin of blocks in this worker's prefix cache (it is about to copy them), or its unpin. */
    private byte onPoolPin(byte[] payload) {
        PoolPin m;
        try {
            m = PoolPin.decode(payload);
        } catch (IllegalArgumentException e) {
            LOG.warn("refused a malformed pool pin message: {}", e.getMessage());
            return KvControl.MALFORMED;
        }
        if (m.type() == PoolPin.UNPIN) {
            pool.unpin(m.pinId());
            return 0;
        }
        if (m.type() == PoolPin.PROMOTE) { // read back off the control thread; the next report tells the master
            int n = ssd == null ? 0 : m.keys().length;
            if (n > 0) Thread.ofVirtual().name("ssd-promote").start(() -> pool.promote(m.keys(), m.offsets()));
            return (byte) n;
        }
        long expires = System.nanoTime() + kvTimeout.toNanos();
        return (byte) pool.pin(m.pinId(), m.keys(), m.offsets(), this::blockOffset, expires);
    }

    private void stopped(Job job, long id) {
        try {
            control(job.target, KvControl.stopped(id));
        } catch (IOException | RuntimeException e) {
            LOG.info(
                    "could not tell {} that reservation {} stopped ({}); it asks again",
                    job.target,
                    id,
                    e.getMessage());
        }
    }

    private byte control(String segment, KvControl m) throws IOException {
        return transfer.notify(segment, m.encode(), kvTimeout);
    }

    static String statusName(byte status) {
        return switch (status) {
            case KvControl.OK -> "ok";
            case KvControl.UNKNOWN_RESERVATION -> "unknown reservation";
            case KvControl.REJECTED -> "rejected";
            case KvControl.FENCED -> "fenced: the reservation was dropped";
            case KvControl.MALFORMED -> "malformed";
            case KvControl.STOPPING -> "stopping";
            default -> "status " + status;
        };
    }

    /** WRITEs layers [l0, l1) of blocks [b0, b1) of the sequence to the reserved blocks. */
    /** KV writes in flight from this worker now (the source's share in a path's congestion). */
    private final AtomicInteger writesInFlight = new AtomicInteger();

    private CompletableFuture<TransferBatch> write(
            Job job, KvTarget kv, Sequence seq, int b0, int b1, int l0, int l1, long[] bytes) {
        long layerBytes = cache.layout().layerBytes();
        List<TransferRequest> reqs = new ArrayList<>((b1 - b0) * (l1 - l0));
        for (int b = b0; b < b1; b++) {
            for (int l = l0; l < l1; l++) {
                reqs.add(new TransferRequest(
                        TransferRequest.Opcode.WRITE,
                        transfer.offsetOf(cache.layer(seq.blockTable()[b], l)),
                        kv.segment(),
                        kv.blockOffsets()[b] + l * layerBytes,
                        layerBytes));
                bytes[0] += layerBytes;
            }
        }
        int concurrency = writesInFlight.incrementAndGet();
        long t0 = System.nanoTime();
        return transfer.submit(reqs).done().whenComplete((b, e) -> {
            writesInFlight.decrementAndGet();
            job.writes.incrementAndGet();
            job.writeNanos.addAndGet(System.nanoTime() - t0);
            job.concurrencySum.addAndGet(concurrency);
        });
    }

    private void awaitWrites(Job job, long id, Long deadlineMillis) throws IOException {
        for (var f : List.copyOf(job.inflight)) {
            TransferBatch b;
            try {
                b = job.deadline == Long.MAX_VALUE
                        ? f.join()
                        : f.get(Math.max(0, job.deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            } catch (TimeoutException e) {
                throw new PastDeadline(id, deadlineMillis, "while its KV writes were acknowledged");
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while the KV of reservation " + id + " was written", e);
            } catch (ExecutionException e) {
                throw new IOException("KV transfer of reservation " + id + " failed: " + e.getCause(), e);
            }
            if (!b.allCompleted())
                throw new IOException(
                        "KV transfer of reservation " + id + " to '" + job.target + "' failed: " + b.firstProblem());
        }
    }

    /** This worker's name in the cluster (its transfer segment's name). */
    public String name() {
        return transfer.name();
    }

    public long[] cachedKeys() {
        return pool.keys();
    }

    /** Where the KV slab starts in this worker's transfer segment, and its size (what the store master is told). */
    long slabOffset() {
        return transfer.offsetOf(cache.slab());
    }

    long slabBytes() {
        return cache.slab().byteSize();
    }

    long blockBytes() {
        return cache.layout().blockBytes();
    }

    /** The segment offset of a KV block (a replica's place as the store master records it). */
    long blockOffset(int blockId) {
        return transfer.offsetOf(cache.block(blockId));
    }

    private volatile boolean draining, handBack;

    /**
     * The drain of a worker leaving: new tasks are handed back at once (the conductor places them
     * elsewhere); queued ones are computed for the first half of {@code budget}, and those still
     * waiting for the engine then are handed back; what runs gets the whole budget. True when nothing
     * runs or waits by then.
     */
    public boolean drain(Duration budget) throws InterruptedException {
        draining = true;
        long from = System.nanoTime();
        boolean empty = awaitIdle(budget.dividedBy(2));
        if (!empty) {
            handBack = true;
            empty = awaitIdle(budget.minusNanos(System.nanoTime() - from));
        }
        LOG.info(
                "drained in {} ms: {}",
                (System.nanoTime() - from) / 1_000_000,
                empty
                        ? "nothing running or queued"
                        : queued.get() + " prefills still running at the end of the budget");
        return empty;
    }

    /** Waits until no prefill is running or queued, up to {@code timeout}; true when drained. */
    private boolean awaitIdle(Duration timeout) throws InterruptedException {
        long until = System.nanoTime() + timeout.toNanos();
        while (queued.get() > 0 && System.nanoTime() < until) Thread.sleep(20);
        return queued.get() == 0;
    }

    /** The transport in use towards a decode worker's segment (for logs). */
    public String transportTo(String segmentName) {
        String t = transfer.transportFor(segmentName);
        return t == null ? "?" : t;
    }

    public WorkerStatus status() {
        return new WorkerStatus(
                "prefill",
                engine.info().name(),
                engine.info().blockTokens(),
                cache.freeBlocks(),
                cache.usedBlocks(),
                cache.capacity(),
                jobs.size(),
                queued.get(),
                pool.size(),
                0);
    }
}
