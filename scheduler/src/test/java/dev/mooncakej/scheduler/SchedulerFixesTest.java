package dev.mooncakej.scheduler;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.offset;

import dev.mooncakej.kvcache.cost.CostProfile;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * Issue 24's scheduler bugs and defects, each shown on the core both the simulator and the live
 * conductor run: the queue correction, decode KV reserved by requests still in prefill, blocks an
 * instance will hold against blocks it holds, the decode load of a reservation that landed on a
 * fallback, the correction after a failed prefill, and per-path fetch prices.
 */
class SchedulerFixesTest {
    private static final int BT = 4;
    /** 1 s per prefill of any length (c0 only), so queue arithmetic is exact. */
    private static final CostProfile FLAT = new CostProfile("flat", 1.0, 0, 0, 0.01, 0, 0, 1000);

    private static SchedulerConfig cfg(PrefillPolicy p, long decodeKv) {
        return new SchedulerConfig(p, AdmissionMode.NONE, 1000, 10, 1.5, BT, FLAT, 1e9, decodeKv, 10, 1);
    }

    @Test
    void aLatePrefillDelaysTheRequestsBehindItOnceNotOncePerRequest() {
        ClusterScheduler s = new ClusterScheduler(cfg(PrefillPolicy.LEAST_LOADED, 1_000_000), 1, 1, 0);
        Decision[] d = new Decision[3];
        for (int i = 0; i < 3; i++) {
            d[i] = s.decide(new long[0], 10, 0);
            s.onScheduled(d[i], new long[0], 10, 0);
        }
        assertThat(s.prefill(0).queueSeconds(0)).isCloseTo(3, offset(1e-9)); // three 1-s prefills queued
        // the first ends 2 s late (at 3 instead of 1): the two behind it start at 3 and take 1 s each
        s.onPrefillDone(d[0], new long[0], 3, true);
        s.correctQueue(d[0], 3);
        assertThat(s.prefill(0).busyUntil()).isCloseTo(5, offset(1e-9));
        // the second ends on time relative to its real start (at 4): one request left, ending at 5.
        // (Adding each request's own lateness against its decision-time prediction, 4 - 2 = 2 s, counted
        // the first one's lateness again and said 7.)
        s.onPrefillDone(d[1], new long[0], 1, true);
        s.correctQueue(d[1], 4);
        assertThat(s.prefill(0).busyUntil()).isCloseTo(5, offset(1e-9));
        s.onPrefillDone(d[2], new long[0], 1, true);
        s.correctQueue(d[2], 5);
        assertThat(s.prefill(0).queueSeconds(5)).isZero();
    }

    @Test
    void decodeSelectionCountsTheKvReservedByRequestsStillInPrefill() {
        // two decode instances of 1,000 tokens; each request reserves 600: the second must not follow the first
        ClusterScheduler s = new ClusterScheduler(cfg(PrefillPolicy.LEAST_LOADED, 1000), 2, 2, 0);
        Decision a = s.decide(new long[0], 100, 600, 0);
        s.onScheduled(a, new long[0], 100, 600, 0);
        Decision b = s.decide(new long[0], 100, 600, 0);
        assertThat(b.decode())
                .as("the first is still in prefill, its 600 tokens reserved")
                .isNotEqualTo(a.decode());
        assertThat(s.decode(a.decode()).incomingKvTokens()).isEqualTo(600);
    }

