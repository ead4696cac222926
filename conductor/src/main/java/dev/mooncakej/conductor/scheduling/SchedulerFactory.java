package dev.mooncakej.conductor.scheduling;

import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.conductor.model.ServedModel;
import dev.mooncakej.kvcache.cost.CostProfile;
import dev.mooncakej.scheduler.AdmissionMode;
import dev.mooncakej.scheduler.ClusterScheduler;
import dev.mooncakej.scheduler.LiveScheduler;
import dev.mooncakej.scheduler.PrefillPolicy;
import dev.mooncakej.scheduler.RoutingHealth;
import dev.mooncakej.scheduler.SchedulerConfig;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/**
 * Builds the conductor's one scheduler from {@code mooncakej.conductor.*}, once: the scheduler core on
 * wall-clock time, empty until membership adds workers, kept for the conductor's life so what it
 * learns (the prefill-time fit, t_d) survives every membership change.
 */
@Configuration(proxyBeanMethods = false)
public class SchedulerFactory {
    /**
     * The prefill-time model starts from a rough guess for a CPU worker and is refitted from the
     * workers' reports; KV moves between prefill workers are not priced yet (no prefix fetch).
     */
    static CostProfile initialGuess(long kvBytesPerToken) {
        return new CostProfile("live-initial", 0.01, 1e-4, 0, 0.005, 0.001, 1e-7, kvBytesPerToken);
    }

    /**
     * What a prefix fetch between prefill workers is priced at until it is measured: about one
     * memory copy on a host (shm); across hosts the network is slower, which only makes the scheduler
     * fetch less often than it could.
     */
    static final double INITIAL_FETCH_BYTES_PER_SECOND = 5e9;

    /**
     * The prefix index's bound per prefill worker (its least recently used blocks leave beyond it): far
     * above what a worker's KV slab holds, so only a misreporting worker meets it.
     */
    static final int INDEX_BLOCKS_PER_WORKER = 1 << 20;

    @Bean
    LiveScheduler liveScheduler(ConductorProperties props, ServedModel model) {
        ClusterScheduler core =
                new ClusterScheduler(config(props, model.kvBytesPerToken()), 0, 0, INDEX_BLOCKS_PER_WORKER);
        core.spreadDecodeTies(true); // idle or just-joined decode workers take traffic in turn
        return new LiveScheduler(core, () -> System.nanoTime() / 1e9);
    }

    /** The routing-health window: hits that stop for this long on a worker turn routing degraded. */
    @Bean
    RoutingHealth routingHealth() {
        return new RoutingHealth(20);
    }

    static SchedulerConfig config(ConductorProperties props, long kvBytesPerToken) {
        return new SchedulerConfig(
                PrefillPolicy.parse(props.policy()),
                AdmissionMode.parse(props.admission()),
                props.ttftSloSeconds(),
                props.tbtSloSeconds(),
                props.kvcacheBalancingThreshold(),
                props.blockTokens(),
                initialGuess(kvBytesPerToken),
                INITIAL_FETCH_BYTES_PER_SECOND,
                props.decodeKvTokens(),
                10,
                1);
    }
}
