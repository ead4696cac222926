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
 * the prefill workers, then three of 16, 64 and 128 tokens one at a time (their hop, the fastest
 * probe's, is the TTFT overhead predictions start from, and their compute times are the prefill
 * fit's first samples of weight one). Every connection, handler and KV path they take is then warm
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
        // three of one request at a time: a request alone on a warm path, whose hop the estimator starts
        // from (the concurrent rounds' hops were 35-600 ms, a lone warm one 10-20) and whose compute
        // time teaches the prefill fit (the workers' start-up calibration ran while every process of the
        // cluster was starting: 64 tokens measured 26-38 ms there, 4-5 ms warm)
        int[] lengths = {48, 96, 48, 96, 16, 64, 128};
        for (int round = 0; round < lengths.length; round++) {
            boolean together = round < 4;
            List<Mono<Long>> runs = new ArrayList<>();
            for (int i = 0; i < (together ? n : 1); i++, count++)
                runs.add(path.generate(probe(lengths[round] + i, count, salt, together))
                        .flatMapMany(Generation::events)
                        .count());
            scheduler.ignoreStepsFor(60); // until the warm-up ends (then 2.5 s more, below)
            try {
                Flux.merge(runs).then().block(Duration.ofSeconds(30));
            } catch (RuntimeException e) {
                scheduler.ignoreStepsFor(2.5);
                LOG.info("warming the request path: {} (the first requests pay for the cold path)", e.getMessage());
                return;
            }
        }
        scheduler.ignoreStepsFor(2.5); // the decode workers' next reports hold the probes' cold steps
        LOG.info("warmed the request path with {} requests in {} ms", count, (System.nanoTime() - t0) / 1_000_000);
    }

    /** Probe number {@code count}: a prompt of about {@code length} tokens (a quarter of the context at most). */
    private GenerationRequest probe(int length, int count, String salt, boolean together) {
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
                (together ? PROBE : PROBE_ALONE) + count,
                salt);
    }
}
