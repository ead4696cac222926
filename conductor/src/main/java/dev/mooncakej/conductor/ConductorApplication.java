package dev.mooncakej.conductor;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.properties.ConfigurationPropertiesScan;

/** The conductor: OpenAI-compatible API, tokenization, scheduling onto prefill and decode workers, stream relay. */
@SpringBootApplication
@ConfigurationPropertiesScan
public class ConductorApplication {
    public static void main(String[] args) {
        SpringApplication.run(ConductorApplication.class, args);
    }

    /** {@code mooncakej.cluster.*}, bound once for every component that needs it (empty: single-host mode). */
    @org.springframework.context.annotation.Bean
    dev.mooncakej.cluster.ClusterSettings clusterSettings(org.springframework.core.env.Environment env) {
        return org.springframework.boot.context.properties.bind.Binder.get(env)
                .bind("mooncakej.cluster", dev.mooncakej.cluster.ClusterSettings.class)
                .orElseGet(dev.mooncakej.cluster.ClusterSettings::embedded);
    }
}
