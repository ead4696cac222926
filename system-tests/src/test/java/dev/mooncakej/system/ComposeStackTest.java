package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.File;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Base64;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ConditionEvaluationResult;
import org.junit.jupiter.api.extension.ExecutionCondition;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.containers.ComposeContainer;
import org.testcontainers.containers.wait.strategy.Wait;
import org.testcontainers.junit.jupiter.Container;
import org.testcontainers.junit.jupiter.Testcontainers;

/**
 * docker/compose.yaml brought up for real (images built from the Dockerfiles): the conductor answers
 * /v1/models once the workers registered, and Grafana serves the provisioned dashboard. Needs a Docker
 * engine, so it is disabled where there is none (this development machine: the compose file is
 * validated with docker-compose config by DeploymentFilesTest instead).
 */
@ExtendWith(ComposeStackTest.SkipNotice.class)
@Testcontainers(disabledWithoutDocker = true)
class ComposeStackTest {
    /**
     * Says why the class is skipped where there is no Docker engine (evaluated before Testcontainers' own condition).
     */
    static final class SkipNotice implements ExecutionCondition {
        @Override
        public ConditionEvaluationResult evaluateExecutionCondition(ExtensionContext c) {
            if (c.getTestMethod().isEmpty() && !DockerClientFactory.instance().isDockerAvailable()) {
                System.out.println(
                        "[skip] ComposeStackTest: no Docker engine on this machine; docker/compose.yaml is validated "
                                + "by DeploymentFilesTest (docker-compose config)");
            }
            return ConditionEvaluationResult.enabled("notice only");
        }
    }

    @Container
    static final ComposeContainer STACK = new ComposeContainer(
                    new File(LocalCluster.projectRoot().toFile(), "docker/compose.yaml"))
            .withEnv("MOONCAKEJ_KV_SECRET", "compose-test-" + Long.toHexString(System.nanoTime())) // no default ships
            .withEnv("GRAFANA_ADMIN_PASSWORD", "compose-test-grafana")
            .withExposedService(
                    "conductor",
                    8000,
                    Wait.forHttp("/actuator/health").forStatusCode(200).withStartupTimeout(Duration.ofMinutes(10)))
            .withExposedService("grafana", 3000, Wait.forHttp("/api/health").forStatusCode(200));

    @Test
    void theStackServesAndTheDashboardIsProvisioned() throws Exception {
        HttpClient http = LeakCheckingClient.create();
        String conductor =
                "http://" + STACK.getServiceHost("conductor", 8000) + ":" + STACK.getServicePort("conductor", 8000);
        HttpResponse<String> models = http.send(
                HttpRequest.newBuilder(URI.create(conductor + "/v1/models")).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(models.statusCode()).isEqualTo(200);
        String grafana =
                "http://" + STACK.getServiceHost("grafana", 3000) + ":" + STACK.getServicePort("grafana", 3000);
        HttpResponse<String> dash = http.send(
                HttpRequest.newBuilder(URI.create(grafana + "/api/dashboards/uid/mooncakej"))
                        .header(
                                "Authorization",
                                "Basic "
                                        + Base64.getEncoder()
                                                .encodeToString(
                                                        "admin:compose-test-grafana".getBytes(StandardCharsets.UTF_8)))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(dash.body()).contains("Mooncake-J");
    }
}
