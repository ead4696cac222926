package dev.mooncakej.prefill;

import dev.mooncakej.cluster.ClusterSettings;
import dev.mooncakej.engine.kv.PagedKvCache;
import dev.mooncakej.engine.spi.InferenceEngine;
import dev.mooncakej.kvtransfer.engine.WorkerSegment;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import java.nio.file.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/**
 * The prefill worker composed in order: its transfer segment (and metadata), then the engine (its KV
 * slab is the segment's registered memory; {@code mooncakej.prefill.engine} picks llama or simulated),
 * then the service over both. Closing goes the other way.
 */
@Configuration(proxyBeanMethods = false)
public class PrefillWorkerConfig {
    private static final Logger LOG = LoggerFactory.getLogger(PrefillWorkerConfig.class);

    @Bean(destroyMethod = "close")
    WorkerSegment prefillSegment(PrefillProperties props, ClusterSettings cluster) {
        return new WorkerSegment(
                "prefill",
                props.transferConfig(),
                WorkerSegment.metadata(
                        cluster.etcdEndpoints(),
                        cluster.prefix(),
                        cluster.leaseTtlSeconds(),
                        Path.of(props.kvShmDir())));
    }

    @Bean(destroyMethod = "close")
    InferenceEngine prefillEngine(PrefillProperties props, WorkerSegment segment) {
        return props.engineSettings().create(segment.kvMemory());
    }

    @Bean
    PrefillService prefillService(
            PrefillProperties props, InferenceEngine engine, WorkerSegment segment, MeterRegistry meters) {
        PrefillService service = new PrefillService(props, engine, segment, new PrefillMetrics(meters));
        service.attach();
        PagedKvCache cache = engine.kvCache();
        Gauge.builder("mooncakej.kv.blocks.used", cache, PagedKvCache::usedBlocks)
                .tag("role", "prefill")
                .register(meters);
        Gauge.builder("mooncakej.kv.blocks.capacity", cache, PagedKvCache::capacity)
                .tag("role", "prefill")
                .register(meters);
        Gauge.builder("mooncakej.prefill.cached.blocks", service.pool(), PrefixBlockPool::size)
                .register(meters);
        Gauge.builder("mooncakej.prefill.queue", service, PrefillService::queued)
                .register(meters);
        LOG.info(
                "prefill worker ready: {} engine, model {}, {} KV blocks of {} tokens",
                engine.getClass().getSimpleName(),
                engine.info().name(),
                cache.capacity(),
                engine.info().blockTokens());
        return service;
    }
}
