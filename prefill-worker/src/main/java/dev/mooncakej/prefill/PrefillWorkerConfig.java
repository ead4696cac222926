package dev.mooncakej.prefill;

import dev.mooncakej.cluster.ClusterSettings;
import dev.mooncakej.engine.kv.PagedKvCache;
import dev.mooncakej.kvstore.client.SsdTier;
import dev.mooncakej.kvstore.client.WorkerStoreSettings;
import dev.mooncakej.web.VllmMetrics;
import dev.mooncakej.worker.WorkerKeys;
import dev.mooncakej.worker.WorkerRuntime;
import dev.mooncakej.worker.WorkerSettings;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.config.MeterFilter;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.env.Environment;

/**
 * The prefill worker composed in order: its runtime (the transfer segment, then the engine over its
 * memory; {@code mooncakej.prefill.engine} picks llama or simulated), then the service over it, with
 * its meters. Closing goes the other way.
 */
@Configuration(proxyBeanMethods = false)
public class PrefillWorkerConfig {
    private static final Logger LOG = LoggerFactory.getLogger(PrefillWorkerConfig.class);

    /** The keys both workers take, bound under {@code mooncakej.prefill.} and checked. */
    @Bean
    WorkerSettings prefillSettings(Environment env) {
        return settings(Binder.get(env));
    }

    static WorkerSettings settings(Binder binder) {
        return WorkerSettings.of(
                PrefillProperties.PREFIX + ".", binder.bindOrCreate(PrefillProperties.PREFIX, WorkerKeys.class));
    }

    @Bean(destroyMethod = "close")
    WorkerRuntime prefillRuntime(
            WorkerSettings settings, PrefillProperties props, ClusterSettings cluster, Environment env) {
        return WorkerRuntime.start(
                "prefill", settings, props.chunkTokens(), cluster, WorkerStoreSettings.from(env::getProperty));
    }

    /**
     * Every meter carries the loaded model's name as {@code model_name}, as the vLLM metrics do (made
     * from the runtime, which does not meter, so the registry gets it before its first meter).
     */
    @Bean
    MeterFilter modelNameTag(WorkerRuntime runtime) {
        return VllmMetrics.modelNameTag(runtime.engine().info().name());
    }

    /**
     * The vLLM-named metrics on {@code /metrics}: the prefill computing (running) and those queued
     * behind it (waiting), the prefix cache's share of the KV blocks, prompt tokens and prefix cache
     * queries and hits (recorded by the service).
     */
    @Bean
    VllmMetrics vllmMetrics(PrefillService service) {
        PagedKvCache cache = service.engine().kvCache();
        VllmMetrics v = new VllmMetrics(
                service.engine().info().name(),
                () -> Math.min(1, service.queued()), // one prefill at a time on the engine
                () -> Math.max(0, service.queued() - 1),
                () -> cache.capacity() == 0 ? 0 : (double) cache.usedBlocks() / cache.capacity());
        service.recordInto(v);
        return v;
    }

    @Bean
    PrefillService prefillService(PrefillProperties props, WorkerRuntime runtime, MeterRegistry meters) {
        PrefillService service = new PrefillService(props, runtime, new PrefillMetrics(meters), runtime.newSsdTier());
        service.attach();
        service.calibrate();
        PagedKvCache cache = runtime.engine().kvCache();
        Gauge.builder("mooncakej.kv.blocks.used", cache, PagedKvCache::usedBlocks)
                .tag("role", "prefill")
                .description("KV blocks in use on this worker")
                .register(meters);
        Gauge.builder("mooncakej.kv.blocks.capacity", cache, PagedKvCache::capacity)
                .tag("role", "prefill")
                .description("KV blocks this worker has")
                .register(meters);
        Gauge.builder("mooncakej.prefill.cached.blocks", service.pool(), PrefixBlockPool::size)
                .description("KV blocks in this worker's prefix cache")
                .register(meters);
        Gauge.builder("mooncakej.prefill.queue", service, PrefillService::queued)
                .description("prefills on this worker, computing or waiting for the engine")
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
        SsdTier ssd = service.ssd();
        if (ssd != null) {
            LOG.info(
                    "SSD tier: {} bytes in {}",
                    ssd.capacityBytes(),
                    runtime.store().ssdDir());
        }
        LOG.info(
                "prefill worker ready: {} engine, model {}, {} KV blocks of {} tokens",
                runtime.engine().getClass().getSimpleName(),
                runtime.engine().info().name(),
                cache.capacity(),
                runtime.engine().info().blockTokens());
        return service;
    }
}
