package dev.mooncakej.decode;

import dev.mooncakej.cluster.ClusterSettings;
import dev.mooncakej.engine.kv.PagedKvCache;
import dev.mooncakej.engine.spi.InferenceEngine;
import dev.mooncakej.kvstore.client.WorkerStoreSettings;
import dev.mooncakej.kvtransfer.engine.TransferEngine;
import dev.mooncakej.kvtransfer.engine.WorkerSegment;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.env.Environment;

/**
 * The decode worker composed in order: its transfer segment (and metadata), then the engine (its KV
 * slab is the segment's registered memory; {@code mooncakej.decode.engine} picks llama or simulated),
 * then the service over both, then the agent that runs the batch. Closing goes the other way.
 */
@Configuration(proxyBeanMethods = false)
public class DecodeWorkerConfig {
    private static final Logger LOG = LoggerFactory.getLogger(DecodeWorkerConfig.class);

    @Bean(destroyMethod = "close")
    WorkerSegment decodeSegment(DecodeProperties props, ClusterSettings cluster, WorkerStoreSettings store) {
        return new WorkerSegment(
                "decode",
                props.transferConfig(),
                WorkerSegment.metadata(
                        cluster.etcd(), cluster.prefix(), cluster.leaseTtlSeconds(), Path.of(props.kvShmDir())),
                store.dramBytes());
    }

    /** {@code mooncakej.store.dram-bytes}: the DRAM this worker contributes to the KV pool. */
    @Bean
    WorkerStoreSettings workerStoreSettings(Environment env) {
        return WorkerStoreSettings.from(env::getProperty);
    }

    @Bean(destroyMethod = "close")
    InferenceEngine decodeEngine(DecodeProperties props, WorkerSegment segment) {
        return props.engineSettings().create(segment.kvMemory());
    }

    @Bean
    DecodeService decodeService(DecodeProperties props, InferenceEngine engine, WorkerSegment segment) {
        DecodeService service = new DecodeService(props, engine, segment);
        service.calibrate(); // before the decode agent runs a step
        return service;
    }

    @Bean
    DecodeAgent decodeAgent(DecodeService service, MeterRegistry meters) {
        DecodeAgent agent = new DecodeAgent(service, meters);
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
                .register(meters);
        Gauge.builder("mooncakej.kv.blocks.capacity", cache, PagedKvCache::capacity)
                .tag("role", "decode")
                .register(meters);
        Gauge.builder("mooncakej.kv.blocks.fenced", service, DecodeService::fencedBlockCount)
                .description("blocks of dropped reservations waiting for their writer to stop")
                .register(meters);
        Gauge.builder("mooncakej.decode.batch.size", agent, DecodeAgent::activeCount)
                .register(meters);
        Gauge.builder("mooncakej.decode.pool.put.blocks", service, DecodeService::pooledBlocks)
                .description("blocks of finished sequences put into the KV pool")
                .register(meters);
        Gauge.builder("mooncakej.kv.received.bytes", transfer, TransferEngine::bytesReceived)
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
