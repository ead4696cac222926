package dev.mooncakej.prefill;

import dev.mooncakej.engine.kv.PagedKvCache;
import dev.mooncakej.engine.llama.LlamaEngine;
import dev.mooncakej.engine.sampling.Sampler;
import dev.mooncakej.engine.sampling.SamplingParams;
import dev.mooncakej.engine.spi.InferenceEngine;
import dev.mooncakej.engine.spi.PrefillOptions;
import dev.mooncakej.engine.spi.Sequence;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillResult;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerStatus;
import dev.mooncakej.kvcache.wire.WorkerMessages.KvTarget;
import dev.mooncakej.kvtransfer.engine.DescriptorJson;
import dev.mooncakej.kvtransfer.engine.SegmentDescriptor;
import dev.mooncakej.kvtransfer.engine.SegmentMetadata;
import dev.mooncakej.kvtransfer.engine.TransferBatch;
import dev.mooncakej.kvtransfer.engine.TransferEngine;
import dev.mooncakej.kvtransfer.engine.TransferRequest;
import dev.mooncakej.kvtransfer.engine.WorkerSegment;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import jakarta.annotation.PreDestroy;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.stereotype.Service;

/**
 * Prefill: reuse the longest locally cached prefix, compute the rest in chunks, and after each layer
 * of each chunk submit that layer of every block it completed to the transfer engine (WRITEs straight
 * from this worker's KV slab into the decode worker's reserved blocks, moving while the next layer is
 * computed). Each block layer is written once, when its block is complete (or at the end for the
 * last, partial block), so writes in flight never race. Once every write completed, a commit
 * notification tells the decode worker the KV is there; then the first token is returned. New full
 * blocks join the local prefix cache.
 */
@Service
public class PrefillService {
    private static final Logger LOG = LoggerFactory.getLogger(PrefillService.class);

    private final PrefillProperties props;
    private final InferenceEngine engine;
    private final PagedKvCache cache;
    private final PrefixBlockPool pool;
    private final AtomicInteger queued = new AtomicInteger();
    private final WorkerSegment segment;
    private final TransferEngine transfer;
    private final SegmentMetadata peers;
    private final Timer prefillTime;
    private final Timer kvTime;
    private final Counter kvBytes;
    private final DistributionSummary cachedTokens;

    public PrefillService(PrefillProperties props, MeterRegistry meters, dev.mooncakej.cluster.ClusterSettings cluster) {
        this.props = props;
        this.peers = WorkerSegment.metadata(cluster.etcdEndpoints(), cluster.prefix(), cluster.leaseTtlSeconds());
        this.segment = new WorkerSegment("prefill", props.transferConfig(), peers);
        this.engine = new LlamaEngine(props.engineConfig(), segment.kvMemory());
        this.cache = engine.kvCache();
        this.transfer = segment.engine();
        this.pool = new PrefixBlockPool(cache);
        this.prefillTime = Timer.builder("mooncakej.prefill.time").description("prefill compute time per request").publishPercentileHistogram().register(meters);
        this.kvTime = Timer.builder("mooncakej.kv.transfer.time").description("time from the first KV layer queued to the commit acknowledged").publishPercentileHistogram().register(meters);
        this.kvBytes = Counter.builder("mooncakej.kv.transfer.bytes").description("KV bytes sent to decode workers").register(meters);
        this.cachedTokens = DistributionSummary.builder("mooncakej.prefill.cached.tokens").description("prompt tokens reused from the prefix cache").register(meters);
        Gauge.builder("mooncakej.kv.blocks.used", cache, PagedKvCache::usedBlocks).tag("role", "prefill").register(meters);
        Gauge.builder("mooncakej.kv.blocks.capacity", cache, PagedKvCache::capacity).tag("role", "prefill").register(meters);
        Gauge.builder("mooncakej.prefill.cached.blocks", pool, PrefixBlockPool::size).register(meters);
        Gauge.builder("mooncakej.prefill.queue", queued, AtomicInteger::get).register(meters);
        LOG.info("prefill worker ready: model {}, {} KV blocks of {} tokens", engine.info().name(), cache.capacity(), engine.info().blockTokens());
    }

