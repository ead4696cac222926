package dev.mooncakej.scheduler;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.data.Offset.offset;

import dev.mooncakej.kvcache.cost.CostProfile;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Each branch of Algorithm 1, each policy and each admission mode on small hand-built clusters. */
class ClusterSchedulerTest {
    private static final int BT = 512;
    /** Round numbers: prefill = 0.1 + 1e-4 (n-p) + 1e-9 (n^2-p^2) s; step = 0.01 + 0.001 b + 1e-7 c s; 100 kB/token. */
    private static final CostProfile PROFILE = new CostProfile("test", 0.1, 1e-4, 1e-9, 0.01, 0.001, 1e-7, 100_000);

    private static final long[] PROMPT = {11, 12, 13, 14, 15, 16, 17, 18, 19, 20}; // 10 blocks
    private static final int N = 10 * BT + 100;

    private static SchedulerConfig cfg(PrefillPolicy p, AdmissionMode a) {
        return new SchedulerConfig(p, a, 30, 0.1, 2.0, BT, PROFILE, 10e9, 1_000_000, 1.0, 1);
    }

    private static double prefill(long n, long p) {
        return 0.1 + 1e-4 * (n - p) + 1e-9 * ((double) n * n - (double) p * p);
    }

    private static long[] first(int k) {
        return Arrays.copyOf(PROMPT, k);
    }

    @Test
    void kvcacheCentricFetchesTheRemotePrefixWhenItsHolderIsBusy() {
        ClusterScheduler s = new ClusterScheduler(cfg(PrefillPolicy.KVCACHE_CENTRIC, AdmissionMode.NONE), 2, 1, 0);
        s.prefill(0).cache(first(9));
        s.prefill(0).busyUntil = 100;
        Decision d = s.decide(PROMPT, N, 0);
        assertThat(d.prefill()).isEqualTo(1);
        assertThat(d.fetchFrom()).isZero();
        assertThat(d.fetchBlocks()).isEqualTo(9);
        assertThat(d.prefixBlocks()).isEqualTo(9);
        double transfer = 9.0 * BT * 100_000 / 10e9; // 0.04608 s
        assertThat(d.transferSeconds()).isCloseTo(transfer, offset(1e-12));
        assertThat(d.ttft()).isCloseTo(transfer + prefill(N, 9L * BT), offset(1e-12));
    }

    @Test
    void aPrefixThatOnlyThePoolCompletesIsFetchedFromItWhenThatIsCheaperThanComputing() {
        ClusterScheduler s = new ClusterScheduler(cfg(PrefillPolicy.KVCACHE_CENTRIC, AdmissionMode.NONE), 1, 1, 0);
        s.prefill(0).cache(first(3)); // turn 1's prompt on the prefill instance
        s.pool().cache(first(8)); // turn 1's prompt and answer, put by a decode worker
        Decision d = s.decide(PROMPT, N, 0);
        assertThat(d.fetchFrom()).isEqualTo(ClusterScheduler.POOL);
        assertThat(d.prefixBlocks()).isEqualTo(8);
        assertThat(d.fetchBlocks()).isEqualTo(5);
        // a prefix spread over holders (3 blocks on the instance, the rest in the pool) is one fetch from the pool
        ClusterScheduler two = new ClusterScheduler(cfg(PrefillPolicy.KVCACHE_CENTRIC, AdmissionMode.NONE), 2, 1, 0);
        two.prefill(0).cache(first(3));
        two.pool().cache(new long[] {PROMPT[3], PROMPT[4], PROMPT[5], PROMPT[6]});
        two.prefill(1).busyUntil = 100;
        assertThat(two.decide(PROMPT, N, 0).prefixBlocks()).isEqualTo(7); // 7 / 3 over the threshold of 2
        two.pool().uncache(new long[] {PROMPT[5], PROMPT[6]});
        assertThat(two.decide(PROMPT, N, 0).prefixBlocks())
                .as("5 / 3: within the threshold")
                .isEqualTo(3);
        s.pool().uncache(first(8));
        assertThat(s.decide(PROMPT, N, 0).fetchFrom()).as("gone from the pool").isEqualTo(-1);
    }

