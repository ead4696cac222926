package dev.mooncakej.conductor.request;

import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.conductor.leadership.Leadership;
import dev.mooncakej.conductor.membership.WorkerMembership;
import dev.mooncakej.conductor.metrics.ConductorMetrics;
import dev.mooncakej.conductor.model.ServedModel;
import dev.mooncakej.conductor.workers.WorkerClient;
import dev.mooncakej.engine.sampling.TextAssembler;
import dev.mooncakej.kvcache.wire.WorkerMessages.DecodeTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillResult;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveRequest;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveResponse;
import dev.mooncakej.kvcache.wire.WorkerMessages.SequenceKeys;
import dev.mooncakej.kvcache.wire.WorkerMessages.TokenEvent;
import dev.mooncakej.scheduler.Decision;
import dev.mooncakej.scheduler.LiveScheduler;
import dev.mooncakej.scheduler.WorkerEndpoint;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.stereotype.Service;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * The request path: schedule, reserve KV (prompt plus max tokens) on a decode worker, prefill on the
 * chosen prefill worker (which writes the KV into that reservation and returns the first token), then
 * relay the decode worker's tokens as text. Every value a worker returns is checked before use; a bad
 * one fails this request alone. Whatever ends the request (done, stop sequence, client gone, error),
 * the reservation is cancelled on the decode worker, which frees or fences its blocks.
 */
@Service
public class RequestPath {
    private static final Logger LOG = LoggerFactory.getLogger(RequestPath.class);

    private final ServedModel model;
    private final ConductorProperties props;
    private final LiveScheduler scheduler;
    private final WorkerClient workers;
    private final WorkerMembership membership;
    private final Leadership leadership;
    private final ConductorMetrics metrics;

    private final AnswerTokens answers;
    private final dev.mooncakej.conductor.membership.RoutingHealthIndicator routing;

    public RequestPath(
            ServedModel model,
            ConductorProperties props,
            LiveScheduler scheduler,
            WorkerClient workers,
            WorkerMembership membership,
            Leadership leadership,
            ConductorMetrics metrics,
            AnswerTokens answers,
            dev.mooncakej.conductor.membership.RoutingHealthIndicator routing) {
        this.routing = routing;
        this.answers = answers;
        membership.onAdmitted(this::warmUp);
        this.model = model;
        this.props = props;
        this.scheduler = scheduler;
        this.workers = workers;
        this.membership = membership;
        this.leadership = leadership;
        this.metrics = metrics;
    }

