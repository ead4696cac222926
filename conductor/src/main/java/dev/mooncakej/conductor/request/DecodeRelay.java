package dev.mooncakej.conductor.request;

import dev.mooncakej.conductor.membership.WorkerMembership;
import dev.mooncakej.conductor.metrics.ConductorMetrics;
import dev.mooncakej.conductor.model.ServedModel;
import dev.mooncakej.conductor.workers.WorkerClient;
import dev.mooncakej.engine.sampling.TextAssembler;
import dev.mooncakej.kvcache.BlockKeys;
import dev.mooncakej.kvcache.wire.WorkerMessages.DecodeTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillResult;
import dev.mooncakej.kvcache.wire.WorkerMessages.SequenceKeys;
import dev.mooncakej.kvcache.wire.WorkerMessages.TokenEvent;
import dev.mooncakej.scheduler.WorkerEndpoint;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.function.IntFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.stereotype.Component;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Sinks;

/**
 * The request path's fourth phase: the first token (from the prefill), then the decode worker's
 * tokens, relayed as text events. Every token is checked against the vocabulary; stop sequences,
 * the end of generation and the token budget end the stream here; however it ends (done, stop, the
 * client gone, an error), the reservation is released on the decode worker, which frees or fences
 * its blocks. A chat answer's ids are remembered by their text, so the next turn reuses them.
 */
@Component
public class DecodeRelay {
    private static final Logger LOG = LoggerFactory.getLogger(DecodeRelay.class);

    private final ServedModel model;
    private final WorkerClient workers;
    private final ConductorMetrics metrics;
    private final AnswerTokens answers;

    private final WorkerMembership membership;

    public DecodeRelay(
            ServedModel model,
            WorkerClient workers,
            ConductorMetrics metrics,
            AnswerTokens answers,
            WorkerMembership membership) {
        this.membership = membership;
        this.model = model;
        this.workers = workers;
        this.metrics = metrics;
        this.answers = answers;
    }

    /**
     * The text events of {@code g}'s choices (prompt block keys {@code keys}) from their first tokens
     * on, decoded in {@code reservation} on {@code decode}; {@code produced} counts the tokens relayed
     * (all choices'). With {@code n} > 1 the decode worker's one stream carries every choice's tokens,
     * each tagged with its choice: it is split here, each choice relayed on its own (its own stop
     * sequences, text and end), and it starts once every choice's flux is subscribed; the reservation
     * is released once every choice has ended. {@code resume} gives how choice {@code c} goes on when
     * the decode worker is lost (null: it does not); each choice still running moves on its own.
     */
    List<Flux<GenerationEvent>> relay(
            GenerationRequest g,
            long[] keys,
            long reservation,
            WorkerEndpoint decode,
            PrefillResult pr,
            long start,
            AtomicInteger produced,
            IntFunction<Resume> resume) {
        int n = g.n();
        // the decode worker's count of streams it runs: up when the stream starts, down when it ends or moves
        decode.started();
        Runnable leave = once(decode::ended);
        int[] firsts = pr.firstTokens();
        float[] firstLps = pr.firstLogprobs();
        boolean allEnded = g.maxTokens() == 1;
        if (!allEnded) {
            allEnded = true;
            for (int t : firsts) allEnded &= model.tokenizer().isEndOfGeneration(t);
        }
        Flux<TokenEvent> source;
        if (allEnded) {
            workers.cancel(decode.url(), reservation).subscribe();
            source = Flux.empty();
        } else {
            DecodeTask dt = new DecodeTask(
                    reservation,
                    firsts[0],
                    g.promptTokens().length,
                    g.maxTokens(),
                    g.sampling(),
                    sequenceKeys(g, keys),
                    n > 1 ? Arrays.copyOfRange(firsts, 1, n) : null,
                    resume != null); // a draining worker hands the choices off (each goes on elsewhere)
            source = workers.decode(decode.url(), dt, g.requestId(), g.trace().traceparent());
            if (n == 1 && resume != null)
                source = resumable(g, source, firsts[0], decode, reservation, resume.apply(0), 0, leave);
        }
        Split split = n == 1 ? null : new Split(source, n);
        AtomicInteger open = new AtomicInteger(n);
        List<Stream> streams = new ArrayList<>();
        List<Flux<GenerationEvent>> out = new ArrayList<>();
        for (int c = 0; c < n; c++) {
            int choice = c;
            Stream s = new Stream(g, reservation, decode, pr.cachedTokens(), start, produced, choice);
            streams.add(s);
            Flux<TokenEvent> mine = n == 1 ? source : split.choice(choice);
            if (n > 1 && resume != null && !allEnded) // each choice moves on its own when its worker is lost
            mine = resumable(g, mine, firsts[c], decode, reservation, resume.apply(choice), 0, leave);
            out.add(Flux.concat(Flux.just(TokenEvent.token(firsts[c], firstLps[c])), mine)
                    .concatMap(s::on)
                    .takeUntil(ev -> ev instanceof GenerationEvent.Done)
                    .doFinally(signal -> {
                        if (!s.finished) LOG.info("[{}] choice {} ended early ({})", g.logId(), choice, signal);
                        if (split != null) split.left(choice);
                        if (open.decrementAndGet() > 0) return;
                        leave.run();
                        if (streams.stream().anyMatch(x -> !x.finished)) {
                            LOG.info(
                                    "[{}] ended early; releasing reservation {} on {}",
                                    g.logId(),
                                    reservation,
                                    decode.url());
                            workers.cancel(decode.url(), reservation).subscribe();
                        }
                    }));
        }
        return out;
    }

