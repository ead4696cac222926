package dev.mooncakej.scheduler;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.mooncakej.kvcache.cost.CostProfile;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * Each live estimator recovers known coefficients from synthetic measurements with 3% multiplicative
 * noise, within 10% of each coefficient (the stated bound; the quadratic prefill term, the smallest
 * in the samples, within 15%), and the live scheduler uses what they learn: compute time apart from
 * queue wait, TBT from reported steps, capacities from workers, TTFT errors that shrink once fitted.
 */
class EstimatorsTest {
    private static final CostProfile GUESS = new CostProfile("guess", 0.01, 1e-4, 0, 0.005, 0.001, 1e-7, 1);
    private final Random rnd = new Random(42);
    private final AtomicReference<Double> now = new AtomicReference<>(0.0);

    private double noisy(double x) {
        return x * (1 + 0.03 * rnd.nextGaussian());
    }

    @Test
    void thePrefillFitRecoversItsCoefficients() {
        int k = 200;
        long[] n = new long[k], p = new long[k];
        double[] t = new double[k];
        PrefillTimeModel truth = new PrefillTimeModel(0.02, 2e-4, 5e-8);
        for (int i = 0; i < k; i++) {
            n[i] = 64 + rnd.nextInt(8000);
            p[i] = rnd.nextInt(3) == 0 ? 0 : rnd.nextLong(n[i] / 2);
            t[i] = noisy(truth.seconds(n[i], p[i]));
        }
        PrefillTimeModel fit = PrefillTimeModel.fit(n, p, t);
        // c0 is 1% of a typical sample, below the noise: it is bounded absolutely (50 ms)
        assertThat(fit.c0()).isCloseTo(truth.c0(), within(0.05));
        assertThat(fit.c1()).isCloseTo(truth.c1(), within(0.1 * truth.c1()));
        assertThat(fit.c2()).isCloseTo(truth.c2(), within(0.15 * truth.c2()));
        for (long len : new long[] {256, 2048, 8000})
            assertThat(fit.seconds(len, 0)).isCloseTo(truth.seconds(len, 0), within(0.05 * truth.seconds(len, 0)));
    }

    @Test
    void theDecodeStepFitRecoversItsCoefficients() {
        int k = 200;
        double[] b = new double[k], c = new double[k], t = new double[k];
        DecodeStepModel truth = new DecodeStepModel(0.015, 4e-4, 2e-8);
        for (int i = 0; i < k; i++) {
            b[i] = 1 + rnd.nextInt(64);
            c[i] = b[i] * (200 + rnd.nextInt(8000));
            t[i] = noisy(truth.seconds((int) b[i], (long) c[i]));
        }
        DecodeStepModel fit = DecodeStepModel.fit(b, c, t);
        assertThat(fit.base()).isCloseTo(truth.base(), within(0.1 * truth.base()));
        assertThat(fit.perSequence()).isCloseTo(truth.perSequence(), within(0.1 * truth.perSequence()));
        assertThat(fit.perContextToken()).isCloseTo(truth.perContextToken(), within(0.1 * truth.perContextToken()));
    }

    @Test
    void thePathFitRecoversBandwidthAndCongestion() {
        int k = 64;
        long[] w = new long[k], bytes = new long[k];
        double[] conc = new double[k], t = new double[k];
        PathModel truth = new PathModel(20e-6, 1 / 10e9, 0.5 / 10e9); // 10 GB/s alone, each other write +50%
        for (int i = 0; i < k; i++) {
            w[i] = 1 + rnd.nextInt(200);
            bytes[i] = w[i] * (64 << 10) * (1 + rnd.nextInt(4));
            conc[i] = 1 + rnd.nextInt(6);
            t[i] = noisy(truth.seconds(w[i], bytes[i], conc[i]));
        }
        PathModel fit = PathModel.fit(w, bytes, conc, t);
        assertThat(fit.bandwidth(1)).isCloseTo(10e9, within(1e9));
        assertThat(fit.bandwidth(3)).isCloseTo(truth.bandwidth(3), within(0.1 * truth.bandwidth(3)));
        assertThat(fit.perWrite()).isCloseTo(20e-6, within(4e-6));
    }

