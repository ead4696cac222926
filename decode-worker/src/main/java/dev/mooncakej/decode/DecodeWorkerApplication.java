package dev.mooncakej.decode;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.properties.ConfigurationPropertiesScan;

/** Decode worker: receives KV into reserved blocks, decodes in one continuous batch, streams tokens. */
@SpringBootApplication
@ConfigurationPropertiesScan
public class DecodeWorkerApplication {
    public static void main(String[] args) {
        SpringApplication.run(DecodeWorkerApplication.class, args);
    }

    /** {@code mooncakej.cluster.*}, bound once for every component that needs it (empty: single-host mode). */
    @org.springframework.context.annotation.Bean
    dev.mooncakej.cluster.ClusterSettings clusterSettings(org.springframework.core.env.Environment env) {
        return org.springframework.boot.context.properties.bind.Binder.get(env)
                .bind("mooncakej.cluster", dev.mooncakej.cluster.ClusterSettings.class)
                .orElseGet(dev.mooncakej.cluster.ClusterSettings::embedded);
    }
}
