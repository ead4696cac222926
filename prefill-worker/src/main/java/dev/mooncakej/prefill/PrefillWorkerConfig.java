package dev.mooncakej.prefill;

import dev.mooncakej.cluster.ClusterSettings;
import dev.mooncakej.engine.kv.PagedKvCache;
import dev.mooncakej.engine.spi.InferenceEngine;
import dev.mooncakej.kvstore.client.SsdTier;
import dev.mooncakej.kvstore.client.WorkerStoreSettings;
import dev.mooncakej.kvtransfer.engine.WorkerSegment;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import java.nio.file.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.env.Environment;

/**
 * The prefill worker composed in order: its transfer segment (and metadata), then the engine (its KV
 * slab is the segment's registered memory; {@code mooncakej.prefill.engine} picks llama or simulated),
 * then the service over both. Closing goes the other way.
 */
@Configuration(proxyBeanMethods = false)
public class PrefillWorkerConfig {
    private static final Logger LOG = LoggerFactory.getLogger(PrefillWorkerConfig.class);

    @Bean(destroyMethod = "close")
    WorkerSegment prefillSegment(PrefillProperties props, ClusterSettings cluster, WorkerStoreSettings store) {
        return new WorkerSegment(
                "prefill",
                props.transferConfig(),
                WorkerSegment.metadata(
                        cluster.etcd(), cluster.prefix(), cluster.leaseTtlSeconds(), Path.of(props.kvShmDir())),
                store.dramBytes());
    }

    /** {@code mooncakej.store.*} on this worker: its pool DRAM and its SSD tier. */
    @Bean
    WorkerStoreSettings workerStoreSettings(Environment env) {
        return WorkerStoreSettings.from(env::getProperty);
    }

    @Bean(destroyMethod = "close")
    InferenceEngine prefillEngine(PrefillProperties props, WorkerSegment segment) {
        return props.engineSettings().create(segment.kvMemory());
    }

    @Bean
    PrefillService prefillService(
            PrefillProperties props,
            InferenceEngine engine,
            WorkerSegment segment,
            MeterRegistry meters,
            WorkerStoreSettings store) {
        SsdTier ssd = store.ssdDir() == null
                ? null
                : new SsdTier(
                        store.ssdDir(),
                        segment.name(),
                        store.ssdBytes(),
                        engine.kvCache().layout().blockBytes());
        PrefillService service = new PrefillService(props, engine, segment, new PrefillMetrics(meters), ssd);
        service.attach();
        service.calibrate();
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
        // exported with or without a tier (0 without), so dashboards and alerts need no special case
        Gauge.builder(
                        "mooncakej.prefill.ssd.blocks",
                        service,
                        x -> x.ssd() == null ? 0 : x.ssd().size())
                .description("KV blocks in this worker's SSD tier")
                .register(meters);
        FunctionCounter.builder(
                        "mooncakej.prefill.ssd.reads",
                        service,
                        x -> x.ssd() == null ? 0 : x.ssd().reads())
                .description("blocks read back from the SSD tier (promoted)")
                .register(meters);
        FunctionCounter.builder(
                        "mooncakej.prefill.ssd.writes",
                        service,
                        x -> x.ssd() == null ? 0 : x.ssd().writes())
                .description("blocks written to the SSD tier (demoted instead of dropped)")
                .register(meters);
        if (ssd != null) {
            LOG.info("SSD tier: {} bytes in {}", ssd.capacityBytes(), store.ssdDir());
        }
        LOG.info(
                "prefill worker ready: {} engine, model {}, {} KV blocks of {} tokens",
                engine.getClass().getSimpleName(),
                engine.info().name(),
                cache.capacity(),
                engine.info().blockTokens());
        return service;
    }
}