    /**
     * Schedules, reserves KV, runs the prefill and returns, once the first token is known, the flux of
     * text events (starting with that token). Errors up to that point (overload 429, no worker 503,
     * bad worker answer) fail the Mono, so the HTTP status can still say so.
     */
    public Mono<Generation> generate(GenerationRequest g) {
        if (!leadership.leader()) {
            metrics.rejected("standby").increment();
            return Mono.error(new RequestFailure(
                    RequestFailure.Kind.STANDBY,
                    "this conductor is a standby (" + leadership.standbyReason() + "); send requests to the leader",
                    props.retryAfterSeconds()));
        }
        if (!scheduler.ready()) {
            metrics.rejected("no_workers").increment();
            var open = membership.openBreakers();
            if (!open.isEmpty())
                LOG.warn(
                        "[{}] no worker available; out of scheduling after repeated failures: {}", g.requestId(), open);
            var pending = membership.pendingWorkers();
            String why = !pending.isEmpty() && open.isEmpty()
                    ? pending.size() + " listed worker(s) have not answered the conductor yet (admission reads each"
                            + " worker's profile first; the conductor's log names them); retry"
                    : open.isEmpty()
                            ? "no prefill or decode worker is configured or registered; start some"
                                    + " (./mooncakej up) and retry"
                            : "no prefill or decode worker is available: " + open.size()
                                    + " failed repeatedly and are out of scheduling until their circuit breakers let"
                                    + " trial calls through (request " + g.requestId()
                                    + "; the conductor's log names them); retry";
            return Mono.error(new RequestFailure(RequestFailure.Kind.NO_WORKERS, why, props.retryAfterSeconds()));
        }
        long reservation = ThreadLocalRandom.current().nextLong() & Long.MAX_VALUE;
        long start = System.nanoTime();
        int[] tokens = g.promptTokens();
        long[] keys = model.blockKeys(g.salt()).keys(tokens);
        metrics.promptTokens.record(tokens.length);
        LiveScheduler.Choice choice;
        try {
            choice = scheduler.choose(
                    keys,
                    tokens.length,
                    tokens.length + g.maxTokens(),
                    g.requestId().startsWith(PROBE));
        } catch (IllegalStateException e) { // membership changed to empty between the check and the choice
            metrics.rejected("no_workers").increment();
            LOG.warn("[{}] no workers to choose from: {}", g.requestId(), e.getMessage());
            return Mono.error(new RequestFailure(
                    RequestFailure.Kind.NO_WORKERS,
                    "no prefill or decode worker is available (request " + g.requestId() + "); retry",
                    props.retryAfterSeconds()));
        }
        if (!choice.decision().accepted()) {
            metrics.rejected(Decision.TTFT_SLO.equals(choice.decision().rejectReason()) ? "ttft_slo" : "decode_load")
                    .increment();
            LOG.info( // what the refusal rested on, for whoever reads why a request got 429
                    "[{}] refused: {} ({} prompt tokens, predicted TTFT {} ms: queue {}, prefill {}, fetch {}; "
                            + "predicted TBT {} ms)",
                    g.requestId(),
                    choice.decision().rejectReason(),
                    tokens.length,
                    Math.round(choice.decision().ttft() * 1000),
                    Math.round(choice.decision().queueSeconds() * 1000),
                    Math.round(choice.decision().prefillSeconds() * 1000),
                    Math.round(choice.decision().transferSeconds() * 1000),
                    Math.round(choice.decision().tbt() * 1000));
            return Mono.error(new RequestFailure(
                    RequestFailure.Kind.OVERLOADED,
                    "the cluster is overloaded (" + choice.decision().rejectReason() + "); retry after "
                            + props.retryAfterSeconds() + " s",
                    props.retryAfterSeconds()));
        }
        long scheduledAt = System.nanoTime();
        AtomicBoolean prefillAccounted = new AtomicBoolean(), prefillCalled = new AtomicBoolean();
        // the choice as it stands: the reservation may land on another decode worker than decided
        java.util.concurrent.atomic.AtomicReference<LiveScheduler.Choice> current =
                new java.util.concurrent.atomic.AtomicReference<>(choice);
        Runnable prefillFailed = () -> { // one that never reached its prefill worker leaves that queue's estimate
            if (!prefillAccounted.compareAndSet(false, true)) return;
            if (prefillCalled.get()) scheduler.prefillEnded(current.get(), tokens.length, 0, 0, false);
            else scheduler.prefillNotStarted(current.get());
        };
        java.util.concurrent.atomic.AtomicReference<WorkerEndpoint> asked =
                new java.util.concurrent.atomic.AtomicReference<>();
        Runnable reserveCancelled =
                () -> { // the client left while a decode worker was reserving: that reservation must not linger
                    prefillFailed.run();
                    WorkerEndpoint w = asked.get();
                    if (w != null) workers.cancel(w.url(), reservation).subscribe();
                };
        return reserve(reservation, g, choice.decodeCandidates(), 0, asked)
                .doOnError(e -> prefillFailed.run())
                .doOnCancel(reserveCancelled)
                .flatMap(res -> {
                    long reservedAt = System.nanoTime();
                    WorkerEndpoint decode = res.endpoint();
                    LiveScheduler.Choice ch = scheduler.reservedOn(choice, decode);
                    current.set(ch);
                    WorkerEndpoint prefill = ch.prefill();
                    prefillCalled.set(true);
                    prefill.started();
                    Decision d = ch.decision();
                    // every block the scheduler counts on (fetched, or believed held or in production
                    // there): the worker waits for its own in-flight blocks and asks the pool for the rest
                    int poolPrefix = d.prefixBlocks();
                    PrefillTask task = new PrefillTask(
                            reservation,
                            tokens,
                            keys,
                            poolPrefix,
                            res.response().kv(),
                            g.sampling());
                    return workers.prefill(prefill.url(), task, g.requestId())
                            .map(pr -> pr.validate(
                                    reservation,
                                    tokens.length,
                                    model.tokenizer().vocabSize()))
                            .doFinally(s -> prefill.ended())
                            .doOnCancel(() -> {
                                prefillFailed.run();
                                workers.cancel(decode.url(), reservation).subscribe();
                            })
                            .onErrorResume(e -> {
                                prefillFailed.run();
                                return workers.cancel(decode.url(), reservation).then(Mono.error(asFailure(e, g)));
                            })
                            .map(pr -> {
                                long prefilledAt = System.nanoTime();
                                prefillAccounted.set(true);
                                var times = pr.times(); // the worker's compute time apart from its queue wait
                                double decodeStart = times == null
                                        ? scheduler.prefillEnded(
                                                ch, tokens.length, pr.cachedTokens(), pr.prefillSeconds(), true)
                                        : scheduler.prefillEnded(
                                                ch,
                                                tokens.length,
                                                pr.cachedTokens(),
                                                times.computeSeconds(),
                                                times.queueSeconds(),
                                                true);
                                if (g.requestId().startsWith(PROBE_ALONE))
                                    scheduler.calibrated(
                                            tokens.length,
                                            pr.cachedTokens(),
                                            times == null ? pr.prefillSeconds() : times.computeSeconds());
                                scheduler.ttftOverhead( // a probe's only until a request measures it
                                        decodeStart - ch.scheduledAt(),
                                        pr.prefillSeconds() + pr.kvSeconds(),
                                        ch.probe());
                                if (times != null)
                                    scheduler.kvWrites(
                                            prefill.url(),
                                            decode.url(),
                                            times.kvWrites(),
                                            pr.kvBytes(),
                                            times.kvWriteSeconds(),
                                            times.kvWriteConcurrency());
                                metrics.cachedTokens.record(pr.cachedTokens());
                                routing.observe( // what was routed for against what the worker reused
                                        prefill.url(),
                                        Math.min((long) d.prefixBlocks() * props.blockTokens(), tokens.length - 1L),
                                        pr.cachedTokens());
                                scheduler.fetched(ch, pr.fetchedTokens(), pr.fetchSeconds()); // the fetch price follows
                                metrics.prefixHit(pr.cachedTokens() - pr.fetchedTokens(), pr.fetchedTokens());
                                metrics.kvBytes.increment(pr.kvBytes());
                                metrics.kvTime.record(Duration.ofNanos((long) (pr.kvSeconds() * 1e9)));
                                LOG.info(
                                        "[{}] prefill on {} ({}): {} prompt tokens, {} cached ({} fetched{}), {} ms "
                                                + "compute, {} KV bytes in {} ms to {}; TTFT {} ms (predicted {} ms:"
                                                + " queue {}, prefill {}, fetch {}; here: scheduled in {} us, reserved"
                                                + " in {} us, prefill call {} us)",
                                        g.requestId(),
                                        prefill.url(),
                                        d.fetchFrom() >= 0 ? "prefix from the pool" : "local prefix",
                                        tokens.length,
                                        pr.cachedTokens(),
                                        pr.fetchedTokens(),
                                        d.fetchFrom() >= 0 ? " from " + scheduler.prefillUrl(d.fetchFrom()) : "",
                                        Math.round(pr.prefillSeconds() * 1000),
                                        pr.kvBytes(),
                                        Math.round(pr.kvSeconds() * 1000),
                                        decode.url(),
                                        Math.round((decodeStart - ch.scheduledAt()) * 1000),
                                        Math.round(d.ttft() * 1000),
                                        Math.round(d.queueSeconds() * 1000),
                                        Math.round(d.prefillSeconds() * 1000),
                                        Math.round(d.transferSeconds() * 1000),
                                        (scheduledAt - start) / 1000,
                                        (reservedAt - scheduledAt) / 1000,
                                        (prefilledAt - reservedAt) / 1000);
                                AtomicInteger produced = new AtomicInteger();
                                return new Generation(
                                        prefill.id(),
                                        decode.id(),
                                        relay(g, reservation, decode, pr, start, produced)
                                                .doFinally(sig -> {
                                                    scheduler.decodeEnded(
                                                            ch, tokens.length, decodeStart, produced.get());
                                                    LOG.debug(
                                                            "[{}] {} tokens relayed in {} us ({} us since scheduling)",
                                                            g.requestId(),
                                                            produced.get(),
                                                            (System.nanoTime() - prefilledAt) / 1000,
                                                            (System.nanoTime() - start) / 1000);
                                                }));
                            });
                });
    }