    @Test
    void aFetchDearerThanComputingItsBlocksIsNotTaken() {
        // 1 kB/s: moving the prefix would take far longer than computing it
        SchedulerConfig slow = new SchedulerConfig(
                PrefillPolicy.KVCACHE_CENTRIC, AdmissionMode.NONE, 30, 0.1, 1.0, BT, PROFILE, 1e3, 1_000_000, 1.0, 1);
        ClusterScheduler s = new ClusterScheduler(slow, 1, 1, 0);
        s.prefill(0).cache(first(3));
        s.pool().cache(first(8));
        Decision d = s.decide(PROMPT, N, 0);
        assertThat(d.fetchFrom()).isEqualTo(-1);
        assertThat(d.prefixBlocks()).isEqualTo(3);
    }

    @Test
    void kvcacheCentricRecomputesWhenTheLocalPrefixIsWithinTheThreshold() {
        ClusterScheduler s = new ClusterScheduler(cfg(PrefillPolicy.KVCACHE_CENTRIC, AdmissionMode.NONE), 2, 1, 0);
        s.prefill(0).cache(first(9));
        s.prefill(0).busyUntil = 100;
        s.prefill(1).cache(first(6)); // 9 / 6 = 1.5 <= threshold 2: use the local 6 blocks
        Decision d = s.decide(PROMPT, N, 0);
        assertThat(d.prefill()).isEqualTo(1);
        assertThat(d.fetchFrom()).isEqualTo(-1);
        assertThat(d.prefixBlocks()).isEqualTo(6);
        assertThat(d.ttft()).isCloseTo(prefill(N, 6L * BT), offset(1e-12));
    }

    @Test
    void kvcacheCentricStaysWithTheHolderWhenThatIsCheapest() {
        ClusterScheduler s = new ClusterScheduler(cfg(PrefillPolicy.KVCACHE_CENTRIC, AdmissionMode.NONE), 2, 1, 0);
        s.prefill(0).cache(first(9));
        s.prefill(0).busyUntil = 0.01;
        Decision d = s.decide(PROMPT, N, 0);
        assertThat(d.prefill()).isZero();
        assertThat(d.fetchFrom()).isEqualTo(-1);
        assertThat(d.ttft()).isCloseTo(0.01 + prefill(N, 9L * BT), offset(1e-12));
    }

    @Test
    void cacheAwareUsesOnlyEachInstancesOwnCache() {
        ClusterScheduler s = new ClusterScheduler(cfg(PrefillPolicy.CACHE_AWARE, AdmissionMode.NONE), 2, 1, 0);
        s.prefill(0).cache(first(9));
        s.prefill(0).busyUntil = 100;
        Decision d = s.decide(PROMPT, N, 0);
        assertThat(d.prefill()).isEqualTo(1);
        assertThat(d.fetchFrom()).isEqualTo(-1);
        assertThat(d.prefixBlocks()).isZero();
        assertThat(d.ttft()).isCloseTo(prefill(N, 0), offset(1e-12));
    }

    @Test
    void longestPrefixIgnoresLoadAndLeastLoadedIgnoresCaches() {
        ClusterScheduler lp = new ClusterScheduler(cfg(PrefillPolicy.LONGEST_PREFIX, AdmissionMode.NONE), 3, 1, 0);
        lp.prefill(2).cache(first(4));
        lp.prefill(2).busyUntil = 1000;
        assertThat(lp.decide(PROMPT, N, 0).prefill()).isEqualTo(2);
        ClusterScheduler ll = new ClusterScheduler(cfg(PrefillPolicy.LEAST_LOADED, AdmissionMode.NONE), 3, 1, 0);
        ll.prefill(0).busyUntil = 5;
        ll.prefill(1).busyUntil = 2;
        ll.prefill(2).busyUntil = 9;
        ll.prefill(2).cache(first(9));
        assertThat(ll.decide(PROMPT, N, 0).prefill()).isEqualTo(1);
    }

