package dev.mooncakej.conductor.cluster;

import dev.mooncakej.conductor.api.CompletionService;
import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.HealthIndicator;
import org.springframework.stereotype.Component;

/**
 * "leader" in the health groups: UP on the leader (or in single-host mode), OUT_OF_SERVICE on a
 * standby, so a Kubernetes readiness probe on /actuator/health/readiness sends traffic to the leader.
 */
@Component("leader")
public class LeaderHealth implements HealthIndicator {
    private final CompletionService service;

    public LeaderHealth(CompletionService service) {
        this.service = service;
    }

    @Override
    public Health health() {
        return service.leader() ? Health.up().build() : Health.outOfService().withDetail("role", "standby conductor").build();
    }
}