    /** How a stream whose decode worker was lost goes on elsewhere (the request path places it again). */
    @FunctionalInterface
    interface Resume {
        /**
         * The token events after {@code generated} (every token relayed so far, the first included),
         * from a new placement: its first token (the next of the answer), then its decode worker's.
         */
        Flux<TokenEvent> after(int[] generated, int attempt);
    }

    /**
     * A moved stream's token events on its new placement ({@code g}: the prompt and the tokens relayed
     * before; its prefill answered {@code pr}): the first token, then the decode worker's, themselves
     * moved again if that worker is lost too (up to {@link #MAX_MIGRATIONS} moves in all). The
     * reservation is released if the stream ends before the worker ended it; {@code produced} counts
     * the tokens.
     */
    Flux<TokenEvent> continuation(
            GenerationRequest g,
            long[] keys,
            long reservation,
            WorkerEndpoint decode,
            PrefillResult pr,
            AtomicInteger produced,
            Resume resume,
            int attempt) {
        TokenEvent first = TokenEvent.token(pr.firstToken(), pr.firstLogprob());
        if (model.tokenizer().isEndOfGeneration(pr.firstToken()) || g.maxTokens() == 1) {
            workers.cancel(decode.url(), reservation).subscribe();
            return Flux.just(first).doOnNext(ev -> produced.incrementAndGet());
        }
        DecodeTask dt = new DecodeTask(
                reservation,
                pr.firstToken(),
                g.promptTokens().length,
                g.maxTokens(),
                g.sampling(),
                sequenceKeys(g, keys),
                null,
                attempt < MAX_MIGRATIONS,
                drawn(g));
        decode.started();
        Runnable leave = once(decode::ended);
        return counted(
                Flux.concat(
                        Flux.just(first),
                        resumable(
                                g,
                                workers.decode(
                                        decode.url(),
                                        dt,
                                        g.requestId(),
                                        g.trace().traceparent()),
                                pr.firstToken(),
                                decode,
                                reservation,
                                resume,
                                attempt,
                                leave)),
                produced,
                decode,
                reservation,
                leave);
    }

    /**
     * A placement's events, its tokens counted in {@code produced}; however they end, the placement
     * leaves {@code decode}'s count, and a stream the worker did not end is released there.
     */
    private Flux<TokenEvent> counted(
            Flux<TokenEvent> events, AtomicInteger produced, WorkerEndpoint decode, long reservation, Runnable leave) {
        boolean[] ended = {false};
        return events.doOnNext(ev -> {
                    if (ev.finish() != null) ended[0] = true;
                    else produced.incrementAndGet();
                })
                .doFinally(sig -> {
                    leave.run();
                    if (!ended[0]) workers.cancel(decode.url(), reservation).subscribe();
                });
    }

    /** {@code r} run the first time the result is, never again. */
    static Runnable once(Runnable r) {
        AtomicBoolean done = new AtomicBoolean();
        return () -> {
            if (done.compareAndSet(false, true)) r.run();
        };
    }

