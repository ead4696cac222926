package dev.mooncakej.web;

import dev.mooncakej.cluster.ClusterSettings;
import dev.mooncakej.kvcache.wire.ClusterCredential;
import org.springframework.boot.autoconfigure.AutoConfiguration;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.context.annotation.Bean;
import org.springframework.core.env.Environment;

/**
 * What every service's web edge needs, once: the cluster credential (from {@code
 * mooncakej.cluster.secret} or {@code mooncakej.cluster.secret-file}; start-up fails naming the key
 * when neither holds a secret), the filter that checks it on the internal plane, and {@code
 * mooncakej.cluster.*} bound to {@link ClusterSettings} (empty: single-host mode).
 */
@AutoConfiguration
public class WebEdgeAutoConfiguration {
    @Bean
    ClusterCredential clusterCredential(Environment env) {
        return ClusterCredential.fromSettings(env::getProperty);
    }

    @Bean
    InternalPlaneFilter internalPlaneFilter(ClusterCredential credential) {
        return new InternalPlaneFilter(credential);
    }

    @Bean
    ClusterSettings clusterSettings(Environment env) {
        return Binder.get(env).bind("mooncakej.cluster", ClusterSettings.class).orElseGet(ClusterSettings::embedded);
    }
}