    private LiveScheduler live() {
        SchedulerConfig cfg = new SchedulerConfig(
                PrefillPolicy.CACHE_AWARE,
                AdmissionMode.EARLY_REJECTION,
                30,
                0.2,
                1.5,
                16,
                GUESS,
                1e12,
                1_000_000,
                10,
                1);
        LiveScheduler s = new LiveScheduler(new ClusterScheduler(cfg, 0, 0, 0), now::get);
        s.setWorkers(List.of(new WorkerEndpoint("p")), List.of(new WorkerEndpoint("d")));
        return s;
    }

    @Test
    void theLivePrefillFitLearnsComputeTimeNotQueueWaitAndItsTtftErrorShrinks() {
        LiveScheduler s = live();
        PrefillTimeModel truth = new PrefillTimeModel(0.02, 3e-4, 4e-8);
        double firstErrors = 0;
        for (int i = 0; i < 256; i++) {
            int n = 64 + rnd.nextInt(4000);
            var c = s.choose(new long[0], n, n + 16);
            double compute = noisy(truth.seconds(n, 0));
            double queue = 5 * compute; // waiting behind others: not part of the model, modelled apart
            now.set(now.get() + queue + compute);
            double start = s.prefillEnded(c, n, 0, compute, queue, true);
            if (i < 32) firstErrors += Math.abs(c.decision().prefillSeconds() - compute) / compute;
            now.set(now.get() + 1);
            s.decodeEnded(c, n, start, 2);
        }
        PrefillTimeModel fit = s.core().prefillModel();
        assertThat(fit.c1()).as("queue wait is not in the fit").isCloseTo(truth.c1(), within(0.1 * truth.c1()));
        // the prefill-time part of the prediction: within 10% at the median once fitted, far off before
        double late = 0;
        for (int i = 0; i < 32; i++) {
            int n = 64 + rnd.nextInt(4000);
            late += Math.abs(fit.seconds(n, 0) - truth.seconds(n, 0)) / truth.seconds(n, 0);
        }
        assertThat(late / 32).isLessThan(0.1).isLessThan(firstErrors / 32 / 3);
        assertThat(s.ttftSamples()).isEqualTo(256);
        assertThat(s.ttftError(0.5)).isFinite();
    }

    @Test
    void theLiveTbtModelLearnsFromReportedStepsAndCapacityComesFromTheWorker() {
        LiveScheduler s = live();
        DecodeStepModel truth = new DecodeStepModel(0.012, 5e-4, 3e-8);
        for (int i = 0; i < 64; i++) {
            int count = 10 + rnd.nextInt(40), batch = 1 + rnd.nextInt(32);
            long ctx = (long) batch * (500 + rnd.nextInt(6000));
            double sec = 0;
            for (int k = 0; k < count; k++) sec += noisy(truth.seconds(batch, ctx));
            s.decodeSteps(count, sec, (long) batch * count, ctx * count);
        }
        DecodeStepModel fit = s.core().decodeModel();
        assertThat(fit.base()).isCloseTo(truth.base(), within(0.1 * truth.base()));
        assertThat(fit.perSequence()).isCloseTo(truth.perSequence(), within(0.1 * truth.perSequence()));
        assertThat(fit.perContextToken()).isCloseTo(truth.perContextToken(), within(0.1 * truth.perContextToken()));
        // the decode load now follows the fit: a TBT SLO of 0.2 s is met by 64 sequences of 1000 tokens
        assertThat(s.core().decodeModel().seconds(64, 64_000)).isCloseTo(truth.seconds(64, 64_000), within(0.01));

        assertThat(s.decodeCapacities()).containsEntry("d", 1_000_000L); // the configured guess
        s.applyDecodeLoad("d", 0, 0, 4096);
        assertThat(s.decodeCapacities()).containsEntry("d", 4096L);
        var c = s.choose(new long[0], 3000, 3000 + 2000); // 5000 tokens do not fit in 4096
        assertThat(c.decision().accepted()).isFalse();
        assertThat(c.decision().rejectReason()).isEqualTo(Decision.DECODE_LOAD);

        // what was learnt stays when the workers change
        s.setWorkers(List.of(new WorkerEndpoint("p2")), List.of(new WorkerEndpoint("d"), new WorkerEndpoint("d2")));
        assertThat(s.core().decodeModel()).isSameAs(fit);
    }

