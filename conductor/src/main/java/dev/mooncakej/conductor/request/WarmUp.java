package dev.mooncakej.conductor.request;

import dev.mooncakej.conductor.membership.WorkerMembership;
import dev.mooncakej.conductor.model.ServedModel;
import dev.mooncakej.kvcache.wire.WorkerMessages.Sampling;
import dev.mooncakej.scheduler.LiveScheduler;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.stereotype.Component;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * The conductor's own requests through the whole path once workers were admitted: four rounds of one
 * per prefill worker (at least two), each round all at once, so the queue estimate spreads them over
 * the prefill workers, then two passes of 4, 16, 64, 128, 256 and 512 tokens one at a time, each
 * stopping after one that took over {@link #LONE_PROBE_BUDGET} (their hop, the fastest probe's, is
 * the TTFT overhead predictions start from, and the second pass's compute times are the prefill
 * fit's first samples of weight one, until the next warm-up's second pass, which measured warmer
 * processes, demotes them to a seed's weight). Every connection, handler and KV path they take is then warm
 * (a cluster's first user request paid 0.3-0.5 s for it here, 10-20x its prediction). The concurrent
 * rounds' times (several at once, on cold paths) teach the estimators nothing, and no probe counts in
 * a prediction-error figure. Prompts use their own salt (no key of theirs matches a user's). Best
 * effort: failures are logged.
 */
@Component
public class WarmUp {
    private static final Logger LOG = LoggerFactory.getLogger(WarmUp.class);

    /** The request id prefix of the conductor's own start-up requests. */
    static final String PROBE = "probe-";

    /** The id prefix of a start-up request sent alone on the warmed path: its compute time teaches the fit. */
    static final String PROBE_ALONE = PROBE + "alone-";

    /** A lone probe that took longer than this is the last one: the next would be twice as long. */
    static final Duration LONE_PROBE_BUDGET = Duration.ofSeconds(1);

    /** The lone probes' lengths, in tokens (each pass stops after one over {@link #LONE_PROBE_BUDGET}). */
    private static final int[] LONE = {4, 16, 64, 128, 256, 512};

    private final RequestPath path;
    private final LiveScheduler scheduler;
    private final ServedModel model;

    public WarmUp(RequestPath path, LiveScheduler scheduler, ServedModel model, WorkerMembership membership) {
        this.path = path;
        this.scheduler = scheduler;
        this.model = model;
        membership.onAdmitted(this::run);
    }

    /** Warms the path now (one warm-up at a time: concurrent ones would measure each other). */
    public synchronized void run() {
        if (!scheduler.ready()) return;
        int n = Math.max(2, scheduler.prefillWorkers().size());
        String salt = "probe-" + Long.toHexString(ThreadLocalRandom.current().nextLong());
        long t0 = System.nanoTime();
        int count = 0;
        // four rounds of short prompts, each round all at once (spread over the prefill workers), then
        // two passes of lone requests of 4 to 512 tokens: a request alone on a warm path, whose hop the
        // estimator starts from (the concurrent rounds' hops were 35-600 ms, a lone warm one 10-20).
        // The first pass's compute times teach nothing (they still ran 20-40% slower than the same
        // lengths a second later, while the JIT compiled); the second's teach the prefill fit (the
        // workers' start-up calibration ran while every process of the cluster was starting: 64 tokens
        // measured 26-38 ms there, 4-5 ms warm), and its longer lengths pin the attention term over the
        // lengths users send (with 128 tokens the longest sample, 500 were over-predicted by 38%); with
        // 16 tokens the shortest probe, a user's first prompt of 5 took 100-120 ms, ten times its fit
        int[] lengths = {48, 96, 48, 96};
        for (int round = 0; round < lengths.length; round++) {
            List<Mono<Long>> runs = new ArrayList<>();
            for (int i = 0; i < n; i++, count++) runs.add(send(probe(lengths[round] + i, count, salt, PROBE)));
            if (!await(runs)) return;
        }
        int lone = LONE.length;
        for (String kind : List.of(PROBE, PROBE_ALONE)) {
            if (kind.equals(PROBE_ALONE)) scheduler.calibrationPass(); // this pass supersedes earlier ones
            for (int round = 0; round < lone; round++, count++) {
                long start = System.nanoTime();
                if (!await(List.of(send(probe(LONE[round], count, salt, kind))))) return;
                // on an engine where a lone probe took over the budget the next, twice as long, would
                // hold the path too long: both passes end at this length
                if (System.nanoTime() - start > LONE_PROBE_BUDGET.toNanos()) lone = round + 1;
            }
        }
        scheduler.ignoreStepsFor(2.5); // the decode workers' next reports hold the probes' cold steps
        LOG.info("warmed the request path with {} requests in {} ms", count, (System.nanoTime() - t0) / 1_000_000);
    }

    private Mono<Long> send(GenerationRequest probe) {
        return path.generate(probe).flatMapMany(Generation::events).count();
    }

    /** Waits for {@code runs}; false (logged) if one failed or they took over 30 s. */
    private boolean await(List<Mono<Long>> runs) {
        scheduler.ignoreStepsFor(60); // until the warm-up ends (then 2.5 s more)
        try {
            Flux.merge(runs).then().block(Duration.ofSeconds(30));
            return true;
        } catch (RuntimeException e) {
            scheduler.ignoreStepsFor(2.5);
            LOG.info("warming the request path: {} (the first requests pay for the cold path)", e.getMessage());
            return false;
        }
    }

    /** Probe number {@code count}: a prompt of about {@code length} tokens (a quarter of the context at most). */
    private GenerationRequest probe(int length, int count, String salt, String kind) {
        int vocab = model.tokenizer().vocabSize();
        int[] prompt = new int[Math.min(length, Math.max(2, model.contextLength() / 4))];
        for (int j = 0; j < prompt.length; j++) prompt[j] = (int) ((j * 2654435761L + 31L * count + 7) % vocab);
        return new GenerationRequest(
                false,
                model.name(),
                prompt,
                3,
                new Sampling(0f, 1f, 0, 1L, false),
                List.of(),
                false,
                false,
                kind + count,
                salt,
                null,
                null,
                1,
                false,
                null);
    }
}
