package dev.mooncakej.conductor;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.yaml.snakeyaml.Yaml;
import tools.jackson.databind.json.JsonMapper;

/**
 * The deployment files: docker/compose.yaml validates with Debian's {@code docker-compose config}
 * (this machine has no Docker engine; ./mooncakej test installs the CLI) and has every service; the
 * Kubernetes manifests parse, embed config/kubernetes.yaml unchanged, probe the ports they expose and
 * run as non-root; the Grafana dashboard is valid JSON (its metrics are checked against running
 * services by ServingSystemTest).
 */
class DeploymentFilesTest {
    private static Path root() {
        Path p = Path.of("").toAbsolutePath();
        while (!Files.isDirectory(p.resolve("docker"))) p = p.getParent();
        return p;
    }

    @Test
    void composeValidatesWithDockerCompose() throws Exception {
        // without a secret of the user's the stack does not start (it ships no default)
        ProcessBuilder none = new ProcessBuilder("docker-compose", "-f", "docker/compose.yaml", "config")
                .directory(root().toFile())
                .redirectErrorStream(true);
        none.environment().remove("MOONCAKEJ_KV_SECRET");
        none.environment().put("GRAFANA_ADMIN_PASSWORD", "a-password-of-the-users");
        Process refused = none.start();
        String why = new String(refused.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(refused.waitFor())
                .as("docker-compose config without a secret: %s", why)
                .isNotZero();
        assertThat(why).contains("MOONCAKEJ_KV_SECRET");
        ProcessBuilder pb = new ProcessBuilder("docker-compose", "-f", "docker/compose.yaml", "config")
                .directory(root().toFile())
                .redirectErrorStream(true);
        pb.environment().put("MOONCAKEJ_KV_SECRET", "a-secret-the-user-chose-0123456789");
        pb.environment().put("GRAFANA_ADMIN_PASSWORD", "a-password-of-the-users");
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor()).as("docker-compose config: %s", out).isZero();
        Map<String, Object> doc = new Yaml().load(out);
        @SuppressWarnings("unchecked")
        Map<String, Object> services = (Map<String, Object>) doc.get("services");
        assertThat(services)
                .containsKeys(
                        "etcd", "conductor", "prefill-0", "prefill-1", "decode-0", "decode-1", "prometheus", "grafana");
        String compose = Files.readString(root().resolve("docker/compose.yaml"));
        assertThat(compose)
                .as("Grafana signs users in; Prometheus and Grafana on this host only; workers get shm")
                .contains("GF_AUTH_ANONYMOUS_ENABLED: \"false\"")
                .contains("127.0.0.1:9090:9090")
                .contains("127.0.0.1:3000:3000")
                .contains("shm_size:");
        for (String df : List.of("conductor", "prefill-worker", "decode-worker")) {
            String text = Files.readString(root().resolve("docker/" + df + ".Dockerfile"));
            assertThat(text)
                    .as(df)
                    .contains("AS build")
                    .contains("eclipse-temurin:25-jre")
                    .contains("USER mooncakej")
                    .contains("HEALTHCHECK");
        }
        String prom = Files.readString(root().resolve("docker/prometheus/prometheus.yml"));
        assertThat(prom)
                .contains("metrics_path: /metrics")
                .contains("/etc/prometheus/alerts.yml")
                .contains("conductor:8000")
                .contains("prefill-1:8100")
                .contains("decode-1:8200");
    }