    /**
     * A moved stream's token events from a decode worker that takes it itself ({@code g}: the prompt and
     * the tokens relayed before; reserved in {@code reservation} on {@code decode}): it reads the full
     * blocks of that history the KV pool holds, computes only the tokens after them (the partial last
     * block, and any block not yet written behind) and draws the next token, the stream's first event; from
     * there as {@link #continuation}, itself moved again if that worker is lost. {@code onFirst} runs at
     * the first event. Anything that fails before it is {@link NotTaken} (the reservation released):
     * the request path then places the stream through a prefill worker.
     */
    Flux<TokenEvent> taken(
            GenerationRequest g,
            long[] keys,
            long reservation,
            WorkerEndpoint decode,
            AtomicInteger produced,
            Resume resume,
            int attempt,
            Runnable onFirst) {
        int[] p = g.promptTokens();
        DecodeTask dt = new DecodeTask(
                reservation,
                0,
                p.length,
                g.maxTokens(),
                g.sampling(),
                sequenceKeys(g, keys),
                null,
                attempt < MAX_MIGRATIONS,
                drawn(g),
                p);
        AtomicBoolean first = new AtomicBoolean();
        decode.started();
        Runnable leave = once(decode::ended);
        Flux<TokenEvent> source = workers.decode(
                        decode.url(), dt, g.requestId(), g.trace().traceparent())
                .doOnNext(ev -> {
                    if (first.compareAndSet(false, true)) onFirst.run();
                })
                .onErrorMap(e -> !first.get() && !(e instanceof RequestFailure), e -> new NotTaken(decode.id(), e));
        return counted(
                resumable(g, source, -1, decode, reservation, resume, attempt, leave),
                produced,
                decode,
                reservation,
                leave);
    }

    /** A decode worker did not take a moved stream from the pool (before its first token): a prefill places it. */
    static final class NotTaken extends RuntimeException {
        NotTaken(String worker, Throwable why) {
            super("decode worker " + worker + " did not take the stream from the KV pool: " + why.getMessage(), why);
        }
    }

    /** How many times one stream may move to another decode worker. */
    static final int MAX_MIGRATIONS = 2;

    /** The finish of a stream a draining decode worker handed back to be continued elsewhere. */
    static final String MOVED = "moved";

    /** A draining decode worker ended the stream early for it to go on elsewhere. */
    private static final class HandedOff extends RuntimeException {
        HandedOff(String worker) {
            super("decode worker " + worker + " is draining and handed the stream back", null, false, false);
        }
    }

    /**
     * {@code source} (the decode worker's events after {@code first}), going on elsewhere if it fails
     * for a reason other than a bad answer (the worker died, its connection or channel broke, it
     * stalled past the stall deadline): every token relayed so far is known here, so the new placement
     * prefills the prompt and them (its prefix from the prefill worker's cache) and decodes on from the
     * exact next token; the client's stream goes on, nothing lost or repeated. The lost worker's
     * reservation is released (a no-op if it is gone) and {@code left} runs: the stream no longer
     * counts on that worker while it runs elsewhere.
     */
    private Flux<TokenEvent> resumable(
            GenerationRequest g,
            Flux<TokenEvent> source,
            int first,
            WorkerEndpoint decode,
            long reservation,
            Resume resume,
            int attempt,
            Runnable left) {
        List<Integer> seen = new ArrayList<>();
        if (first >= 0) seen.add(first); // a stream taken from the pool: its first token is the source's first
        return source.<TokenEvent>handle((ev, sink) -> {
                    if (MOVED.equals(ev.finish())) sink.error(new HandedOff(decode.id()));
                    else sink.next(ev);
                })
                .doOnNext(ev -> {
                    if (ev.finish() == null) seen.add(ev.token());
                })
                .onErrorResume(
                        e -> !(e instanceof RequestFailure) && !(e instanceof NotTaken) && attempt < MAX_MIGRATIONS,
                        e -> {
                            boolean drained = e instanceof HandedOff;
                            LOG.warn(
                                    "[{}] decode worker {} {} after {} tokens ({}): moving the stream",
                                    g.logId(),
                                    decode.id(),
                                    drained ? "drains" : "lost",
                                    seen.size(),
                                    e.toString());
                            metrics.migrations(drained ? "drained" : "lost").increment();
                            if (drained) membership.draining(decode.url()); // before its deregistration arrives
                            workers.cancel(decode.url(), reservation).subscribe();
                            left.run();
                            int[] generated =
                                    seen.stream().mapToInt(Integer::intValue).toArray();
                            return resume.after(generated, attempt + 1)
                                    .onErrorMap(x -> !(x instanceof RequestFailure), x -> {
                                        LOG.warn("[{}] the stream could not be moved: {}", g.logId(), x.toString());
                                        return new RequestFailure(
                                                RequestFailure.Kind.DECODE_FAILED,
                                                "the decode worker was lost and the stream could not be moved (request "
                                                        + g.requestId() + "; the conductor's log says why)",
                                                null);
                                    });
                        });
    }