    public InferenceEngine engine() { return engine; }

    public PrefillResult prefill(PrefillTask task) throws IOException, InterruptedException {
        int[] tokens = task.tokens();
        int n = tokens.length;
        int bt = engine.info().blockTokens();
        if (n < 1 || n > engine.info().contextLength()) throw new IllegalArgumentException("prompt of " + n + " tokens: expected 1.." + engine.info().contextLength());
        long[] keys = task.blockKeys() == null ? new long[0] : task.blockKeys();
        if (keys.length > n / bt) throw new IllegalArgumentException(keys.length + " block keys for " + n + " tokens: expected at most " + n / bt);
        KvTarget kv = task.kv();
        long layerBytes = cache.layout().layerBytes();
        int layers = engine.info().layers();
        if (kv == null || kv.segment() == null || kv.blockOffsets() == null) throw new IllegalArgumentException("prefill task without a KV target (kv.segment, kv.blockOffsets)");
        if (kv.layerBytes() != layerBytes) {
            throw new IllegalArgumentException("the decode worker's KV layout has " + kv.layerBytes() + " bytes per block layer, this worker " + layerBytes + ": both must serve the same model with the same block size");
        }
        if (kv.blockOffsets().length < (n + bt - 1) / bt) throw new IllegalArgumentException(kv.blockOffsets().length + " reserved blocks for " + n + " tokens: expected " + (n + bt - 1) / bt);
        openPeer(kv);
        queued.incrementAndGet();
        Sequence seq = engine.newSequence();
        long t0 = System.nanoTime();
        List<CompletableFuture<TransferBatch>> inflight = java.util.Collections.synchronizedList(new ArrayList<>());
        long[] bytes = {0};
        try {
            int[] prefix = pool.longestPrefix(keys, (n - 1) / bt); // keep at least one token to compute
            seq.adoptPrefix(prefix, prefix.length);
            int cached = prefix.length * bt;
            if (prefix.length > 0) inflight.add(write(kv, seq, 0, prefix.length, 0, layers, bytes));
            float[] logits = new float[engine.info().vocabSize()];
            PrefillOptions opts = PrefillOptions.chunked(props.chunkTokens()).withLayers((from, to, layer) -> {
                // blocks this chunk completed; the last chunk also sends the final partial block
                int first = from / bt, end = to == n ? (to + bt - 1) / bt : to / bt;
                if (end > first) inflight.add(write(kv, seq, first, end, layer, layer + 1, bytes));
            });
            boolean ok;
            synchronized (this) { // one prefill at a time on this engine; eviction and retry under the same lock
                ok = engine.prefill(seq, tokens, opts, logits);
                if (!ok) {
                    pool.evict((n + bt - 1) / bt);
                    ok = engine.prefill(seq, tokens, opts, logits);
                }
            }
            if (!ok) throw new IllegalStateException("no free KV blocks on this prefill worker for " + n + " tokens");
            double prefillSeconds = (System.nanoTime() - t0) / 1e9;
            prefillTime.record(Duration.ofNanos(System.nanoTime() - t0));
            var s = task.sampling();
            Sampler sampler = new Sampler(new SamplingParams(s.temperature(), s.topP(), s.topK(), s.seed(), 1, List.of(), s.logprobs()), engine.info().vocabSize());
            int first = sampler.sample(logits, 0, logits.length);
            float lp = s.logprobs() ? Sampler.logprob(logits, 0, logits.length, first) : 0f;
            long tk = System.nanoTime();
            awaitWrites(inflight, task.requestId(), kv.segment());
            byte status = transfer.notify(kv.segment(), commitPayload(task.requestId(), n), Duration.ofMillis(props.kvTimeoutMillis()));
            if (status != 0) throw new IllegalStateException("decode worker refused the KV of request " + task.requestId() + " (commit status " + status + ")");
            double kvSeconds = (System.nanoTime() - tk) / 1e9;
            kvTime.record(Duration.ofNanos(System.nanoTime() - tk));
            kvBytes.increment(bytes[0]);
            cachedTokens.record(cached);
            for (int b = prefix.length; b < keys.length; b++) pool.put(keys[b], seq.blockTable()[b]);
            return new PrefillResult(task.requestId(), first, lp, cached, prefillSeconds, bytes[0], kvSeconds);
        } finally {
            // never hand blocks back while a write may still read them
            for (var f : List.copyOf(inflight)) {
                try {
                    f.get(props.kvTimeoutMillis() + 1000, TimeUnit.MILLISECONDS);
                } catch (Exception ignored) {
                    // reported above; the batch has a final status by its deadline
                }
            }
            seq.release();
            queued.decrementAndGet();
        }
    }

