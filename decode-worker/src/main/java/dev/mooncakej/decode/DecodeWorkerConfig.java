package dev.mooncakej.decode;

import dev.mooncakej.cluster.ClusterSettings;
import dev.mooncakej.engine.kv.PagedKvCache;
import dev.mooncakej.kvstore.client.WorkerStoreSettings;
import dev.mooncakej.kvtransfer.engine.TransferEngine;
import dev.mooncakej.web.VllmMetrics;
import dev.mooncakej.worker.WorkerKeys;
import dev.mooncakej.worker.WorkerRuntime;
import dev.mooncakej.worker.WorkerSettings;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.config.MeterFilter;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.env.Environment;

/**
 * The decode worker composed in order: its runtime (the transfer segment, then the engine over its
 * memory; {@code mooncakej.decode.engine} picks llama or simulated), then the service over it, then
 * the agent that runs the batch. Closing goes the other way.
 */
@Configuration(proxyBeanMethods = false)
public class DecodeWorkerConfig {
    private static final Logger LOG = LoggerFactory.getLogger(DecodeWorkerConfig.class);

    /** The decode agent, once made (the vLLM metrics read its batch size). */
    private final AtomicReference<DecodeAgent> agent = new AtomicReference<>();

    /** The keys both workers take, bound under {@code mooncakej.decode.} and checked. */
    @Bean
    WorkerSettings decodeSettings(Environment env) {
        return settings(Binder.get(env));
    }

    static WorkerSettings settings(Binder binder) {
        return WorkerSettings.of(
                DecodeProperties.PREFIX + ".", binder.bindOrCreate(DecodeProperties.PREFIX, WorkerKeys.class));
    }

    @Bean(destroyMethod = "close")
    WorkerRuntime decodeRuntime(
            WorkerSettings settings, DecodeProperties props, ClusterSettings cluster, Environment env) {
        return WorkerRuntime.start(
                "decode", settings, props.maxBatch(), cluster, WorkerStoreSettings.from(env::getProperty));
    }

    /**
     * Every meter carries the loaded model's name as {@code model_name}, as the vLLM metrics do (made
     * from the runtime, which does not meter, so the registry gets it before its first meter).
     */
    @Bean
    MeterFilter modelNameTag(WorkerRuntime runtime) {
        return VllmMetrics.modelNameTag(runtime.engine().info().name());
    }

    @Bean
    DecodeService decodeService(DecodeProperties props, WorkerRuntime runtime) {
        DecodeService service = new DecodeService(props, runtime);
        service.calibrate(); // before the decode agent runs a step
        return service;
    }

    /**
     * The vLLM-named metrics on {@code /metrics}: the batch (running), decode tasks waiting to join it,
     * the KV blocks in use, inter-token latency and generated tokens (recorded by the agent).
     */
    @Bean
    VllmMetrics vllmMetrics(DecodeService service) {
        PagedKvCache cache = service.engine().kvCache();
        return new VllmMetrics(
                service.engine().info().name(),
                () -> {
                    DecodeAgent a = agent.get(); // made after these metrics, which it records into
                    return a == null ? 0 : a.activeCount();
                },
                service.joining::size,
                () -> cache.capacity() == 0 ? 0 : (double) cache.usedBlocks() / cache.capacity());
    }

    @Bean
    DecodeAgent decodeAgent(DecodeService service, MeterRegistry meters, VllmMetrics vllm) {
        DecodeAgent agent = new DecodeAgent(service, meters, vllm);
        this.agent.set(agent);
        PagedKvCache cache = service.engine().kvCache();
        TransferEngine transfer = service.transfer();
        Map<String, Counter> outcomes = new HashMap<>();
        for (String o : new String[] {"stop", "length", "cancelled", "error"}) {
            outcomes.put(
                    o,
                    Counter.builder("mooncakej.decode.requests")
                            .description("requests that ended decoding, by how")
                            .tag("outcome", o)
                            .register(meters));
        }
        service.onOutcome(o -> outcomes.getOrDefault(o, outcomes.get("error")).increment());
        Gauge.builder("mooncakej.kv.blocks.used", cache, PagedKvCache::usedBlocks)
                .tag("role", "decode")
                .description("KV blocks in use on this worker")
                .register(meters);
        Gauge.builder("mooncakej.kv.blocks.capacity", cache, PagedKvCache::capacity)
                .tag("role", "decode")
                .description("KV blocks this worker has")
                .register(meters);
        Gauge.builder("mooncakej.kv.blocks.fenced", service, DecodeService::fencedBlockCount)
                .description("blocks of dropped reservations waiting for their writer to stop")
                .register(meters);
        Gauge.builder("mooncakej.decode.batch.size", agent, DecodeAgent::activeCount)
                .description("sequences in the decode batch")
                .register(meters);
        FunctionCounter.builder("mooncakej.decode.pool.put.blocks", service, DecodeService::pooledBlocks)
                .description("blocks of finished sequences put into the KV pool")
                .register(meters);
        FunctionCounter.builder("mooncakej.kv.received", transfer, TransferEngine::bytesReceived)
                .description("KV bytes this worker's transfer engine received")
                .baseUnit("bytes")
                .register(meters);
        LOG.info(
                "decode worker ready: {} engine, model {}, {} KV blocks of {} tokens, transfer segment '{}' on port "
                        + "{} ({}; rdma: {})",
                service.engine().getClass().getSimpleName(),
                service.engine().info().name(),
                cache.capacity(),
                service.engine().info().blockTokens(),
                transfer.name(),
                transfer.port(),
                transfer.descriptor().transports(),
                transfer.rdmaStatus());
        return agent;
    }
}
