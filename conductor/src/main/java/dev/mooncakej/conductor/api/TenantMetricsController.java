package dev.mooncakej.conductor.api;

import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.RestController;

/**
 * {@code GET /internal/api-keys/metrics}: the per-key meters (requests by outcome, tokens, requests
 * in flight) in Prometheus' text format, on the internal plane only (the cluster credential), so that
 * no caller of the public {@code /actuator/prometheus} learns which tenants exist or how much they
 * send. Scrape it with the credential header, or set {@code mooncakej.conductor.api-key-public-metrics}.
 */
@RestController
public class TenantMetricsController {
    private final ApiKeys keys;

    public TenantMetricsController(ApiKeys keys) {
        this.keys = keys;
    }

    @GetMapping(value = "/internal/api-keys/metrics", produces = MediaType.TEXT_PLAIN_VALUE)
    public ResponseEntity<String> metrics() {
        return ResponseEntity.ok(keys.tenantMetrics());
    }
}
