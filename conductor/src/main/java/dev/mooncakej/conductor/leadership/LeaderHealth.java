package dev.mooncakej.conductor.leadership;

import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.HealthIndicator;
import org.springframework.stereotype.Component;

/**
 * "leader" in the health groups: UP on the leader (or in single-host mode), OUT_OF_SERVICE on a
 * standby, so a Kubernetes readiness probe on /actuator/health/readiness sends traffic to the leader.
 */
@Component("leader")
public class LeaderHealth implements HealthIndicator {
    private final Leadership leadership;

    public LeaderHealth(Leadership leadership) {
        this.leadership = leadership;
    }

    @Override
    public Health health() {
        return leadership.leader()
                ? Health.up().build()
                : Health.outOfService().withDetail("role", "standby conductor").build();
    }
}