    /** The request id prefix of the conductor's own start-up requests ({@link #warmUp}). */
    static final String PROBE = "probe-";

    /** The id prefix of a start-up request sent alone on the warmed path: its compute time teaches the fit. */
    static final String PROBE_ALONE = PROBE + "alone-";

    /**
     * Sends the conductor's own requests through the whole path once workers were admitted: four
     * rounds of one per prefill worker (at least two), each round all at once, so the queue estimate
     * spreads them over the prefill workers, then three of 16, 64 and 128 tokens one at a time
     * (their hop, the fastest probe's, is the TTFT overhead predictions start from, and their compute
     * times are the prefill fit's first samples of weight one). Every connection, handler and KV path they take is then
     * warm (a cluster's first user request paid 0.3-0.5 s for it here, 10-20x its prediction). The
     * concurrent rounds' times (several at once, on cold paths) teach the estimators nothing and count in no
     * prediction-error figure. Prompts use their own salt (no key of theirs matches a user's). Best
     * effort: failures are logged.
     */
    public synchronized void warmUp() { // one warm-up at a time: concurrent ones measure each other
        if (!scheduler.ready()) return;
        int n = Math.max(2, scheduler.prefillWorkers().size());
        int vocab = model.tokenizer().vocabSize();
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
            int len = Math.min(lengths[round], Math.max(2, model.contextLength() / 4));
            boolean together = round < 4;
            List<Mono<Long>> runs = new ArrayList<>();
            for (int i = 0; i < (together ? n : 1); i++, count++) {
                int[] prompt = new int[len + i];
                for (int j = 0; j < prompt.length; j++) prompt[j] = (int) ((j * 2654435761L + 31L * count + 7) % vocab);
                GenerationRequest g = new GenerationRequest(
                        false,
                        model.name(),
                        prompt,
                        3,
                        new dev.mooncakej.kvcache.wire.WorkerMessages.Sampling(0f, 1f, 0, 1L, false),
                        List.of(),
                        false,
                        false,
                        (together ? PROBE : PROBE_ALONE) + count,
                        salt);
                runs.add(generate(g).flatMapMany(Generation::events).count());
            }
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

    /** What the decode worker needs to key a finished sequence's blocks for the KV pool (the next turn reuses them). */
    private SequenceKeys sequenceKeys(GenerationRequest g) {
        var bk = model.blockKeys(g.salt());
        int[] tokens = g.promptTokens();
        long[] keys = bk.keys(tokens);
        return new SequenceKeys(
                bk.seed(),
                bk.blockTokens(),
                keys,
                java.util.Arrays.copyOfRange(tokens, keys.length * bk.blockTokens(), tokens.length));
    }

    /** The first token, then the decode worker's tokens, as text events; releases the reservation however it ends. */
    private Flux<GenerationEvent> relay(
            GenerationRequest g,
            long reservation,
            WorkerEndpoint decode,
            PrefillResult pr,
            long start,
            AtomicInteger produced) {
        int promptLength = g.promptTokens().length;
        int cached = pr.cachedTokens();
        int vocab = model.tokenizer().vocabSize();
        AtomicLong lastTokenAt = new AtomicLong();
        AtomicBoolean finished = new AtomicBoolean();
        TextAssembler text = new TextAssembler(model.tokenizer(), g.stop());
        TokenEvent first = TokenEvent.token(pr.firstToken(), pr.firstLogprob());
        // a chat answer's ids by its text, so the next turn reuses them (and their KV in the pool)
        StringBuilder said = g.chat() ? new StringBuilder() : null;
        List<Integer> saidIds = g.chat() ? new ArrayList<>() : null;
        java.util.function.Function<String, String> ended = tail -> {
            if (said != null)
                answers.remember(
                        g.salt(),
                        said.append(tail).toString(),
                        saidIds.stream().mapToInt(Integer::intValue).toArray());
            return tail;
        };
        Flux<TokenEvent> source;
        if (model.tokenizer().isEndOfGeneration(pr.firstToken()) || g.maxTokens() == 1) {
            workers.cancel(decode.url(), reservation).subscribe();
            source = Flux.just(first);
        } else {
            DecodeTask dt = new DecodeTask(
                    reservation, pr.firstToken(), promptLength, g.maxTokens(), g.sampling(), sequenceKeys(g));
            source = Flux.concat(Flux.just(first), workers.decode(decode.url(), dt, g.requestId()));
        }
        decode.started();
        return source.concatMap(ev -> {
                    if (finished.get()) return Flux.<GenerationEvent>empty();
                    if (ev.finish() != null) {
                        finished.set(true);
                        if (ev.finish().startsWith("error")) {
                            LOG.warn(
                                    "[{}] decode worker {} ended the stream with {}",
                                    g.requestId(),
                                    decode.id(),
                                    ev.finish());
                            return Flux.<GenerationEvent>error(new RequestFailure(
                                    RequestFailure.Kind.DECODE_FAILED,
                                    "the decode worker failed (request " + g.requestId()
                                            + "; the conductor's log says why)",
                                    null));
                        }
                        return done(
                                ended.apply(text.flush()),
                                ev.finish().equals("length") ? "length" : "stop",
                                promptLength,
                                produced.get(),
                                cached,
                                start);
                    }
                    if (ev.token() < 0 || ev.token() >= vocab) {
                        finished.set(true);
                        workers.cancel(decode.url(), reservation).subscribe();
                        return Flux.<GenerationEvent>error(new RequestFailure(
                                RequestFailure.Kind.BAD_WORKER_ANSWER,
                                "the decode worker sent token " + ev.token() + ", outside the vocabulary of " + vocab,
                                null));
                    }
                    if (model.tokenizer().isEndOfGeneration(ev.token())) {
                        finished.set(true);
                        return done(ended.apply(text.flush()), "stop", promptLength, produced.get(), cached, start);
                    }
                    long now = System.nanoTime();
                    if (produced.getAndIncrement() == 0) metrics.ttft.record(Duration.ofNanos(now - start));
                    else metrics.tbt.record(Duration.ofNanos(now - lastTokenAt.get()));
                    lastTokenAt.set(now);
                    String piece = text.add(ev.token());
                    if (said != null) {
                        said.append(piece);
                        saidIds.add(ev.token());
                    }
                    Flux<GenerationEvent> out = Flux.just(new GenerationEvent.Delta(piece, ev.token(), ev.logprob()));
                    if (text.stopped()) {
                        finished.set(true);
                        return out.concatWith(done("", "stop", promptLength, produced.get(), cached, start));
                    }
                    if (produced.get() >= g.maxTokens()) {
                        finished.set(true);
                        return out.concatWith(
                                done(ended.apply(text.flush()), "length", promptLength, produced.get(), cached, start));
                    }
                    return out;
                })
                .takeUntil(ev -> ev instanceof GenerationEvent.Done)
                .doFinally(signal -> {
                    decode.ended();
                    if (!finished.get()) {
                        LOG.info(
                                "[{}] ended early ({}); releasing reservation {} on {}",
                                g.requestId(),
                                signal,
                                reservation,
                                decode.url());
                        workers.cancel(decode.url(), reservation).subscribe();
                    }
                });
    }

    private Throwable asFailure(Throwable e, GenerationRequest g) {
        if (e instanceof RequestFailure) return e;
        LOG.warn("[{}] prefill failed: {}", g.requestId(), e.getMessage());
        if (e instanceof WorkerClient.WorkerException we && we.status() == 400) {
            return new RequestFailure(RequestFailure.Kind.REJECTED_BY_WORKER, we.workerMessage(), null);
        }
        if (e instanceof IllegalArgumentException) { // a worker's answer that does not validate
            return new RequestFailure(
                    RequestFailure.Kind.BAD_WORKER_ANSWER,
                    "the prefill worker's answer was refused (request " + g.requestId()
                            + "; the conductor's log says why)",
                    null);
        }
        return new RequestFailure(
                RequestFailure.Kind.PREFILL_FAILED,
                "the prefill failed (request " + g.requestId() + "; the conductor's log says why); retry",
                props.retryAfterSeconds());
    }

    private Flux<GenerationEvent> done(String tail, String reason, int prompt, int completion, int cached, long start) {
        metrics.e2e.record(Duration.ofNanos(System.nanoTime() - start));
        Flux<GenerationEvent> d = Flux.just(new GenerationEvent.Done(reason, prompt, completion, cached));
        return tail.isEmpty()
                ? d
                : Flux.<GenerationEvent>just(new GenerationEvent.Delta(tail, -1, 0f))
                        .concatWith(d);
    }

    private record Reserved(WorkerEndpoint endpoint, ReserveResponse response) {}

    /** Tries decode workers in order until one has room; 429 when none has. Each answer is checked. */
    private Mono<Reserved> reserve(
            long reservation,
            GenerationRequest g,
            List<WorkerEndpoint> candidates,
            int i,
            java.util.concurrent.atomic.AtomicReference<WorkerEndpoint> asked) {
        if (i >= candidates.size()) {
            metrics.rejected("kv_full").increment();
            return Mono.error(new RequestFailure(
                    RequestFailure.Kind.KV_FULL,
                    "every decode worker's KV cache is full; retry after " + props.retryAfterSeconds() + " s",
                    props.retryAfterSeconds()));
        }
        WorkerEndpoint w = candidates.get(i);
        asked.set(w);
        int prompt = g.promptTokens().length;
        return workers.reserve(w.url(), new ReserveRequest(reservation, prompt, g.maxTokens()), g.requestId())
                .map(r -> new Reserved(w, checked(r, reservation, prompt, w.url())))
                .switchIfEmpty(Mono.defer(() -> reserve(reservation, g, candidates, i + 1, asked)))
                .onErrorResume(e -> !(e instanceof RequestFailure), e -> {
                    LOG.warn("[{}] decode worker {} failed: {}", g.requestId(), w.url(), e.getMessage());
                    if (e instanceof IllegalArgumentException)
                        workers.cancel(w.url(), reservation).subscribe();
                    return i + 1 < candidates.size()
                            ? reserve(reservation, g, candidates, i + 1, asked)
                            : Mono.error(new RequestFailure(
                                    RequestFailure.Kind.WORKER_UNAVAILABLE,
                                    "no decode worker is reachable (request " + g.requestId()
                                            + "; the conductor's log says why); retry",
                                    props.retryAfterSeconds()));
                });
    }

    /** A decode worker's reservation answer, checked against what was asked. */
    private ReserveResponse checked(ReserveResponse r, long reservation, int promptTokens, String url) {
        int bt = props.blockTokens();
        int blocks = (promptTokens + bt - 1) / bt;
        String bad = null;
        if (r.reservationId() != reservation) bad = "reservation " + r.reservationId() + ", expected " + reservation;
        else if (r.blockTokens() != bt) bad = r.blockTokens() + " tokens per block, the conductor uses " + bt;
        else if (r.kv() == null || r.kv().segment() == null || r.kv().blockOffsets() == null) bad = "no KV target";
        else if (r.kv().blockOffsets().length != blocks)
            bad = r.kv().blockOffsets().length + " block offsets for " + promptTokens + " tokens, expected " + blocks;
        else if (r.kv().layerBytes() <= 0) bad = "layer bytes " + r.kv().layerBytes();
        if (bad != null)
            throw new IllegalArgumentException("decode worker " + url + " answered the reservation with " + bad);
        return r;
    }
}
