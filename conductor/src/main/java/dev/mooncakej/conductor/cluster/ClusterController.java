package dev.mooncakej.conductor.cluster;

import dev.mooncakej.conductor.leadership.Leadership;
import dev.mooncakej.conductor.membership.WorkerMembership;
import dev.mooncakej.kvcache.wire.InternalJson;
import dev.mooncakej.kvcache.wire.WorkerMessages;
import dev.mooncakej.kvcache.wire.WorkerMessages.KvEvents;
import dev.mooncakej.kvcache.wire.WorkerMessages.LoadReport;
import dev.mooncakej.scheduler.LiveScheduler;
import java.util.LinkedHashMap;
import java.util.Map;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RestController;

/** Internal cluster endpoints: prefill workers push prefix-cache changes here; who leads. */
@RestController
public class ClusterController {
    private final LiveScheduler scheduler;
    private final WorkerMembership membership;
    private final Leadership leadership;
    private final ConductorCluster cluster;

    public ClusterController(
            LiveScheduler scheduler, WorkerMembership membership, Leadership leadership, ConductorCluster cluster) {
        this.scheduler = scheduler;
        this.membership = membership;
        this.leadership = leadership;
        this.cluster = cluster;
    }

    /** Applied only by the leader; a standby answers 409 so the worker looks the leader up again. */
    @PostMapping("/internal/kv-events")
    public ResponseEntity<Void> kvEvents(@RequestBody(required = false) String body) {
        KvEvents events = InternalJson.decode(body, KvEvents.class);
        if (events.worker() == null) throw new IllegalArgumentException("KvEvents without its worker");
        if (!leadership.leader()) return ResponseEntity.status(409).build();
        scheduler.applyKvEvents(
                events.worker(),
                events.stored() == null ? new long[0] : events.stored(),
                events.evicted() == null ? new long[0] : events.evicted());
        return ResponseEntity.noContent().build();
    }

    /** A decode worker's load report (pushed every second in a cluster); 409 on a standby. */
    @PostMapping("/internal/load")
    public ResponseEntity<Void> load(@RequestBody(required = false) String body) {
        LoadReport report = InternalJson.decode(body, LoadReport.class);
        var steps = report.steps();
        if (report.worker() == null
                || report.running() < 0
                || report.kvTokens() < 0
                || report.capacityTokens() < 0
                || steps != null
                        && (steps.count() < 0
                                || !(steps.seconds() >= 0)
                                || Double.isInfinite(steps.seconds())
                                || steps.batchSum() < 0
                                || steps.contextSum() < 0)) {
            throw new IllegalArgumentException("LoadReport " + body + ": expected a worker URL, non-negative"
                    + " running, kvTokens and capacityTokens, and steps with non-negative finite values");
        }
        if (!leadership.leader()) return ResponseEntity.status(409).build();
        scheduler.applyDecodeLoad(report.worker(), report.running(), report.kvTokens(), report.capacityTokens());
        if (steps != null) scheduler.decodeSteps(steps.count(), steps.seconds(), steps.batchSum(), steps.contextSum());
        return ResponseEntity.noContent().build();
    }

    @ExceptionHandler(IllegalArgumentException.class)
    public ResponseEntity<String> badRequest(IllegalArgumentException e) {
        return ResponseEntity.badRequest()
                .contentType(MediaType.APPLICATION_JSON)
                .body(InternalJson.encode(new WorkerMessages.WorkerError("bad_request", e.getMessage())));
    }

    @GetMapping("/internal/leader")
    public Map<String, Object> leader() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("leader", leadership.leader());
        m.put("leaderUrl", cluster.leaderUrl());
        m.put("mode", cluster.settings().enabled() ? "etcd" : "embedded");
        m.put("prefill", membership.workerUrls(true));
        m.put("decode", membership.workerUrls(false));
        return m;
    }
}