    /**
     * The decode worker's one stream of several choices, split by choice: subscribed once, when the
     * first choice is, each event handed to its choice's buffer (dropped once that choice has left),
     * and cancelled when every choice has left. A choice that ends at its first token never subscribes,
     * and the others still run.
     */
    private static final class Split {
        private final Flux<TokenEvent> source;
        private final List<Sinks.Many<TokenEvent>> sinks = new ArrayList<>();
        private final AtomicIntegerArray gone;
        private final AtomicInteger staying;
        private final AtomicBoolean subscribed = new AtomicBoolean();
        private volatile Disposable upstream;

        Split(Flux<TokenEvent> source, int n) {
            this.source = source;
            this.gone = new AtomicIntegerArray(n);
            this.staying = new AtomicInteger(n);
            for (int i = 0; i < n; i++) sinks.add(Sinks.many().unicast().onBackpressureBuffer());
        }

        Flux<TokenEvent> choice(int c) {
            return sinks.get(c).asFlux().doOnSubscribe(s -> connect());
        }

        private void connect() {
            if (!subscribed.compareAndSet(false, true)) return;
            upstream = source.subscribe(
                    ev -> {
                        int c = ev.choice();
                        if (c < 0 || c >= sinks.size()) {
                            fail(new RequestFailure(
                                    RequestFailure.Kind.BAD_WORKER_ANSWER,
                                    "the decode worker sent choice " + c + " of " + sinks.size(),
                                    null));
                            return;
                        }
                        if (gone.get(c) == 0) sinks.get(c).tryEmitNext(ev);
                    },
                    this::fail,
                    () -> sinks.forEach(Sinks.Many::tryEmitComplete));
            if (staying.get() == 0) upstream.dispose();
        }

        private void fail(Throwable e) {
            for (var sink : sinks) sink.tryEmitError(e);
            Disposable d = upstream;
            if (d != null) d.dispose();
        }

        /** Choice {@code c} has ended or its client left: its events are dropped; the last one out cancels. */
        void left(int c) {
            if (gone.getAndSet(c, 1) != 0) return;
            if (staying.decrementAndGet() == 0) {
                Disposable d = upstream;
                if (d != null) d.dispose();
            }
        }
    }

    /**
     * A moved stream's tokens drawn before (its prompt's last {@code resumeAt}), which the decode
     * worker's constraint replays under a schema; null otherwise.
     */
    private static int[] drawn(GenerationRequest g) {
        int at = g.sampling().resumeAt();
        if (at == 0 || g.sampling().schema() == null) return null;
        int[] p = g.promptTokens();
        return Arrays.copyOfRange(p, p.length - at, p.length);
    }

    /**
     * What the decode worker needs to key a finished sequence's blocks for the KV pool (the next turn
     * reuses them): the prompt's keys as computed for the prefill, and the tokens past its last full block.
     */
    private SequenceKeys sequenceKeys(GenerationRequest g, long[] keys) {
        BlockKeys bk = model.blockKeys(g.salt());
        int[] tokens = g.promptTokens();
        return new SequenceKeys(
                bk.seed(),
                bk.blockTokens(),
                keys,
                Arrays.copyOfRange(tokens, keys.length * bk.blockTokens(), tokens.length));
    }