    @Test
    void roundRobinCyclesAndRandomIsSeeded() {
        ClusterScheduler rr = new ClusterScheduler(cfg(PrefillPolicy.ROUND_ROBIN, AdmissionMode.NONE), 3, 1, 0);
        assertThat(new int[] {
                    rr.decide(PROMPT, N, 0).prefill(),
                    rr.decide(PROMPT, N, 0).prefill(),
                    rr.decide(PROMPT, N, 0).prefill(),
                    rr.decide(PROMPT, N, 0).prefill()
                })
                .containsExactly(0, 1, 2, 0);
        ClusterScheduler r1 = new ClusterScheduler(cfg(PrefillPolicy.RANDOM, AdmissionMode.NONE), 8, 1, 0);
        ClusterScheduler r2 = new ClusterScheduler(cfg(PrefillPolicy.RANDOM, AdmissionMode.NONE), 8, 1, 0);
        for (int i = 0; i < 20; i++)
            assertThat(r1.decide(PROMPT, N, 0).prefill())
                    .isEqualTo(r2.decide(PROMPT, N, 0).prefill());
    }

    @Test
    void ttftOverItsSloIsRejectedAtArrivalInEveryMode() {
        for (AdmissionMode a : AdmissionMode.values()) {
            ClusterScheduler s = new ClusterScheduler(cfg(PrefillPolicy.LEAST_LOADED, a), 1, 1, 0);
            s.prefill(0).busyUntil = 31;
            Decision d = s.decide(PROMPT, N, 0);
            assertThat(d.accepted()).as(a.cliName()).isFalse();
            assertThat(d.rejectReason()).isEqualTo(Decision.TTFT_SLO);
        }
    }

    /** A decode instance with 100 running requests: step = 0.01 + 0.1 + 1e-7 * 1e5 = 0.12 s > SLO 0.1 s. */
    private static ClusterScheduler withBusyDecode(AdmissionMode a) {
        ClusterScheduler s = new ClusterScheduler(cfg(PrefillPolicy.LEAST_LOADED, a), 1, 1, 0);
        for (int i = 0; i < 100; i++) s.decode(0).startRunning(i * 1e-6, 1000);
        return s;
    }

    @Test
    void noneAdmitsAtArrivalAndLetsTheDecodeStageRejectAfterThePrefill() {
        ClusterScheduler s = withBusyDecode(AdmissionMode.NONE);
        Decision d = s.decide(PROMPT, N, 0);
        assertThat(d.accepted()).isTrue();
        assertThat(s.decodeAdmits(d.decode(), N))
                .as("decode's own check when the prefill is done")
                .isFalse();
        ClusterScheduler idle = new ClusterScheduler(cfg(PrefillPolicy.LEAST_LOADED, AdmissionMode.NONE), 1, 1, 0);
        Decision ok = idle.decide(PROMPT, N, 0);
        assertThat(idle.decodeAdmits(ok.decode(), N))
                .as("an idle decode instance admits it")
                .isTrue();
    }

    @Test
    void earlyRejectionRejectsOnTheDecodeLoadNow() {
        ClusterScheduler s = withBusyDecode(AdmissionMode.EARLY_REJECTION);
        assertThat(s.decodeLoadNow()).isCloseTo(0.12 / 0.1, offset(1e-9));
        Decision d = s.decide(PROMPT, N, 0);
        assertThat(d.accepted()).isFalse();
        assertThat(d.rejectReason()).isEqualTo(Decision.DECODE_LOAD);
    }

    @Test
    void predictiveRejectionLooksAtTheDecodeLoadWhenThisPrefillEnds() {
        ClusterScheduler s = withBusyDecode(AdmissionMode.PREDICTIVE_EARLY_REJECTION); // t_d = 1 s
        s.prefill(0).busyUntil = 2; // this request's prefill ends after 2 s: the 100 running decodes are over by then
        Decision d = s.decide(PROMPT, N, 0);
        assertThat(d.accepted()).isTrue();
        // only this request is predicted there, with its own prompt as context
        assertThat(d.decodeLoad()).isCloseTo(PROFILE.decodeStepSeconds(1, N) / 0.1, offset(1e-9));
        s.prefill(0).busyUntil = 0; // prefill ends at once (~0.63 s): they are still decoding
        Decision d2 = s.decide(PROMPT, N, 0);
        assertThat(d2.accepted()).isFalse();
        assertThat(d2.rejectReason()).isEqualTo(Decision.DECODE_LOAD);
    }

