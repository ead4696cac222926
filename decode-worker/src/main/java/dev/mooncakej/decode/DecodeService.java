package dev.mooncakej.decode;

import dev.mooncakej.engine.kv.PagedKvCache;
import dev.mooncakej.engine.llama.LlamaEngine;
import dev.mooncakej.engine.sampling.Sampler;
import dev.mooncakej.engine.sampling.SamplingParams;
import dev.mooncakej.engine.spi.DecodeBatch;
import dev.mooncakej.engine.spi.InferenceEngine;
import dev.mooncakej.engine.spi.Sequence;
import dev.mooncakej.kvcache.wire.WorkerMessages.DecodeTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveResponse;
import dev.mooncakej.kvcache.wire.WorkerMessages.TokenEvent;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerStatus;
import dev.mooncakej.kvcache.wire.WorkerMessages.KvTarget;
import dev.mooncakej.kvtransfer.engine.DescriptorJson;
import dev.mooncakej.kvtransfer.engine.SegmentMetadata;
import dev.mooncakej.kvtransfer.engine.TransferEngine;
import dev.mooncakej.kvtransfer.engine.WorkerSegment;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import jakarta.annotation.PreDestroy;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.stereotype.Service;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Sinks;

/**
 * The decode worker's core: reservations of KV blocks that prefill workers fill through the transfer
 * engine (the KV slab is this worker's registered transfer segment: writes land in place), and one
 * continuous-batching loop that decodes every active request a token per step and streams tokens out.
 * Every block of a request returns to the pool when it ends, whatever the reason (finished, client
 * gone, error, never started).
 */
@Service
public class DecodeService {
    /** Status bytes of the commit notification a prefill worker sends once all of a request's KV is written. */
    public static final byte COMMIT_OK = 0;
    public static final byte COMMIT_UNKNOWN_REQUEST = 1;
    public static final byte COMMIT_REJECTED = 2;

    private static final Logger LOG = LoggerFactory.getLogger(DecodeService.class);

    /** One request from reservation to release. */
    static final class Request {
        final long id;
        final Sequence seq;
        final int promptTokens;
        volatile boolean committed;
        volatile boolean cancelled;
        volatile boolean started;
        final long reservedAt = System.nanoTime();
        DecodeTask task;
        Sampler sampler;
        Sinks.Many<TokenEvent> sink;
        int next;
        int produced;
        long lastTokenAt;

        Request(long id, Sequence seq, int promptTokens) {
            this.id = id;
            this.seq = seq;
            this.promptTokens = promptTokens;
        }
    }

    private final DecodeProperties props;
    private final InferenceEngine engine;
    private final PagedKvCache cache;
    private final WorkerSegment segment;
    private final TransferEngine transfer;
    private final Map<Long, Request> requests = new ConcurrentHashMap<>();
    private final LinkedBlockingQueue<Request> joining = new LinkedBlockingQueue<>();
    private final Thread loop;
    private final Timer tbt;
    private final Counter finished;
    private volatile boolean running = true;
    private volatile int activeCount;
    private volatile boolean draining;

    public DecodeService(DecodeProperties props, MeterRegistry meters, dev.mooncakej.cluster.ClusterSettings cluster) throws IOException {
        this.props = props;
        this.segment = new WorkerSegment("decode", props.transferConfig(), WorkerSegment.metadata(cluster.etcdEndpoints(), cluster.prefix(), cluster.leaseTtlSeconds()));
        this.engine = new LlamaEngine(props.engineConfig(), segment.kvMemory());
        this.cache = engine.kvCache();
        this.transfer = segment.engine();
        transfer.onNotify(this::onCommit);
        this.tbt = Timer.builder("mooncakej.decode.tbt").description("time between tokens of one request, on the decode worker")
                .publishPercentileHistogram().register(meters);
        this.finished = Counter.builder("mooncakej.decode.requests").tag("outcome", "finished").register(meters);
        Gauge.builder("mooncakej.kv.blocks.used", cache, PagedKvCache::usedBlocks).tag("role", "decode").register(meters);
        Gauge.builder("mooncakej.kv.blocks.capacity", cache, PagedKvCache::capacity).tag("role", "decode").register(meters);
        Gauge.builder("mooncakej.decode.batch.size", this, s -> s.activeCount).register(meters);
        Gauge.builder("mooncakej.kv.received.bytes", transfer, TransferEngine::bytesReceived).register(meters);
        this.loop = Thread.ofPlatform().name("decode-loop").daemon().start(this::runLoop);
        LOG.info("decode worker ready: model {}, {} KV blocks of {} tokens, transfer segment '{}' on {}:{} ({}; rdma: {})", engine.info().name(),
                cache.capacity(), engine.info().blockTokens(), transfer.name(), props.kvHost(), transfer.port(), transfer.descriptor().transports(), transfer.rdmaStatus());
    }

