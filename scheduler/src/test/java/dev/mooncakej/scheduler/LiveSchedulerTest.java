package dev.mooncakej.scheduler;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mooncakej.kvcache.cost.CostProfile;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;

/** Membership applied to the running scheduler: workers join and leave; what it learnt stays. */
class LiveSchedulerTest {
    private static final CostProfile GUESS = new CostProfile("guess", 0.01, 1e-4, 0, 0.005, 0.001, 1e-7, 1);
    private final AtomicReference<Double> now = new AtomicReference<>(0.0);

    private LiveScheduler scheduler() {
        SchedulerConfig cfg = new SchedulerConfig(
                PrefillPolicy.CACHE_AWARE, AdmissionMode.NONE, 30, 0.1, 1.5, 4, GUESS, 1e12, 1_000_000, 10, 1);
        return new LiveScheduler(new ClusterScheduler(cfg, 0, 0, 0), now::get);
    }

    private static WorkerEndpoint w(String url) {
        return new WorkerEndpoint(url);
    }

    @Test
    void membershipChangesKeepTheFittedModelTheLearntDecodeTimeAndTheOtherWorkersState() {
        LiveScheduler s = scheduler();
        WorkerEndpoint p1 = w("p1"), p2 = w("p2"), d1 = w("d1");
        assertThat(s.ready()).isFalse();
        assertThatThrownBy(() -> s.choose(new long[0], 10, 20)).isInstanceOf(IllegalStateException.class);
        assertThat(s.setWorkers(List.of(p1, p2), List.of(d1))).containsExactly(p1, p2);
        // 32 prefills of varied length teach it a model; one decode teaches t_d
        for (int i = 0; i < 32; i++) {
            int n = 100 + 37 * i, cached = (i % 3) * 16;
            var c = s.choose(new long[0], n, n + 10);
            double seconds = 0.02 + 2e-4 * (n - cached) + 1e-8 * ((double) n * n - (double) cached * cached);
            double start = s.prefillEnded(c, n, cached, seconds, true);
            now.set(now.get() + 3.0);
            s.decodeEnded(c, n, start);
        }
        PrefillTimeModel fitted = s.core().prefillModel();
        assertThat(fitted.c1()).isCloseTo(2e-4, Offset.offset(1e-6));
        double tD = s.core().decodeSecondsEstimate();
        assertThat(tD).isCloseTo(3.0, Offset.offset(1e-9));
        s.applyKvEvents("p2", new long[] {7, 8}, new long[0]);

        // p1 leaves, p3 joins, a second decode worker joins
        WorkerEndpoint p3 = w("p3"), d2 = w("d2");
        assertThat(s.setWorkers(List.of(p2, p3), List.of(d1, d2))).containsExactly(p3);
        assertThat(s.core().prefillModel()).as("the fit survives the change").isSameAs(fitted);
        assertThat(s.core().decodeSecondsEstimate()).isEqualTo(tD);
        assertThat(s.prefillWorkers()).containsExactlyInAnyOrder(p2, p3);
        assertThat(s.decodeWorkers()).containsExactly(d1, d2);
        int[] lengths = new int[ClusterScheduler.MAX_PREFILL];
        s.core().index().prefixLengths(new long[] {7, 8}, ClusterScheduler.MAX_PREFILL, lengths);
        int p2slot = s.choose(new long[] {7, 8}, 9, 10).decision().prefill();
        assertThat(lengths[p2slot]).as("p2 still holds its blocks").isEqualTo(2);
        assertThat(s.seed("p3", new long[] {9})).isEqualTo(1);

        // a request placed on d1 ends after d1 left: nothing breaks, nothing counts on d2
        var onD1 = s.choose(new long[0], 50, 60);
        double start = s.prefillEnded(onD1, 50, 0, 0.01, true);
        s.setWorkers(List.of(p2, p3), List.of(d2));
        s.decodeEnded(onD1, 50, start);
        assertThat(s.core()
                        .decode(s.choose(new long[0], 5, 6).decision().decode())
                        .kvTokens())
                .isZero();
    }

    @Test
    void aRemovedPrefillWorkersBlocksLeaveTheIndexAndItsSlotIsReused() {
        LiveScheduler s = scheduler();
        s.setWorkers(List.of(w("a"), w("b")), List.of(w("d")));
        s.applyKvEvents("a", new long[] {1, 2, 3}, new long[0]);
        assertThat(s.core().index().size()).isEqualTo(3);
        s.setWorkers(List.of(w("b")), List.of(w("d")));
        assertThat(s.core().index().size()).as("a's blocks left with it").isZero();
        assertThat(s.core().prefillCount()).isEqualTo(1);
        WorkerEndpoint c = w("c");
        s.setWorkers(List.of(w("b"), c), List.of(w("d")));
        assertThat(s.core().prefill(0))
                .as("the freed slot is taken by the newcomer")
                .isNotNull();
        assertThat(s.core().prefill(0).cachedBlocks()).isZero();
    }

    @Test
    void reservationsCountPromptPlusMaxTokensInTheDecodeLoad() {
        SchedulerConfig cfg = new SchedulerConfig(
                PrefillPolicy.CACHE_AWARE, AdmissionMode.EARLY_REJECTION, 30, 10, 1.5, 4, GUESS, 1e12, 1000, 10, 1);
        LiveScheduler s = new LiveScheduler(new ClusterScheduler(cfg, 0, 0, 0), now::get);
        s.setWorkers(List.of(w("p")), List.of(w("d")));
        var first = s.choose(new long[0], 100, 600); // 100 prompt + 500 max tokens
        assertThat(first.decision().accepted()).isTrue();
        s.prefillEnded(first, 100, 0, 0.1, true);
        assertThat(s.core().decode(first.decision().decode()).kvTokens()).isEqualTo(600);
        var second = s.choose(new long[0], 100, 600);
        assertThat(second.decision().accepted())
                .as("600 + 600 tokens exceed the 1000 the decode instance holds")
                .isFalse();
        assertThat(second.decision().rejectReason()).isEqualTo(Decision.DECODE_LOAD);
    }

    @Test
    void aRequestThatNeverReachedItsPrefillWorkerLeavesThatWorkersQueueEstimate() {
        LiveScheduler s = scheduler();
        s.setWorkers(List.of(w("p")), List.of(w("d")));
        var running = s.choose(new long[0], 1000, 1100); // 0.01 + 1e-4 * 1000 = 0.11 s on the guess
        var refused = s.choose(new long[0], 2000, 2100); // queued behind it: 0.21 s
        assertThat(refused.decision().queueSeconds()).isCloseTo(0.11, Offset.offset(1e-9));
        now.set(0.05);
        s.prefillNotStarted(refused); // no decode worker could reserve its KV: 429, the prefill never ran
        var next = s.choose(new long[0], 1000, 1100);
        assertThat(next.decision().queueSeconds())
                .as("only the running request's remaining 0.06 s, not the refused one's 0.21 s as well")
                .isCloseTo(0.06, Offset.offset(1e-9));
        s.prefillEnded(running, 1000, 0, 0.11, true);
        s.prefillNotStarted(next); // its client left while reserving: the instance has nothing queued now
        assertThat(s.core().prefill(0).queued()).isZero();
        assertThat(s.core().prefill(0).queueSeconds(0.05)).isZero();
        assertThat(s.core().decode(0).incoming())
                .as("none of them is expected at the decode instance")
                .isZero();
    }
}