    /** Knows the decode worker's segment from the descriptor in the task (no metadata store on one host). */
    private void openPeer(KvTarget kv) {
        SegmentDescriptor known = peers.lookup(kv.segment()).orElse(null);
        if (!(peers instanceof SegmentMetadata.Embedded)) { // in a cluster, segments are in etcd, published by their owners
            if (known == null) throw new IllegalStateException("segment '" + kv.segment() + "' is not published in etcd (yet)");
            return;
        }
        if (known == null || kv.descriptor() != null && !DescriptorJson.write(known).equals(kv.descriptor())) {
            if (kv.descriptor() == null) throw new IllegalArgumentException("segment '" + kv.segment() + "' is unknown and the task carries no descriptor");
            SegmentDescriptor d = DescriptorJson.read(kv.descriptor(), "the prefill task's kv.descriptor");
            if (!d.name().equals(kv.segment())) throw new IllegalArgumentException("kv.descriptor names segment '" + d.name() + "', kv.segment is '" + kv.segment() + "'");
            peers.publish(d);
        }
    }

    /** WRITEs layers [l0, l1) of blocks [b0, b1) of the sequence to the reserved blocks. */
    private CompletableFuture<TransferBatch> write(KvTarget kv, Sequence seq, int b0, int b1, int l0, int l1, long[] bytes) {
        long layerBytes = cache.layout().layerBytes();
        List<TransferRequest> reqs = new ArrayList<>((b1 - b0) * (l1 - l0));
        for (int b = b0; b < b1; b++) {
            for (int l = l0; l < l1; l++) {
                reqs.add(new TransferRequest(TransferRequest.Opcode.WRITE, transfer.offsetOf(cache.layer(seq.blockTable()[b], l)), kv.segment(),
                        kv.blockOffsets()[b] + l * layerBytes, layerBytes));
                bytes[0] += layerBytes;
            }
        }
        return transfer.submit(reqs).done();
    }

    private void awaitWrites(List<CompletableFuture<TransferBatch>> inflight, long requestId, String target) throws IOException {
        for (var f : List.copyOf(inflight)) {
            TransferBatch b = f.join();
            if (!b.allCompleted()) throw new IOException("KV transfer of request " + requestId + " to '" + target + "' failed: " + b.firstProblem());
        }
    }

    private static byte[] commitPayload(long requestId, long tokens) {
        return java.nio.ByteBuffer.allocate(16).order(java.nio.ByteOrder.LITTLE_ENDIAN).putLong(requestId).putLong(tokens).array();
    }

    /** This worker's name in the cluster (its transfer segment's name). */
    public String name() { return transfer.name(); }

    public long[] cachedKeys() { return pool.keys(); }

    void recordKvEvents() { pool.recordEvents(); }

    long[][] drainKvEvents() { return pool.drainEvents(); }

    /** Waits until no prefill is running or queued, up to {@code timeout}; true when drained. */
    public boolean drain(Duration timeout) throws InterruptedException {
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
        return new WorkerStatus("prefill", engine.info().name(), engine.info().blockTokens(), cache.freeBlocks(), cache.usedBlocks(),
                cache.capacity(), 0, queued.get(), pool.size());
    }

    @PreDestroy
    public void close() {
        engine.close();
        segment.close();
    }
}