    public InferenceEngine engine() { return engine; }

    /** Reserves blocks for the prompt; null when the pool has no room (the conductor answers 429). */
    public ReserveResponse reserve(long requestId, int promptTokens) {
        if (promptTokens < 1 || promptTokens > engine.info().contextLength()) {
            throw new IllegalArgumentException("prompt of " + promptTokens + " tokens: expected 1.." + engine.info().contextLength());
        }
        if (draining) return null; // stopping: the conductor tries another decode worker
        Sequence seq = engine.newSequence();
        if (!seq.reserve(promptTokens)) {
            seq.release();
            return null;
        }
        Request r = new Request(requestId, seq, promptTokens);
        if (requests.putIfAbsent(requestId, r) != null) {
            seq.release();
            throw new IllegalArgumentException("request " + requestId + " is already reserved");
        }
        long[] offsets = new long[seq.blockCount()];
        for (int b = 0; b < offsets.length; b++) offsets[b] = transfer.offsetOf(cache.block(seq.blockTable()[b]));
        return new ReserveResponse(requestId, new KvTarget(transfer.name(), DescriptorJson.write(transfer.descriptor()), offsets, cache.layout().layerBytes()),
                seq.blockCount(), seq.blockTokens());
    }

    /** The commit notification: 16 bytes, little endian, request id then prompt tokens now complete. */
    private byte onCommit(byte[] payload) {
        if (payload.length != 16) return COMMIT_REJECTED;
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(payload).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        return commit(b.getLong(0), b.getLong(8));
    }

    public byte commit(long requestId, long tokens) {
        Request r = requests.get(requestId);
        if (r == null) return COMMIT_UNKNOWN_REQUEST;
        if (tokens != r.promptTokens) return COMMIT_REJECTED;
        r.seq.setLength(r.promptTokens);
        r.committed = true;
        return COMMIT_OK;
    }

    /** Starts decoding a reserved, committed request; the flux ends with a finish event. */
    public Flux<TokenEvent> decode(DecodeTask task) {
        Request r = requests.get(task.requestId());
        if (r == null) throw new IllegalArgumentException("request " + task.requestId() + " is not reserved here");
        if (!r.committed) {
            release(r);
            throw new IllegalStateException("request " + task.requestId() + ": its KV has not arrived (no commit)");
        }
        if (r.started) throw new IllegalArgumentException("request " + task.requestId() + " is already decoding");
        r.started = true;
        r.task = task;
        var s = task.sampling();
        long seed = s.seed() == null ? System.nanoTime() : s.seed() + 1;
        r.sampler = new Sampler(new SamplingParams(s.temperature(), s.topP(), s.topK(), seed, Math.max(1, task.maxTokens()), List.of(), s.logprobs()),
                engine.info().vocabSize());
        r.next = task.firstToken();
        r.produced = 1; // the first token came from the prefill
        r.sink = Sinks.many().unicast().onBackpressureBuffer();
        Flux<TokenEvent> flux = r.sink.asFlux().doOnCancel(() -> r.cancelled = true);
        r.lastTokenAt = System.nanoTime();
        joining.add(r);
        return flux;
    }

    /** Drops a request wherever it is; its blocks return to the pool (idempotent). */
    public boolean cancel(long requestId) {
        Request r = requests.get(requestId);
        if (r == null) return false;
        r.cancelled = true;
        if (!r.started) release(r);
        return true;
    }

