package dev.mooncakej.conductor.store;

import dev.mooncakej.conductor.leadership.Leadership;
import dev.mooncakej.kvcache.wire.InternalJson;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreAnswers;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreGet;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreHeld;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreKeys;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreMount;
import dev.mooncakej.kvcache.wire.WorkerMessages.StorePut;
import dev.mooncakej.kvcache.wire.WorkerMessages.StorePutStarted;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreReplica;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreReplicas;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerError;
import dev.mooncakej.kvstore.Replica;
import dev.mooncakej.kvstore.ReplicateConfig;
import dev.mooncakej.kvstore.StoreMaster;
import dev.mooncakej.kvstore.Tier;
import dev.mooncakej.scheduler.LiveScheduler;
import java.util.ArrayList;
import java.util.Arrays;
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
        segmentName(m.segment());
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
        Tier tier = h.segment() != null && h.segment().endsWith(":ssd") ? Tier.SSD : Tier.DRAM;
        for (int i = 0; i < stored.length; i++)
            master.held(h.client(), h.segment(), stored[i], offsets[i], h.blockBytes(), tier);
        for (long k : released) master.released(h.segment(), k);
        // the scheduler counts a block as the worker's while any of its tiers holds it
        long[] gone = Arrays.stream(released)
                .filter(k -> !master.heldBy(h.client(), k))
                .toArray();
        scheduler.applyKvEvents(h.client(), stored, gone);
        return ResponseEntity.noContent().build();
    }

    @PostMapping(value = "/internal/store/get", produces = MediaType.APPLICATION_JSON_VALUE)
    public ResponseEntity<String> get(@RequestBody(required = false) String body) {
        StoreGet g = InternalJson.decode(body, StoreGet.class);
        checkKeys(g.keys(), "StoreGet");
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
            for (Replica r : got.replicas()) rs.add(wire(r));
            out.add(rs);
        }
        return ResponseEntity.ok(InternalJson.encode(new StoreReplicas(out, lease)));
    }

    /**
     * Two-phase put, phase one: one replica per key in a pool segment (the writer's own first when it
     * names one, or anywhere but there with {@code elsewhere}), PROCESSING until {@code put-end}; the
     * writer moves the bytes through its transfer engine.
     */
    @PostMapping(value = "/internal/store/put-start", produces = MediaType.APPLICATION_JSON_VALUE)
    public ResponseEntity<String> putStart(@RequestBody(required = false) String body) {
        StorePut p = InternalJson.decode(body, StorePut.class);
        checkKeys(p.keys(), "StorePut");
        if (p.blockBytes() <= 0 || p.blockBytes() > (1L << 30))
            throw new IllegalArgumentException("StorePut blockBytes " + p.blockBytes() + ": expected 1..1073741824");
        List<String> preferred = p.preferredSegment() == null ? List.of() : List.of(segmentName(p.preferredSegment()));
        if (!leadership.leader()) return ResponseEntity.status(409).build();
        ReplicateConfig cfg = p.elsewhere()
                ? new ReplicateConfig(1, Tier.DRAM, false, false, List.of(), preferred)
                : new ReplicateConfig(1, Tier.DRAM, false, false, preferred);
        List<String> status = new ArrayList<>(p.keys().length);
        List<StoreReplica> where = new ArrayList<>(p.keys().length);
        for (var started : master.putStart(p.keys(), p.blockBytes(), cfg)) {
            status.add(started.status().name().toLowerCase(Locale.ROOT));
            where.add(
                    started.replicas().isEmpty()
                            ? null
                            : wire(started.replicas().getFirst()));
        }
        return ResponseEntity.ok(InternalJson.encode(new StorePutStarted(status, where)));
    }

    @PostMapping(value = "/internal/store/put-end", produces = MediaType.APPLICATION_JSON_VALUE)
    public ResponseEntity<String> putEnd(@RequestBody(required = false) String body) {
        StoreKeys k = keys(body);
        if (!leadership.leader()) return ResponseEntity.status(409).build();
        ResponseEntity<String> out = flags(master.putEnd(k.keys()));
        host.syncPool(); // the next request may use them
        return out;
    }

    @PostMapping(value = "/internal/store/put-revoke", produces = MediaType.APPLICATION_JSON_VALUE)
    public ResponseEntity<String> putRevoke(@RequestBody(required = false) String body) {
        StoreKeys k = keys(body);
        if (!leadership.leader()) return ResponseEntity.status(409).build();
        return flags(master.putRevoke(k.keys()));
    }

    @PostMapping(value = "/internal/store/exists", produces = MediaType.APPLICATION_JSON_VALUE)
    public ResponseEntity<String> exists(@RequestBody(required = false) String body) {
        StoreKeys k = keys(body);
        if (!leadership.leader()) return ResponseEntity.status(409).build();
        return flags(master.exists(k.keys()));
    }

    @PostMapping(value = "/internal/store/remove", produces = MediaType.APPLICATION_JSON_VALUE)
    public ResponseEntity<String> remove(@RequestBody(required = false) String body) {
        StoreKeys k = keys(body);
        if (!leadership.leader()) return ResponseEntity.status(409).build();
        List<String> out = master.remove(k.keys(), k.force()).stream()
                .map(r -> r.name().toLowerCase(Locale.ROOT))
                .toList();
        host.syncPool();
        return ResponseEntity.ok(InternalJson.encode(new StoreAnswers(out)));
    }

    private static StoreKeys keys(String body) {
        StoreKeys k = InternalJson.decode(body, StoreKeys.class);
        checkKeys(k.keys(), "StoreKeys");
        return k;
    }

    private static ResponseEntity<String> flags(boolean[] b) {
        List<String> out = new ArrayList<>(b.length);
        for (boolean x : b) out.add(String.valueOf(x));
        return ResponseEntity.ok(InternalJson.encode(new StoreAnswers(out)));
    }

    static final int MAX_KEYS = 65536;

    private static void checkKeys(long[] keys, String what) {
        if (keys == null || keys.length == 0 || keys.length > MAX_KEYS)
            throw new IllegalArgumentException(
                    what + " of " + (keys == null ? "no" : keys.length) + " keys: expected 1.." + MAX_KEYS);
    }

    /** A segment as the master names it: a transfer segment's name, {@code :pool} or {@code :ssd} for its tiers. */
    static String segmentName(String s) {
        if (s == null || !s.matches("[A-Za-z0-9._-]{1,64}(:pool|:ssd)?"))
            throw new IllegalArgumentException("segment '" + s
                    + "': expected a segment name of 1-64 [A-Za-z0-9._-], optionally with :pool or :ssd");
        return s;
    }

    private static StoreReplica wire(Replica r) {
        return new StoreReplica(
                r.segment(), r.offset(), r.length(), r.tier().name().toLowerCase(Locale.ROOT));
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
