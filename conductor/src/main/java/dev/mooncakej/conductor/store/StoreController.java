package dev.mooncakej.conductor.store;

import dev.mooncakej.conductor.leadership.Leadership;
import dev.mooncakej.kvcache.wire.InternalJson;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreGet;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreHeld;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreMount;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreReplica;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreReplicas;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerError;
import dev.mooncakej.kvstore.Replica;
import dev.mooncakej.kvstore.StoreMaster;
import dev.mooncakej.kvstore.Tier;
import dev.mooncakej.scheduler.LiveScheduler;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RestController;

/**
 * The store master's internal API (leader only; a standby answers 409): workers mount their segments,
 * report the blocks their own memory holds (each report is also their heartbeat, and feeds the
 * scheduler's prefix index, so the conductor learns of evictions on one host as in a cluster), and
 * ask for the replicas of a prefix under a read lease.
 */
@RestController
public class StoreController {
    private final StoreMaster master;
    private final StoreHost host;
    private final LiveScheduler scheduler;
    private final Leadership leadership;

    public StoreController(StoreHost host, LiveScheduler scheduler, Leadership leadership) {
        this.master = host.master();
        this.host = host;
        this.scheduler = scheduler;
        this.leadership = leadership;
    }

    @PostMapping("/internal/store/mount")
    public ResponseEntity<Void> mount(@RequestBody(required = false) String body) {
        StoreMount m = InternalJson.decode(body, StoreMount.class);
        if (!leadership.leader()) return ResponseEntity.status(409).build();
        Tier tier = tier(m.tier());
        if (m.heldOnly()) master.mountHeldSegment(m.client(), m.segment(), tier, m.base(), m.capacity());
        else master.mountSegment(m.client(), m.segment(), tier, m.base(), m.capacity());
        return ResponseEntity.noContent().build();
    }

    @PostMapping("/internal/store/held")
    public ResponseEntity<Void> held(@RequestBody(required = false) String body) {
        StoreHeld h = InternalJson.decode(body, StoreHeld.class);
        long[] stored = h.storedKeys() == null ? new long[0] : h.storedKeys();
        long[] offsets = h.storedOffsets() == null ? new long[0] : h.storedOffsets();
        long[] released = h.released() == null ? new long[0] : h.released();
        if (stored.length != offsets.length) {
            throw new IllegalArgumentException(
                    "StoreHeld has " + stored.length + " keys and " + offsets.length + " offsets: expected as many");
        }
        if (!leadership.leader()) return ResponseEntity.status(409).build();
        master.heartbeat(h.client());
        host.heard(h.client());
        for (int i = 0; i < stored.length; i++)
            master.held(h.client(), h.segment(), stored[i], offsets[i], h.blockBytes(), Tier.DRAM);
        for (long k : released) master.released(h.segment(), k);
        scheduler.applyKvEvents(h.client(), stored, released);
        return ResponseEntity.noContent().build();
    }

    @PostMapping(value = "/internal/store/get", produces = MediaType.APPLICATION_JSON_VALUE)
    public ResponseEntity<String> get(@RequestBody(required = false) String body) {
        StoreGet g = InternalJson.decode(body, StoreGet.class);
        if (g.keys() == null || g.keys().length > 65536)
            throw new IllegalArgumentException(
                    "StoreGet of " + (g.keys() == null ? "no" : g.keys().length) + " keys: expected 1..65536");
        if (!leadership.leader()) return ResponseEntity.status(409).build();
        List<List<StoreReplica>> out = new ArrayList<>(g.keys().length);
        long lease = 0;
        for (var got : master.get(g.keys())) {
            if (got == null) {
                out.add(List.of());
                continue;
            }
            lease = Math.max(lease, got.leaseUntilMillis());
            List<StoreReplica> rs = new ArrayList<>(got.replicas().size());
            for (Replica r : got.replicas())
                rs.add(new StoreReplica(
                        r.segment(), r.offset(), r.length(), r.tier().name().toLowerCase(Locale.ROOT)));
            out.add(rs);
        }
        return ResponseEntity.ok(InternalJson.encode(new StoreReplicas(out, lease)));
    }

    private static Tier tier(String t) {
        if ("dram".equals(t)) return Tier.DRAM;
        if ("ssd".equals(t)) return Tier.SSD;
        throw new IllegalArgumentException("tier '" + t + "': expected dram or ssd");
    }

    @ExceptionHandler(IllegalArgumentException.class)
    public ResponseEntity<String> badRequest(IllegalArgumentException e) {
        return ResponseEntity.badRequest()
                .contentType(MediaType.APPLICATION_JSON)
                .body(InternalJson.encode(new WorkerError("bad_request", e.getMessage())));
    }
}
