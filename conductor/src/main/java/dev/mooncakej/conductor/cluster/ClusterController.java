package dev.mooncakej.conductor.cluster;

import dev.mooncakej.conductor.api.CompletionService;
import dev.mooncakej.kvcache.wire.WorkerMessages.KvEvents;
import java.util.LinkedHashMap;
import java.util.Map;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RestController;

/** Internal cluster endpoints: prefill workers push prefix-cache changes here; who leads. */
@RestController
public class ClusterController {
    private final CompletionService service;
    private final ConductorCluster cluster;

    public ClusterController(CompletionService service, ConductorCluster cluster) {
        this.service = service;
        this.cluster = cluster;
    }

    /** Applied only by the leader; a standby answers 409 so the worker looks the leader up again. */
    @PostMapping("/internal/kv-events")
    public ResponseEntity<Void> kvEvents(@RequestBody KvEvents events) {
        if (events == null || events.worker() == null) return ResponseEntity.badRequest().build();
        if (!service.leader()) return ResponseEntity.status(409).build();
        service.applyKvEvents(events.worker(), events.stored(), events.evicted());
        return ResponseEntity.noContent().build();
    }

    /** A decode worker's load report (pushed every second in a cluster); 409 on a standby. */
    @PostMapping("/internal/load")
    public ResponseEntity<Void> load(@RequestBody LoadReport report) {
        if (report == null || report.worker() == null) return ResponseEntity.badRequest().build();
        if (!service.leader()) return ResponseEntity.status(409).build();
        service.applyDecodeLoad(report.worker(), report.running(), report.kvTokens());
        return ResponseEntity.noContent().build();
    }

    /** What a decode worker pushes: requests running and KV tokens held. */
    public record LoadReport(String worker, int running, long kvTokens) {}

    @GetMapping("/internal/leader")
    public Map<String, Object> leader() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("leader", service.leader());
        m.put("leaderUrl", cluster.leaderUrl());
        m.put("mode", cluster.settings().enabled() ? "etcd" : "embedded");
        m.put("prefill", service.workerUrls(true));
        m.put("decode", service.workerUrls(false));
        return m;
    }
}