    /** One relayed stream's state: the text so far, the chat answer's ids, whether it has ended. */
    private final class Stream {
        final GenerationRequest g;
        final long reservation;
        final WorkerEndpoint decode;
        final int cached;
        final long start;
        final AtomicInteger produced;
        final int vocab = model.tokenizer().vocabSize();
        final TextAssembler text;
        final StringBuilder said;
        final List<Integer> saidIds;
        final int choice;
        /** This choice's tokens (the request's are counted in {@code produced}). */
        int mine;

        volatile boolean finished;
        long lastTokenAt;

        Stream(
                GenerationRequest g,
                long reservation,
                WorkerEndpoint decode,
                int cached,
                long start,
                AtomicInteger produced,
                int choice) {
            this.choice = choice;
            this.g = g;
            this.reservation = reservation;
            this.decode = decode;
            this.cached = cached;
            this.start = start;
            this.produced = produced;
            this.text = new TextAssembler(model.tokenizer(), g.stop());
            this.said = g.chat() ? new StringBuilder() : null;
            this.saidIds = g.chat() ? new ArrayList<>() : null;
        }

        /** The events for one token event of the decode worker (none once the stream has ended). */
        Flux<GenerationEvent> on(TokenEvent ev) {
            if (finished) return Flux.empty();
            if (ev.finish() != null) return finish(ev.finish());
            if (ev.token() < 0 || ev.token() >= vocab) {
                finished = true;
                workers.cancel(decode.url(), reservation).subscribe();
                return Flux.error(new RequestFailure(
                        RequestFailure.Kind.BAD_WORKER_ANSWER,
                        "the decode worker sent token " + ev.token() + ", outside the vocabulary of " + vocab,
                        null));
            }
            if (model.tokenizer().isEndOfGeneration(ev.token())) {
                finished = true;
                return done(ended(text.flush()), "stop");
            }
            long now = System.nanoTime();
            if (produced.getAndIncrement() == 0) {
                metrics.ttft.record(Duration.ofNanos(now - start));
                metrics.vllm.ttft.record(Duration.ofNanos(now - start));
            } else if (mine > 0) {
                metrics.tbt.record(Duration.ofNanos(now - lastTokenAt));
                metrics.vllm.itl.record(Duration.ofNanos(now - lastTokenAt));
            }
            metrics.vllm.generationTokens.increment();
            mine++;
            lastTokenAt = now;
            String piece = text.add(ev.token());
            if (said != null) {
                said.append(piece);
                saidIds.add(ev.token());
            }
            Flux<GenerationEvent> out = Flux.just(new GenerationEvent.Delta(piece, ev.token(), ev.logprob()));
            if (text.stopped()) {
                finished = true;
                return out.concatWith(done("", "stop"));
            }
            if (mine >= g.maxTokens()) {
                finished = true;
                return out.concatWith(done(ended(text.flush()), "length"));
            }
            return out;
        }

        /** The decode worker ended the stream ({@code finish}: length, stop, or error...). */
        private Flux<GenerationEvent> finish(String finish) {
            finished = true;
            if (finish.startsWith("error") || finish.equals(MOVED)) { // a stream not movable is never handed off
                LOG.warn("[{}] decode worker {} ended choice {} with {}", g.logId(), decode.id(), choice, finish);
                return Flux.error(new RequestFailure(
                        RequestFailure.Kind.DECODE_FAILED,
                        "the decode worker failed (request " + g.requestId() + "; the conductor's log says why)",
                        null));
            }
            return done(ended(text.flush()), finish.equals("length") ? "length" : "stop");
        }

        /** The answer's last text: a chat answer is remembered with its ids. */
        private String ended(String tail) {
            if (said != null && choice == 0)
                answers.remember(
                        g.salt(),
                        said.append(tail).toString(),
                        saidIds.stream().mapToInt(Integer::intValue).toArray());
            return tail;
        }

        private Flux<GenerationEvent> done(String tail, String reason) {
            metrics.e2e.record(Duration.ofNanos(System.nanoTime() - start));
            metrics.vllm.e2e.record(Duration.ofNanos(System.nanoTime() - start));
            Flux<GenerationEvent> d =
                    Flux.just(new GenerationEvent.Done(reason, g.promptTokens().length, mine, cached));
            return tail.isEmpty()
                    ? d
                    : Flux.<GenerationEvent>just(new GenerationEvent.Delta(tail, -1, 0f))
                            .concatWith(d);
        }
    }
}
