package dev.mooncakej.conductor.membership;

import java.util.LinkedHashMap;
import java.util.Map;
import org.springframework.http.MediaType;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.RestController;

/**
 * {@code GET /internal/routing} (cluster credential): the routing health with what the public
 * {@code /actuator/health/routing} leaves out, the workers by address: those still being admitted,
 * and those refused or losing their cache hits, with why.
 */
@RestController
public class RoutingController {
    private final RoutingHealthIndicator routing;
    private final WorkerMembership membership;

    public RoutingController(RoutingHealthIndicator routing, WorkerMembership membership) {
        this.routing = routing;
        this.membership = membership;
    }

    @GetMapping(value = "/internal/routing", produces = MediaType.APPLICATION_JSON_VALUE)
    public Map<String, Object> routing() {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("status", routing.health().getStatus().getCode());
        out.put("pending", membership.pendingWorkers());
        out.put("degraded", routing.degradedWorkers());
        return out;
    }
}