    @Test
    void blocksAnInstanceWillHoldAreCountedOnThereButNotFetchedFromThere() {
        ClusterScheduler s = new ClusterScheduler(cfg(PrefillPolicy.KVCACHE_CENTRIC, 1_000_000), 2, 1, 0);
        long[] prompt = {1, 2, 3, 4, 5};
        int n = 5 * BT + 1;
        Decision first = s.decide(prompt, n, 0);
        s.onScheduled(first, prompt, n, 0);
        int p = first.prefill();
        assertThat(s.prefill(p).pendingBlocks()).isEqualTo(5);
        assertThat(s.prefill(p).cachedBlocks()).as("not held before it ran").isZero();
        int[] held = new int[2];
        s.index().prefixLengths(prompt, 2, held);
        assertThat(held[p])
                .as("no other instance may fetch what is not there yet")
                .isZero();
        // a second request sharing the prefix, sent to the same instance, counts on the blocks in production
        Decision second = s.decide(prompt, n, 0);
        if (second.prefill() == p) assertThat(second.prefixBlocks()).isEqualTo(5);
        else assertThat(second.fetchBlocks()).as("nothing to fetch yet").isZero();
        s.onPrefillDone(first, prompt, 1, true);
        assertThat(s.prefill(p).pendingBlocks()).isZero();
        assertThat(s.prefill(p).cachedBlocks()).isEqualTo(5);
        // a failed prefill's blocks were never made
        Decision third = s.decide(new long[] {9, 10}, 3 * BT, 0);
        s.onScheduled(third, new long[] {9, 10}, 3 * BT, 0);
        s.onPrefillDone(third, new long[] {9, 10}, 1, false);
        assertThat(s.prefill(third.prefill()).pendingBlocks()).isZero();
        s.index().prefixLengths(new long[] {9, 10}, 2, held);
        assertThat(held[third.prefill()]).isZero();
    }

    @Test
    void eachFetchPathHasItsOwnPrice() {
        ClusterScheduler s = new ClusterScheduler(cfg(PrefillPolicy.KVCACHE_CENTRIC, 1_000_000), 3, 1, 0);
        double cluster = s.transferSeconds(10);
        assertThat(s.transferSeconds(10, 0, 1)).isEqualTo(cluster);
        s.setPathBandwidth(0, 1, s.bandwidthBytesPerSecond() / 4);
        assertThat(s.transferSeconds(10, 0, 1)).isCloseTo(4 * cluster, offset(1e-12));
        assertThat(s.transferSeconds(10, 0, 2))
                .as("other paths keep the cluster's price")
                .isEqualTo(cluster);
    }

    private final AtomicReference<Double> now = new AtomicReference<>(0.0);

    private LiveScheduler live(long decodeKv) {
        return new LiveScheduler(new ClusterScheduler(cfg(PrefillPolicy.LEAST_LOADED, decodeKv), 0, 0, 0), now::get);
    }

    @Test
    void aReservationOnAFallbackDecodeWorkerChargesThatWorker() {
        LiveScheduler s = live(1000);
        WorkerEndpoint p = new WorkerEndpoint("p"), d1 = new WorkerEndpoint("d1"), d2 = new WorkerEndpoint("d2");
        s.setWorkers(List.of(p), List.of(d1, d2));
        LiveScheduler.Choice c = s.choose(new long[0], 100, 600);
        WorkerEndpoint other = c.decodeCandidates().get(1);
        LiveScheduler.Choice moved = s.reservedOn(c, other);
        assertThat(moved.decodeInstance().incomingKvTokens()).isEqualTo(600);
        assertThat(c.decodeInstance().incomingKvTokens())
                .as("the decided one was refused")
                .isZero();
        double start = s.prefillEnded(moved, 100, 0, 1, true);
        assertThat(moved.decodeInstance().kvTokens()).isEqualTo(600);
        assertThat(c.decodeInstance().kvTokens()).isZero();
        s.decodeEnded(moved, 110, start);
        assertThat(moved.decodeInstance().kvTokens()).isZero();
    }

    @Test
    void aFailedPrefillStillCorrectsTheQueueBehindIt() {
        LiveScheduler s = live(1_000_000);
        s.setWorkers(List.of(new WorkerEndpoint("p")), List.of(new WorkerEndpoint("d")));
        LiveScheduler.Choice a = s.choose(new long[0], 10, 20), b = s.choose(new long[0], 10, 20);
        assertThat(a.prefillInstance().busyUntil()).isCloseTo(2, offset(1e-9));
        now.set(0.2); // the first fails early: the second starts now, not at 1
        s.prefillEnded(a, 10, 0, 0, false);
        assertThat(b.prefillInstance().busyUntil()).isCloseTo(1.2, offset(1e-9));
    }
}
