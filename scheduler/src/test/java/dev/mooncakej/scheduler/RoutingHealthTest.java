package dev.mooncakej.scheduler;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** Routing health: predicted prefix hits that the worker stops reporting turn it degraded within the window. */
class RoutingHealthTest {
    @Test
    void hitsThatStopWhilePredictedOnesContinueTurnRoutingDegradedWithinTheWindow() {
        RoutingHealth h = new RoutingHealth(30);
        double t = 0;
        for (int i = 0; i < 20; i++, t += 1) h.observe("p0", 1000, 1000, t); // hits as predicted
        assertThat(h.degraded(t)).isEmpty();
        // the worker wiped its cache: every later request is predicted to hit and reports 0
        double wiped = t;
        while (h.degraded(t).isEmpty()) {
            h.observe("p0", 1000, 0, t);
            t += 1;
            assertThat(t - wiped)
                    .as("degraded within 30 s of the hits stopping")
                    .isLessThanOrEqualTo(30);
        }
        assertThat(h.degraded(t)).containsKey("p0");
        assertThat(h.windows(t).get("p0").gap()).isGreaterThan(0.9);
        // a worker without predicted hits is never degraded; hits coming back clear it
        h.observe("p1", 0, 0, t);
        assertThat(h.degraded(t)).doesNotContainKey("p1");
        for (int i = 0; i < 40; i++, t += 1) h.observe("p0", 1000, 1000, t);
        assertThat(h.degraded(t)).isEmpty();
    }

    @Test
    void fewerThanThreePredictedHitsDoNotDecide() {
        RoutingHealth h = new RoutingHealth(30);
        h.observe("p0", 1000, 0, 0);
        h.observe("p0", 1000, 0, 1);
        assertThat(h.degraded(1)).isEmpty();
        h.observe("p0", 1000, 0, 2);
        assertThat(h.degraded(2)).containsKey("p0");
        assertThat(h.degraded(40)).as("the window moved on").isEmpty();
    }
}