    @Test
    void predictionCountsRequestsStillInPrefill() {
        ClusterScheduler s = new ClusterScheduler(
                cfg(PrefillPolicy.LEAST_LOADED, AdmissionMode.PREDICTIVE_EARLY_REJECTION), 1, 1, 0);
        for (int i = 0; i < 150; i++) s.decode(0).expect(0.5, 1000, 1000); // 150 arrive at decode at t = 0.5 s
        assertThat(s.chosenLoadAt(1.0, 0, 1000, 1000))
                .isCloseTo(PROFILE.decodeStepSeconds(151, 151_000) / 0.1, offset(1e-9));
        assertThat(s.chosenLoadAt(0.4, 0, 1000, 1000))
                .isCloseTo(PROFILE.decodeStepSeconds(1, 1000) / 0.1, offset(1e-9));
    }

    @Test
    void kvInUseCountsAsDecodeLoad() {
        ClusterScheduler s = new ClusterScheduler(
                new SchedulerConfig(
                        PrefillPolicy.LEAST_LOADED,
                        AdmissionMode.EARLY_REJECTION,
                        30,
                        0.1,
                        2,
                        BT,
                        PROFILE,
                        10e9,
                        10_000,
                        1,
                        1),
                1,
                1,
                0);
        s.onLeftPrefill(s.decide(PROMPT, 9000, 0), 0, 9000, true, 0); // 9000 of 10000 KV tokens in use
        assertThat(s.decodeLoadNow()).isCloseTo(0.9, offset(1e-9));
        s.onLeftPrefill(s.decide(PROMPT, 2000, 0), 0, 2000, true, 0);
        Decision d = s.decide(PROMPT, N, 0);
        assertThat(d.accepted()).isFalse();
        assertThat(d.rejectReason()).isEqualTo(Decision.DECODE_LOAD);
        assertThat(s.decodeAdmits(0, 1))
                .as("a full decode instance refuses after the prefill")
                .isFalse();
    }

    @Test
    void estimatorsMatchHandComputedValues() {
        PrefillTimeModel m = PrefillTimeModel.of(PROFILE);
        assertThat(m.seconds(8192, 0)).isCloseTo(0.1 + 0.8192 + 1e-9 * 8192.0 * 8192, offset(1e-12));
        assertThat(m.seconds(8192, 4096))
                .isCloseTo(0.1 + 0.4096 + 1e-9 * (8192.0 * 8192 - 4096.0 * 4096), offset(1e-12));
        long[] n = {1000, 4000, 8000, 8000, 16000, 2000};
        long[] p = {0, 0, 0, 4000, 8000, 1000};
        double[] t = new double[n.length];
        for (int i = 0; i < n.length; i++)
            t[i] = 0.2 + 3e-5 * (n[i] - p[i]) + 5e-10 * ((double) n[i] * n[i] - (double) p[i] * p[i]);
        PrefillTimeModel fit = PrefillTimeModel.fit(n, p, t);
        assertThat(fit.c0()).isCloseTo(0.2, offset(1e-9));
        assertThat(fit.c1()).isCloseTo(3e-5, offset(1e-12));
        assertThat(fit.c2()).isCloseTo(5e-10, offset(1e-15));
        ClusterScheduler s = new ClusterScheduler(cfg(PrefillPolicy.KVCACHE_CENTRIC, AdmissionMode.NONE), 1, 1, 0);
        assertThat(s.transferSeconds(2)).isCloseTo(2 * 512 * 100_000 / 10e9, offset(1e-15));
        s.prefill(0).busyUntil = 7;
        assertThat(s.prefill(0).queueSeconds(3)).isEqualTo(4);
        assertThat(s.prefill(0).queueSeconds(9)).isZero();
        assertThatThrownBy(() -> PrefillTimeModel.fit(new long[] {1, 2}, new long[] {0, 0}, new double[] {1, 2}))
                .hasMessageContaining("at least 3 samples");
    }