    private void release(Request r) {
        if (requests.remove(r.id, r)) r.seq.release();
    }

    private void runLoop() {
        List<Request> active = new ArrayList<>();
        DecodeBatch batch = new DecodeBatch(props.maxBatch(), engine.info().vocabSize());
        int vocab = engine.info().vocabSize();
        while (running) {
            try {
                if (active.isEmpty()) {
                    Request r = joining.poll(200, TimeUnit.MILLISECONDS);
                    if (r != null) active.add(r);
                    reapStale();
                }
                while (active.size() < props.maxBatch()) {
                    Request r = joining.poll();
                    if (r == null) break;
                    active.add(r);
                }
                active.removeIf(r -> {
                    if (r.cancelled || engine.tokenizer().isEndOfGeneration(r.next) || r.produced >= r.task.maxTokens()) {
                        String reason = r.cancelled ? "cancelled" : engine.tokenizer().isEndOfGeneration(r.next) ? "stop" : "length";
                        end(r, reason);
                        return true;
                    }
                    return false;
                });
                activeCount = active.size();
                if (active.isEmpty()) continue;
                batch.clear();
                for (Request r : active) batch.add(r.seq, r.next);
                engine.decode(batch);
                long now = System.nanoTime();
                for (int i = 0; i < active.size(); i++) {
                    Request r = active.get(i);
                    if (!batch.ok(i)) {
                        r.next = -1;
                        r.cancelled = true;
                        r.sink.tryEmitNext(TokenEvent.end("error: KV cache full or context exhausted"));
                        continue;
                    }
                    int off = batch.logitsOffset(i);
                    int t = r.sampler.sample(batch.logits(), off, vocab);
                    r.next = t;
                    if (engine.tokenizer().isEndOfGeneration(t)) continue; // ends at the top of the next step
                    float lp = r.task.sampling().logprobs() ? Sampler.logprob(batch.logits(), off, vocab, t) : 0f;
                    r.produced++;
                    tbt.record(Duration.ofNanos(now - r.lastTokenAt));
                    r.lastTokenAt = now;
                    r.sink.tryEmitNext(TokenEvent.token(t, lp));
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } catch (RuntimeException e) {
                LOG.error("decode step failed; failing the requests of this batch", e);
                for (Request r : active) end(r, "error: " + e.getMessage());
                active.clear();
            }
        }
    }

    private void end(Request r, String reason) {
        if (r.sink != null) {
            r.sink.tryEmitNext(TokenEvent.end(reason));
            r.sink.tryEmitComplete();
        }
        release(r);
        finished.increment();
    }

    /** Reservations whose KV never came or whose decode never started are released after a timeout. */
    private void reapStale() {
        long limit = TimeUnit.MILLISECONDS.toNanos(props.kvWaitMillis());
        long now = System.nanoTime();
        for (Request r : requests.values()) {
            if (!r.started && now - r.reservedAt > limit) {
                LOG.warn("releasing request {}: reserved {} ms ago and never started", r.id, TimeUnit.NANOSECONDS.toMillis(now - r.reservedAt));
                release(r);
            }
        }
    }

    /** This worker's name in the cluster (its transfer segment's name). */
    public String name() { return transfer.name(); }

    /**
     * Stops taking reservations and waits until every request has finished (or the timeout); true when
     * nothing is left. A worker asked to stop thus finishes what it started before it leaves.
     */
    public boolean drain(Duration timeout) throws InterruptedException {
        draining = true;
        long until = System.nanoTime() + timeout.toNanos();
        while (!requests.isEmpty() && System.nanoTime() < until) Thread.sleep(20);
        return requests.isEmpty();
    }

    public WorkerStatus status() {
        return new WorkerStatus("decode", engine.info().name(), engine.info().blockTokens(), cache.freeBlocks(), cache.usedBlocks(),
                cache.capacity(), activeCount, joining.size(), 0);
    }

    @PreDestroy
    public void close() {
        running = false;
        loop.interrupt();
        try {
            loop.join(2000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        engine.close();
        segment.close();
    }
}
