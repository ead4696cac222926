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
import dev.mooncakej.kvtransfer.AsyncKvStream;
import dev.mooncakej.kvtransfer.KvFrame;
import dev.mooncakej.kvtransfer.PeerAuth;
import dev.mooncakej.kvtransfer.TcpKvSender;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import jakarta.annotation.PreDestroy;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.stereotype.Service;

/**
 * Prefill: reuse the longest locally cached prefix, compute the rest in chunks, and after each layer
 * of each chunk hand that layer of the touched blocks to the KV stream (which writes it to the decode
 * worker while the next layer is computed). Returns the first token once the decode worker has
 * acknowledged all the KV. New full blocks join the local prefix cache.
 */
@Service
public class PrefillService {
    private static final Logger LOG = LoggerFactory.getLogger(PrefillService.class);

    private final PrefillProperties props;
    private final InferenceEngine engine;
    private final PagedKvCache cache;
    private final PrefixBlockPool pool;
    private final AtomicInteger queued = new AtomicInteger();
    private final PeerAuth auth;
    private final Timer prefillTime;
    private final Timer kvTime;
    private final Counter kvBytes;
    private final DistributionSummary cachedTokens;

    public PrefillService(PrefillProperties props, MeterRegistry meters) {
        this.props = props;
        this.engine = new LlamaEngine(props.engineConfig());
        this.cache = engine.kvCache();
        this.pool = new PrefixBlockPool(cache);
        this.auth = new PeerAuth(props.kvSecret());
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
        queued.incrementAndGet();
        Sequence seq = engine.newSequence();
        long t0 = System.nanoTime();
        try (AsyncKvStream kv = new AsyncKvStream(TcpKvSender.connect(task.kvHost(), task.kvPort(), props.kvConnectTimeoutMillis(), auth), task.requestId())) {
            int[] prefix = pool.longestPrefix(keys, (n - 1) / bt); // keep at least one token to compute
            seq.adoptPrefix(prefix, prefix.length);
            int cached = prefix.length * bt;
            for (int b = 0; b < prefix.length; b++) {
                for (int l = 0; l < engine.info().layers(); l++) kv.enqueue(b, l, cache.layer(seq.blockTable()[b], l));
            }
            float[] logits = new float[engine.info().vocabSize()];
            PrefillOptions opts = PrefillOptions.chunked(props.chunkTokens()).withLayers((from, to, layer) -> {
                for (int b = from / bt; b <= (to - 1) / bt; b++) kv.enqueue(b, layer, cache.layer(seq.blockTable()[b], layer));
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
            byte status = kv.finish(n, props.kvFinishTimeoutMillis());
            if (status != KvFrame.OK) throw new IllegalStateException("decode worker refused the KV of request " + task.requestId() + " (status " + status + ")");
            double kvSeconds = (System.nanoTime() - tk) / 1e9;
            kvTime.record(Duration.ofNanos(System.nanoTime() - tk));
            kvBytes.increment(kv.bytesSent());
            cachedTokens.record(cached);
            for (int b = prefix.length; b < keys.length; b++) pool.put(keys[b], seq.blockTable()[b]);
            return new PrefillResult(task.requestId(), first, lp, cached, prefillSeconds, kv.bytesSent(), kvSeconds);
        } finally {
            seq.release();
            queued.decrementAndGet();
        }
    }

    public WorkerStatus status() {
        return new WorkerStatus("prefill", engine.info().name(), engine.info().blockTokens(), cache.freeBlocks(), cache.usedBlocks(),
                cache.capacity(), 0, queued.get(), pool.size());
    }

    @PreDestroy
    public void close() {
        engine.close();
    }
}