    @Test
    void theLiveQueueEstimateIsCorrectedByWhatHappened() {
        LiveScheduler s = live();
        var a = s.choose(new long[0], 1000, 1010);
        var b = s.choose(new long[0], 1000, 1010); // behind a
        double predictedQueueForB = b.decision().queueSeconds();
        assertThat(predictedQueueForB).isPositive();
        // a really took 10x longer than predicted: b's wait, and the queue behind it, grow by as much
        double late = 10 * a.decision().prefillSeconds();
        now.set(late);
        s.prefillEnded(a, 1000, 0, late, 0, true);
        var c = s.choose(new long[0], 1000, 1010);
        // b started only when a really ended, so c waits b's whole prefill (uncorrected: the predicted
        // queue would have drained long ago, and c would see none)
        assertThat(c.decision().queueSeconds())
                .as("the queue behind a is pushed back by a's lateness")
                .isCloseTo(b.decision().prefillSeconds(), within(1e-9));
        // everything ended: an empty queue is free now, whatever was predicted
        now.set(late + 100);
        s.prefillEnded(b, 1000, 0, 0.1, 0, true);
        s.prefillEnded(c, 1000, 0, 0.1, 0, true);
        assertThat(s.choose(new long[0], 1000, 1010).decision().queueSeconds()).isZero();
    }

    /**
     * A lightly loaded decode worker reports batch 1 or 2 only: the three TBT terms are not separable,
     * so the model keeps its shape and follows the measured scale (a free fit extrapolated to a larger
     * batch refused every request after its prefill at a quarter load in the simulator).
     */
    @Test
    void aTbtFitFromOneBatchSizeOnlyRescalesTheModel() {
        LiveScheduler s = live();
        DecodeStepModel before = s.core().decodeModel();
        for (int i = 0; i < 64; i++) {
            int batch = 1 + rnd.nextInt(2);
            long ctx = batch * (200L + rnd.nextInt(4000));
            double sec = noisy(2 * before.seconds(batch, ctx)); // the worker is twice as slow as guessed
            s.decodeSteps(1, sec, batch, ctx);
        }
        DecodeStepModel after = s.core().decodeModel();
        assertThat(after.perSequence() / after.base()).isCloseTo(before.perSequence() / before.base(), within(1e-9));
        assertThat(after.seconds(16, 16_000))
                .isCloseTo(2 * before.seconds(16, 16_000), within(0.2 * before.seconds(16, 16_000)));
    }

    @Test
    void theTtftOverheadIsTheMedianOfRecentRequestsNotAColdStartOutlier() {
        LiveScheduler s = live();
        s.ttftOverhead(2.7, 0.05); // the first request after start-up: 2.65 s outside the worker
        for (int i = 0; i < 20; i++) s.ttftOverhead(0.08 + 0.001 * i, 0.05);
        assertThat(s.core().ttftOverheadSeconds()).isCloseTo(0.04, within(0.006));
        var c = s.choose(new long[0], 1000, 1010);
        assertThat(c.decision().ttft())
                .isCloseTo(c.decision().queueSeconds() + c.decision().prefillSeconds() + 0.04, within(0.006));
    }
}
