package dev.mooncakej.conductor.scheduling;

import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.kvcache.cost.CostProfile;
import dev.mooncakej.scheduler.AdmissionMode;
import dev.mooncakej.scheduler.ClusterScheduler;
import dev.mooncakej.scheduler.LiveScheduler;
import dev.mooncakej.scheduler.PrefillPolicy;
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
    static final CostProfile INITIAL_GUESS = new CostProfile("live-initial", 0.01, 1e-4, 0, 0.005, 0.001, 1e-7, 1);

    @Bean
    LiveScheduler liveScheduler(ConductorProperties props) {
        ClusterScheduler core = new ClusterScheduler(config(props), 0, 0, 0);
        core.spreadDecodeTies(true); // idle or just-joined decode workers take traffic in turn
        return new LiveScheduler(core, () -> System.nanoTime() / 1e9);
    }

    static SchedulerConfig config(ConductorProperties props) {
        return new SchedulerConfig(
                PrefillPolicy.parse(props.policy()),
                AdmissionMode.parse(props.admission()),
                props.ttftSloSeconds(),
                props.tbtSloSeconds(),
                1.5,
                props.blockTokens(),
                INITIAL_GUESS,
                1e12,
                props.decodeKvTokens(),
                10,
                1);
    }
}
