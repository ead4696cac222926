package dev.mooncakej.conductor;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.cluster.ClusterSettings;
import dev.mooncakej.cluster.EtcdCluster;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.springframework.boot.context.properties.bind.BindException;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.MapConfigurationPropertySource;

/**
 * Every {@code mooncakej.conductor.*} and {@code mooncakej.cluster.*} key (the cluster keys are the
 * same on every service) with a bad value fails the binding Spring does at start-up, with a message
 * naming the key (ours, or Spring's for a value of the wrong type).
 */
class ConductorConfigKeysTest {
    @ParameterizedTest(name = "{0}={1}")
    @CsvSource(
            delimiter = '|',
            value = {
                "model|/no/such.gguf|mooncakej.conductor.model=/no/such.gguf",
                "model-name|' '|mooncakej.conductor.model-name is blank",
                "prefill-workers|localhost:8100|mooncakej.conductor.prefill-workers",
                "decode-workers|ftp://x|mooncakej.conductor.decode-workers",
                "block-tokens|0|mooncakej.conductor.block-tokens=0",
                "default-max-tokens|0|mooncakej.conductor.default-max-tokens=0",
                "worker-timeout-millis|0|mooncakej.conductor.worker-timeout-millis=0",
                "worker-timeout-millis|soon|mooncakej.conductor.worker-timeout-millis",
                "retry-after-seconds|-1|mooncakej.conductor.retry-after-seconds=-1",
                "policy|fastest|mooncakej.conductor.policy",
                "admission|maybe|mooncakej.conductor.admission",
                "ttft-slo-seconds|0|mooncakej.conductor.ttft-slo-seconds=0",
                "tbt-slo-seconds|-0.1|mooncakej.conductor.tbt-slo-seconds=-0.1",
                "decode-kv-tokens|0|mooncakej.conductor.decode-kv-tokens=0",
                "kvcache-balancing-threshold|0.5|mooncakej.conductor.kvcache-balancing-threshold=0.5",
                "api-key-max-concurrent|0|mooncakej.conductor.api-key-max-concurrent=0",
                "max-body-bytes|10|mooncakej.conductor.max-body-bytes=10",
                "api-key-tokens-per-minute|-5|api-key-tokens-per-minute=-5",
            })
    void aBadConductorValueNamesItsKey(String key, String value, String expected) throws Exception {
        Map<String, String> props = new HashMap<>(
                Map.of("mooncakej.conductor.model", ConductorFixtures.model().toString()));
        props.put("mooncakej.conductor." + key, value);
        assertThat(bind(props, "mooncakej.conductor", ConductorProperties.class))
                .as("%s=%s", key, value)
                .isNotNull()
                .contains(expected);
    }

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource(
            delimiter = '|',
            value = {
                "etcd-endpoints|not a url|mooncakej.cluster.etcd-endpoints",
                "etcd-endpoints|http://no-port|mooncakej.cluster.etcd-endpoints",
                "prefix|noslash|mooncakej.cluster.prefix='noslash'",
                "lease-ttl-seconds|0|mooncakej.cluster.lease-ttl-seconds=0",
                "lease-ttl-seconds|long|mooncakej.cluster.lease-ttl-seconds",
                "advertise-host|bad host!|mooncakej.cluster.advertise-host='bad host!'",
            })
    void aBadClusterValueNamesItsKey(String key, String value, String expected) {
        Map<String, String> props = new HashMap<>(Map.of("mooncakej.cluster.etcd-endpoints", "http://127.0.0.1:2379"));
        props.put("mooncakej.cluster." + key, value);
        String message = bind(props, "mooncakej.cluster", ClusterSettings.class);
        if (message == null) { // the endpoints are checked when the service connects at start-up
            try (EtcdCluster c = new Binder(new MapConfigurationPropertySource(props))
                    .bind("mooncakej.cluster", ClusterSettings.class)
                    .get()
                    .connect()) {
                message = null;
            } catch (IllegalArgumentException e) {
                message = e.getMessage();
            }
        }
        assertThat(message).as("%s=%s", key, value).isNotNull().contains(expected);
    }

    private static String bind(Map<String, String> props, String prefix, Class<?> type) {
        try {
            new Binder(new MapConfigurationPropertySource(props)).bind(prefix, type);
            return null;
        } catch (BindException e) {
            StringBuilder sb = new StringBuilder(e.getMessage());
            for (Throwable c = e.getCause(); c != null; c = c.getCause())
                sb.append(" / ").append(c.getMessage());
            return sb.toString();
        }
    }
}