    @Test
    void lruCacheEvictsAndTheIndexForgets() {
        ClusterScheduler s = new ClusterScheduler(cfg(PrefillPolicy.KVCACHE_CENTRIC, AdmissionMode.NONE), 1, 1, 3);
        s.prefill(0).cache(first(3));
        s.prefill(0).touch(PROMPT, 1); // block 11 recently used
        s.prefill(0).cache(new long[] {99});
        int[] len = new int[1];
        s.index().prefixLengths(first(3), 1, len);
        assertThat(len[0])
                .as("block 12 was evicted, so the prefix stops after 11")
                .isEqualTo(1);
        assertThat(s.prefill(0).cachedBlocks()).isEqualTo(3);
    }

    @Test
    void badSettingsAreNamed() {
        assertThatThrownBy(() -> PrefillPolicy.parse("fastest"))
                .hasMessageContaining("fastest")
                .hasMessageContaining("kvcache-centric");
        assertThatThrownBy(() -> AdmissionMode.parse("x")).hasMessageContaining("predictive-early-rejection");
        assertThatThrownBy(() -> new SchedulerConfig(
                        PrefillPolicy.RANDOM, AdmissionMode.NONE, 30, 0.1, 0.5, BT, PROFILE, 1, 1, 1, 1))
                .hasMessageContaining("kvcache-balancing-threshold");
    }

    @Test
    void liveDecodeChoiceSpreadsEqualLoadsAndCountsReportedLoad() {
        ClusterScheduler s = new ClusterScheduler(cfg(PrefillPolicy.CACHE_AWARE, AdmissionMode.NONE), 1, 3, 0);
        s.spreadDecodeTies(true);
        Set<Integer> chosen = new HashSet<>();
        for (int r = 0; r < 3; r++) chosen.add(s.decide(new long[0], 100, 0).decode());
        assertThat(chosen).as("idle instances taken in turn").containsExactlyInAnyOrder(0, 1, 2);
        // instances 0 and 1 report requests a previous leader placed: the choice avoids them
        s.onDecodeReport(0, 40, 400_000);
        s.onDecodeReport(1, 20, 200_000);
        for (int r = 0; r < 4; r++)
            assertThat(s.decide(new long[0], 100, 0).decode()).isEqualTo(2);
        assertThat(s.decode(0).externalRunning()).isEqualTo(40);
        // once they report idle again, the external load is gone
        s.onDecodeReport(0, 0, 0);
        assertThat(s.decode(0).externalRunning()).isZero();
    }

    @Test
    void theSimulatorsTieRuleIsTheFirstInstance() {
        ClusterScheduler s = new ClusterScheduler(cfg(PrefillPolicy.CACHE_AWARE, AdmissionMode.NONE), 1, 3, 0);
        for (int r = 0; r < 3; r++)
            assertThat(s.decide(new long[0], 100, 0).decode()).isZero();
    }

    /**
     * A burst placed before any of it reaches decode spreads over the decode instances (requests still
     * in prefill count where they will decode), in the simulator's configuration (no tie spreading) as
     * in the live one.
     */
    @Test
    void aBurstSpreadsOverDecodeInstancesBeforeAnyOfItDecodes() {
        for (boolean live : new boolean[] {false, true}) { // the simulator's setting, then the live conductor's
            ClusterScheduler s = new ClusterScheduler(cfg(PrefillPolicy.CACHE_AWARE, AdmissionMode.NONE), 2, 4, 0);
            s.spreadDecodeTies(live);
            int[] per = new int[4];
            for (int i = 0; i < 16; i++) {
                Decision d = s.decide(new long[0], 2000, 0);
                s.onScheduled(d, new long[0], 2000, 0);
                per[d.decode()]++;
            }
            assertThat(per).as(live ? "live" : "simulated").containsExactly(4, 4, 4, 4);
        }
    }
}