    /**
     * The file the compose services load (config/cluster.yaml, through SPRING_CONFIG_ADDITIONAL_LOCATION)
     * and what compose gives them agree: every placeholder without a default is set in the service's
     * environment, every file it names lies in a mounted directory, a TLS etcd client talks to an etcd
     * that serves TLS, and Prometheus scrapes the https the services serve. Fails when either file
     * changes without the other (as when the cluster profile moved to TLS and compose did not).
     */
    @Test
    @SuppressWarnings("unchecked")
    void composeProvidesEverythingTheProfileItLoadsNeeds() throws Exception {
        ProcessBuilder pb = new ProcessBuilder("docker-compose", "-f", "docker/compose.yaml", "config")
                .directory(root().toFile())
                .redirectErrorStream(true);
        pb.environment().put("MOONCAKEJ_KV_SECRET", "a-secret-the-user-chose-0123456789");
        pb.environment().put("GRAFANA_ADMIN_PASSWORD", "a-password-of-the-users");
        pb.environment().remove("MOONCAKEJ_TLS_DIR");
        pb.environment().remove("TLS_DIR");
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor()).as("docker-compose config: %s", out).isZero();
        Map<String, Object> services =
                (Map<String, Object>) ((Map<String, Object>) new Yaml().load(out)).get("services");
        Pattern placeholder = Pattern.compile("\\$\\{([A-Za-z_][A-Za-z0-9_]*)(:[^}]*)?}");
        boolean tlsProfile = false;
        for (String name : List.of("conductor", "prefill-0", "prefill-1", "decode-0", "decode-1")) {
            Map<String, Object> svc = (Map<String, Object>) services.get(name);
            Map<String, Object> env = (Map<String, Object>) svc.get("environment");
            List<String[]> mounts = new ArrayList<>();
            for (Object v : (List<Object>) svc.get("volumes")) {
                String[] parts = v instanceof String str
                        ? str.split(":")
                        : new String[] {
                            String.valueOf(((Map<String, Object>) v).get("source")),
                            String.valueOf(((Map<String, Object>) v).get("target"))
                        };
                mounts.add(new String[] {parts[0], parts[1]});
            }
            String location = String.valueOf(env.get("SPRING_CONFIG_ADDITIONAL_LOCATION"));
            assertThat(location).as("%s loads a profile", name).startsWith("file:");
            String inContainer = location.substring("file:".length());
            String[] mount = mounts.stream()
                    .filter(m -> inContainer.startsWith(m[1] + "/"))
                    .findFirst()
                    .orElseThrow(() -> new AssertionError(name + ": " + inContainer + " is in no mounted directory"));
            String profile = Files.readString(Path.of(mount[0] + inContainer.substring(mount[1].length())));
            var m = placeholder.matcher(profile);
            while (m.find()) {
                String var = m.group(1);
                if (m.group(2) != null) continue; // has a default
                assertThat(env)
                        .as("%s: %s needs ${%s}, which compose does not set", name, location, var)
                        .containsKey(var);
            }
            // every file the profile names through a directory variable is inside a mount
            var files = Pattern.compile("\\$\\{([A-Z_]+)}/([A-Za-z0-9._-]+)").matcher(profile);
            while (files.find()) {
                String dir = String.valueOf(env.get(files.group(1)));
                assertThat(mounts.stream().anyMatch(mm -> mm[1].equals(dir)))
                        .as(
                                "%s: %s/%s (from ${%s}) lies in no mounted directory",
                                name, dir, files.group(2), files.group(1))
                        .isTrue();
            }
            if (profile.contains("etcd-ca-file")) {
                tlsProfile = true;
                assertThat(String.valueOf(env.get("ETCD_ENDPOINTS")))
                        .as("%s: the profile talks TLS to etcd", name)
                        .startsWith("https://");
            }
        }
        if (tlsProfile) {
            assertThat(String.valueOf(((Map<String, Object>) services.get("etcd")).get("command")))
                    .as("etcd serves the TLS its clients expect")
                    .contains("https://0.0.0.0:2379")
                    .contains("--cert-file")
                    .contains("--trusted-ca-file");
            assertThat(Files.readString(root().resolve("docker/prometheus/prometheus.yml")))
                    .as("Prometheus scrapes the https the services serve")
                    .contains("scheme: https")
                    .contains("ca_file:");
        }
    }

    @Test
    @SuppressWarnings("unchecked")
    void kubernetesManifestsAreConsistent() throws Exception {
        List<Map<String, Object>> docs = new ArrayList<>();
        for (Object o : new Yaml().loadAll(Files.readString(root().resolve("docker/k8s/mooncakej.yaml"))))
            docs.add((Map<String, Object>) o);
        List<String> deployments = new ArrayList<>();
        for (Map<String, Object> d : docs) {
            assertThat(d).containsKeys("apiVersion", "kind", "metadata");
            if ("ConfigMap".equals(d.get("kind"))) {
                String embedded = ((Map<String, String>) d.get("data")).get("kubernetes.yaml");
                assertThat(embedded)
                        .as("the ConfigMap embeds config/kubernetes.yaml unchanged")
                        .isEqualTo(Files.readString(root().resolve("config/kubernetes.yaml")));
            }
            if ("Deployment".equals(d.get("kind")) || "StatefulSet".equals(d.get("kind"))) {
                String name = (String) ((Map<String, Object>) d.get("metadata")).get("name");
                deployments.add(name);
                Map<String, Object> pod = (Map<String, Object>)
                        ((Map<String, Object>) ((Map<String, Object>) d.get("spec")).get("template")).get("spec");
                Map<String, Object> c = ((List<Map<String, Object>>) pod.get("containers")).get(0);
                if (name.equals("etcd")) continue;
                int port = (Integer)
                        ((List<Map<String, Object>>) c.get("ports")).get(0).get("containerPort");
                Map<String, Object> probe =
                        (Map<String, Object>) ((Map<String, Object>) c.get("readinessProbe")).get("httpGet");
                assertThat(probe.get("port"))
                        .as("%s readiness probe port", name)
                        .isEqualTo(port);
                assertThat((List<String>) c.get("args")).contains("--server.port=" + port);
                assertThat(((Map<String, Object>) pod.get("securityContext")).get("runAsNonRoot"))
                        .isEqualTo(true);
                assertThat(pod.get("securityContext").toString()).contains("RuntimeDefault");
                assertThat(probe.get("path")).as("%s readiness", name).isEqualTo("/actuator/health/readiness");
                assertThat(probe.get("scheme")).as("%s serves TLS only", name).isEqualTo("HTTPS");
                assertThat(d.get("kind"))
                        .as("%s: a stable DNS name per pod, the name its TLS certificate holds", name)
                        .isEqualTo("StatefulSet");
                assertThat(c.get("env").toString()).contains("ADVERTISE_HOST");
                assertThat(pod.get("volumes").toString())
                        .as("%s TLS files", name)
                        .contains("mooncakej-tls");
                Map<String, Object> live =
                        (Map<String, Object>) ((Map<String, Object>) c.get("livenessProbe")).get("httpGet");
                assertThat(live.get("path"))
                        .as("%s liveness: a standby conductor is alive, not restarted", name)
                        .isEqualTo("/actuator/health/liveness");
                Map<String, Object> sc = (Map<String, Object>) c.get("securityContext");
                assertThat(sc)
                        .as("%s securityContext", name)
                        .containsEntry("allowPrivilegeEscalation", false)
                        .containsEntry("readOnlyRootFilesystem", true);
                assertThat(sc.get("capabilities").toString()).contains("ALL");
                assertThat(((Map<String, Object>) c.get("resources")).get("limits"))
                        .as("%s limits", name)
                        .isNotNull();
                if (!name.equals("conductor")) {
                    assertThat(pod.get("volumes").toString())
                            .as("%s /dev/shm", name)
                            .contains("medium=Memory");
                    // the grace period covers the preStop hook, the drain's budget and the exit after it
                    Map<String, Object> config =
                            new Yaml().load(Files.readString(root().resolve("config/kubernetes.yaml")));
                    Map<String, Object> keys = (Map<String, Object>)
                            ((Map<String, Object>) config.get("mooncakej")).get(name.replace("-worker", ""));
                    int budget = (Integer) keys.get("drain-budget-seconds");
                    List<String> preStop = (List<String>) ((Map<String, Object>)
                                    ((Map<String, Object>) ((Map<String, Object>) c.get("lifecycle")).get("preStop"))
                                            .get("exec"))
                            .get("command");
                    assertThat(preStop).as("%s preStop", name).containsExactly("sleep", "3");
                    assertThat((Integer) pod.get("terminationGracePeriodSeconds"))
                            .as("%s: grace period >= preStop 3 s + drain budget %d s + 10 s to exit", name, budget)
                            .isGreaterThanOrEqualTo(3 + budget + 10);
                }
            }
        }
        assertThat(deployments).containsExactlyInAnyOrder("etcd", "conductor", "prefill-worker", "decode-worker");
        assertThat(docs)
                .as("a NetworkPolicy for the workers")
                .anySatisfy(d -> assertThat(d.get("kind")).isEqualTo("NetworkPolicy"));
        assertThat(docs)
                .as("no Secret ships with a value")
                .noneSatisfy(d -> assertThat(d.get("kind")).isEqualTo("Secret"));
    }

    @Test
    void theDashboardIsJson() throws Exception {
        var dash = JsonMapper.builder()
                .build()
                .readTree(Files.readString(root().resolve("docker/grafana/dashboards/mooncakej.json")));
        assertThat(dash.path("panels").size()).isGreaterThanOrEqualTo(9);
        assertThat(dash.path("uid").asString()).isEqualTo("mooncakej");
    }
}
