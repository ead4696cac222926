package dev.mooncakej.conductor.request;

import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.conductor.membership.WorkerMembership;
import dev.mooncakej.conductor.metrics.ConductorMetrics;
import dev.mooncakej.conductor.model.ServedModel;
import dev.mooncakej.conductor.workers.WorkerClient;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillResult;
import dev.mooncakej.kvcache.wire.WorkerMessages.Sampling;
import dev.mooncakej.kvcache.wire.WorkerMessages.TokenEvent;
import dev.mooncakej.scheduler.LiveScheduler;
import dev.mooncakej.scheduler.WorkerEndpoint;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.IntFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.stereotype.Service;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * The request path, phase by phase: {@link Admission} (this conductor leads, workers are admitted,
 * the scheduler's decision), {@link Placement} (KV for prompt plus max tokens reserved on a decode
 * worker), {@link PrefillCall} (the chosen prefill worker writes the KV into that reservation and
 * returns the first token), {@link DecodeRelay} (the decode worker's tokens relayed as text), with
 * {@link SchedulerFeedback} taking what each phase teaches. The prompt's block keys are computed once,
 * here. Every value a worker returns is checked before use; a bad one fails this request alone, as a
 * {@link RequestFailure} that only {@code api/} renders as HTTP. Whatever ends the request (done, stop
 * sequence, client gone, error), the reservation is cancelled on the decode worker, which frees or
 * fences its blocks.
 */
@Service
public class RequestPath {
    private static final Logger LOG = LoggerFactory.getLogger(RequestPath.class);

    private final ServedModel model;
    private final WorkerClient workers;
    private final Admission admission;
    private final Placement placement;
    private final PrefillCall prefillCall;
    private final DecodeRelay relay;
    private final SchedulerFeedback feedback;
    private final WorkerMembership membership;
    private final ConductorMetrics metrics;
    private final ConductorProperties props;

    public RequestPath(
            ServedModel model,
            WorkerClient workers,
            Admission admission,
            Placement placement,
            PrefillCall prefillCall,
            DecodeRelay relay,
            SchedulerFeedback feedback,
            WorkerMembership membership,
            ConductorMetrics metrics,
            ConductorProperties props) {
        this.props = props;
        this.model = model;
        this.workers = workers;
        this.admission = admission;
        this.placement = placement;
        this.prefillCall = prefillCall;
        this.relay = relay;
        this.feedback = feedback;
        this.membership = membership;
        this.metrics = metrics;
    }

    /**
     * Admits, places, reserves KV, runs the prefill and returns, once the first token is known, the
     * flux of text events (starting with that token). Failures up to that point (overloaded, no
     * worker, a bad worker answer) fail the Mono, so the HTTP status can still say so.
     */
    public Mono<Generation> generate(GenerationRequest g) {
        long start = System.nanoTime();
        long[] keys = model.blockKeys(g.salt()).keys(g.promptTokens());
        LiveScheduler.Choice choice;
        try {
            choice = admission.admit(g, keys);
        } catch (RequestFailure refused) {
            g.trace().tag("mooncakej.admission", "rejected").tag("mooncakej.admission.reason", refused.getMessage());
            return Mono.error(refused);
        }
        // waiting (vllm:num_requests_waiting) until its first token, then running until its last choice ends
        return Mono.defer(
                () -> { // counted from subscription: a request never run is never waiting
                    AtomicBoolean left = new AtomicBoolean();
                    metrics.waiting.incrementAndGet();
                    Runnable leave = () -> {
                        if (left.compareAndSet(false, true)) metrics.waiting.decrementAndGet();
                    };
                    return land(g, keys, choice, start)
                            .map(l -> {
                                leave.run();
                                return l.flight().started(l.placed());
                            })
                            .doFinally(s -> leave.run());
                });
    }

    /** The scheduler's decision on the request's span (a later placement's replaces an earlier one's). */
    private void traceDecision(GenerationRequest g, LiveScheduler.Choice choice) {
        if (!g.trace().on()) return; // untraced: no attribute strings built on the request path
        var d = choice.decision();
        g.trace()
                .tag("mooncakej.admission", "admitted")
                .tag("mooncakej.scheduler.policy", props.policy())
                .tag("mooncakej.scheduler.prefill", choice.prefill().id())
                .tag(
                        "mooncakej.scheduler.decode_candidates",
                        String.join(
                                ",",
                                choice.decodeCandidates().stream()
                                        .map(WorkerEndpoint::id)
                                        .toList()))
                .tag("mooncakej.scheduler.prefix_blocks", d.prefixBlocks())
                .tag("mooncakej.scheduler.fetch_blocks", d.fetchBlocks())
                .tag("mooncakej.ttft.predicted_seconds", d.ttft())
                .tag("mooncakej.tbt.predicted_seconds", d.tbt())
                .tag("mooncakej.scheduler.queue_seconds", d.queueSeconds());
    }

    /** A request placed: the flight that landed, and where. */
    private record Landed(Flight flight, Flight.Placed placed) {}

    /**
     * Reserves and prefills {@code g} where {@code choice} says; a prefill that failed in a way another
     * worker may not (past its deadline, its worker lost or draining) has been aborted on both sides
     * (the worker stops its writes, the reservation is cancelled and its blocks fenced until the writer
     * stopped), and the request is admitted and placed once more, away from that worker; a second
     * failure is the client's.
     */
    private Mono<Landed> land(GenerationRequest g, long[] keys, LiveScheduler.Choice choice, long start) {
        Flight first = new Flight(g, keys, choice, start, true);
        return first.placed().map(p -> new Landed(first, p)).onErrorResume(Replace.class, r -> {
            metrics.replaced(r.reason).increment();
            LOG.warn("[{}] prefill on {} failed ({}): placing the request again", g.logId(), r.worker, r.reason);
            if (r.reason.equals("handed_back")) membership.draining(r.worker);
            else if (r.sideline) membership.sideline(r.worker);
            LiveScheduler.Choice again;
            try {
                again = admission.admit(g, keys);
            } catch (RequestFailure refused) {
                return Mono.error(refused);
            }
            Flight second = new Flight(g, keys, again, start, false);
            return second.placed().map(p -> new Landed(second, p));
        });
    }

    /** A prefill to place again: why, on which worker it failed, and whether that worker leaves scheduling. */
    private static final class Replace extends RuntimeException {
        final String reason, worker;
        final boolean sideline;

        Replace(PrefillCall.Replacement r, String worker) {
            super(r.reason() + " on " + worker, null, false, false);
            this.reason = r.reason();
            this.sideline = r.sideline();
            this.worker = worker;
        }
    }

    /**
     * The rest of choice {@code choice} of {@code g}'s answer after {@code generated} (every token of it
     * relayed so far), placed anew as a request of one choice (under that choice's seed) because its
     * decode worker was lost: the prompt and those tokens are prefilled (the prompt's
     * blocks from the prefill worker's cache) on a decode worker the scheduler picks, which decodes on
     * from the exact next token (a greedy or seeded stream goes on as it would have: the seeded
     * generator continues where it stood, a schema's constraint replays the tokens drawn; an unseeded
     * one draws anew). Empty when nothing is left to generate.
     */
    private Flux<TokenEvent> resumed(GenerationRequest g, int choice, int[] generated, int attempt) {
        int[] prompt = Arrays.copyOf(g.promptTokens(), g.promptTokens().length + generated.length);
        System.arraycopy(generated, 0, prompt, g.promptTokens().length, generated.length);
        int left = g.maxTokens() - generated.length;
        if (left < 1 || prompt.length >= model.contextLength()) return Flux.empty();
        Sampling s = g.sampling();
        Sampling next = new Sampling(
                s.temperature(),
                s.topP(),
                s.topK(),
                s.seedOfChoice(choice), // choice c of n samples under its own seed; on its own, that is its seed
                s.logprobs(),
                s.schema(), // its constraint replays the tokens drawn before (the prefill's and decode's both)
                s.strict(),
                s.logitBias(),
                Math.max(0, s.minTokens() - generated.length),
                s.ignoreEos(),
                generated.length); // the seeded generator goes on where it stood: the same draws as undisturbed
        GenerationRequest moved = new GenerationRequest(
                g.chat(),
                g.model(),
                prompt,
                left,
                next,
                List.of(), // the stop sequences are watched by the stream being continued
                false,
                false,
                g.requestId() + (g.n() > 1 ? "-choice-" + choice : "") + "-moved-" + attempt,
                g.salt(),
                null,
                null,
                1,
                false,
                g.trace()); // a moved stream is part of the request's trace
        g.trace().tag("mooncakej.stream.moves", attempt + 1);
        long[] keys = model.blockKeys(g.salt()).keys(prompt);
        DecodeRelay.Resume onward = (more, a) -> {
            int[] all = Arrays.copyOf(generated, generated.length + more.length);
            System.arraycopy(more, 0, all, generated.length, more.length);
            return resumed(g, choice, all, a);
        };
        if (!props.takeFromPool() || keys.length == 0) return viaPrefill(moved, keys, onward, attempt, "prefill");
        // the new decode worker takes the history from the KV pool itself; if it cannot, a prefill worker does
        LiveScheduler.Choice placed;
        try {
            placed = admission.admit(moved, keys);
        } catch (RequestFailure refused) {
            return Flux.error(refused);
        }
        return new Flight(moved, keys, placed, System.nanoTime(), false)
                .taken(onward, attempt)
                .onErrorResume(DecodeRelay.NotTaken.class, e -> {
                    LOG.info("[{}] {}: placing it through a prefill worker", g.logId(), e.getMessage());
                    return viaPrefill(moved, keys, onward, attempt, "prefill_after_take");
                });
    }

    /** A moved stream placed through a prefill worker, which fetches its history from the pool and writes it. */
    private Flux<TokenEvent> viaPrefill(
            GenerationRequest moved, long[] keys, DecodeRelay.Resume next, int attempt, String via) {
        LiveScheduler.Choice placed;
        try {
            placed = admission.admit(moved, keys);
        } catch (RequestFailure refused) {
            return Flux.error(refused);
        }
        return land(moved, keys, placed, System.nanoTime()).flatMapMany(l -> {
            metrics.placedAgain(via).increment();
            return l.flight().continued(l.placed(), next, attempt);
        });
    }

    /** One admitted request on its way: its reservation, the choice as it stands, what was accounted. */
    private final class Flight {
        final GenerationRequest g;
        final long[] keys;
        final long start;
        final long scheduled = System.nanoTime();
        final long reservation = ThreadLocalRandom.current().nextLong() & Long.MAX_VALUE;
        /** The choice as it stands: the reservation may land on another decode worker than decided. */
        final AtomicReference<LiveScheduler.Choice> current;

        final AtomicBoolean accounted = new AtomicBoolean(), called = new AtomicBoolean();
        /** The decode worker being asked for the reservation. */
        final AtomicReference<WorkerEndpoint> asked = new AtomicReference<>();

        /** Whether a prefill that fails in a way another worker may not is placed again ({@link Replace}). */
        final boolean mayReplace;

        Flight(GenerationRequest g, long[] keys, LiveScheduler.Choice choice, long start, boolean mayReplace) {
            traceDecision(g, choice); // the last placement's (placed again, or a stream moved) is what ran
            this.g = g;
            this.keys = keys;
            this.start = start;
            this.current = new AtomicReference<>(choice);
            this.mayReplace = mayReplace;
        }

        /** Where the request landed: KV reserved on {@code decode}, its prefill answered {@code pr}. */
        private record Placed(LiveScheduler.Choice ch, WorkerEndpoint decode, PrefillResult pr, long reserved) {}

        /** Reserves KV, runs the prefill; on a failure releases what it holds. */
        private Mono<Placed> placed() {
            return placement
                    .reserve(reservation, g, current.get().decodeCandidates(), asked)
                    .doOnError(e -> prefillFailed())
                    .doOnCancel(this::reserveCancelled)
                    .flatMap(res -> {
                        long reserved = System.nanoTime();
                        WorkerEndpoint decode = res.endpoint();
                        LiveScheduler.Choice ch = reservedOn(decode);
                        called.set(true);
                        return prefillCall
                                .call(g, ch, reservation, keys, res.response())
                                .doOnCancel(() -> {
                                    prefillFailed();
                                    workers.cancel(decode.url(), reservation).subscribe();
                                })
                                .onErrorResume(e -> {
                                    prefillFailed();
                                    RequestFailure failure = prefillCall.failure(e, g);
                                    PrefillCall.Replacement again = mayReplace ? PrefillCall.replacement(e) : null;
                                    // the reservation goes first: fenced until the writer stopped, or released
                                    return workers.cancel(decode.url(), reservation)
                                            .then(Mono.error(
                                                    again == null
                                                            ? failure
                                                            : new Replace(
                                                                    again,
                                                                    ch.prefill().url())));
                                })
                                .map(pr -> new Placed(ch, decode, pr, reserved));
                    });
        }

        /** A moved stream's placement answered: its token events from the new first token on. */
        private Flux<TokenEvent> continued(Placed p, DecodeRelay.Resume resume, int attempt) {
            accounted.set(true);
            double decodeStart = feedback.prefilled(
                    g, p.ch(), p.decode(), p.pr(), new SchedulerFeedback.Marks(start, scheduled, p.reserved(), start));
            AtomicInteger produced = new AtomicInteger();
            int prompt = g.promptTokens().length;
            AtomicBoolean settled = new AtomicBoolean();
            DecodeRelay.Resume moves = (generated, a) -> {
                settle(settled, p.ch(), decodeStart, 0); // moved again: it leaves this worker's load now
                return resume.after(generated, a);
            };
            return relay.continuation(g, keys, reservation, p.decode(), p.pr(), produced, moves, attempt)
                    .doFinally(sig -> settle(settled, p.ch(), decodeStart, produced.get()));
        }

        /**
         * The decode worker's share of the scheduler's load ends once: when the stream ends there
         * (its {@code produced} tokens teach the TBT fit), or when it moves away (nothing learnt from a
         * worker that was lost or stalled); a moved stream counts only where it runs.
         */
        private void settle(AtomicBoolean settled, LiveScheduler.Choice ch, double decodeStart, int produced) {
            if (settled.compareAndSet(false, true))
                feedback.decodeEnded(ch, g.promptTokens().length, decodeStart, produced);
        }

        /**
         * A moved stream taken from the KV pool by the decode worker it reserves on (no prefill): its
         * token events, the first drawn by that worker. Fails with {@link DecodeRelay.NotTaken} before
         * the first event when that worker could not take it (the reservation released; nothing
         * accounted stays), so the caller places it through a prefill worker.
         */
        private Flux<TokenEvent> taken(DecodeRelay.Resume resume, int attempt) {
            return placement
                    .reserve(reservation, g, current.get().decodeCandidates(), asked)
                    .doOnError(e -> prefillFailed())
                    .doOnCancel(this::reserveCancelled)
                    .flatMapMany(res -> {
                        WorkerEndpoint decode = res.endpoint();
                        LiveScheduler.Choice ch = reservedOn(decode);
                        AtomicInteger produced = new AtomicInteger();
                        AtomicBoolean settled = new AtomicBoolean(), began = new AtomicBoolean();
                        double[] decodeStart = {0};
                        DecodeRelay.Resume moves = (generated, a) -> {
                            settle(settled, ch, decodeStart[0], 0); // moved again: it leaves this worker's load now
                            return resume.after(generated, a);
                        };
                        Runnable onFirst = () -> {
                            accounted.set(true);
                            decodeStart[0] = feedback.takenOnDecode(ch, g.promptTokens().length);
                            began.set(true);
                            metrics.placedAgain("pool").increment();
                        };
                        return relay.taken(g, keys, reservation, decode, produced, moves, attempt, onFirst)
                                .doOnError(DecodeRelay.NotTaken.class, e -> prefillFailed())
                                .doFinally(sig -> {
                                    if (began.get()) settle(settled, ch, decodeStart[0], produced.get());
                                });
                    });
        }

        /** The decode worker that reserved: the choice follows it (it may be a fallback). */
        private LiveScheduler.Choice reservedOn(WorkerEndpoint decode) {
            LiveScheduler.Choice ch = feedback.reservedOn(current.get(), decode);
            current.set(ch);
            return ch;
        }

        /** The prefill answered: feedback, then the relay of the decode worker's tokens. */
        private Generation started(Placed p) {
            return started(p.ch(), p.decode(), p.pr(), p.reserved());
        }

        private Generation started(LiveScheduler.Choice ch, WorkerEndpoint decode, PrefillResult pr, long reserved) {
            accounted.set(true);
            g.trace()
                    .tag("mooncakej.ttft.actual_seconds", (System.nanoTime() - start) / 1e9)
                    .tag("mooncakej.placed.prefill", ch.prefill().id())
                    .tag("mooncakej.placed.decode", decode.id())
                    .tag("mooncakej.tokens.prompt", g.promptTokens().length)
                    .tag("mooncakej.prefix.cached_tokens", pr.cachedTokens())
                    .tag("mooncakej.prefix.pool_tokens", pr.fetchedTokens())
                    .tag("mooncakej.prefix.local_tokens", pr.cachedTokens() - pr.fetchedTokens());
            double decodeStart = feedback.prefilled(
                    g, ch, decode, pr, new SchedulerFeedback.Marks(start, scheduled, reserved, System.nanoTime()));
            AtomicInteger produced = new AtomicInteger(), open = new AtomicInteger(g.n());
            metrics.running.incrementAndGet();
            // a stream whose decode worker is lost moves, its constraint's state too; each of n choices on its own
            AtomicBoolean settled = new AtomicBoolean();
            IntFunction<DecodeRelay.Resume> resume = c -> (generated, attempt) -> {
                settle(settled, ch, decodeStart, 0);
                return resumed(g, c, generated, attempt);
            };
            List<Flux<GenerationEvent>> choices =
                    relay.relay(g, keys, reservation, decode, pr, start, produced, resume).stream()
                            .map(f -> f.doFinally(sig -> {
                                if (open.decrementAndGet() > 0) return; // the last choice to end reports the request's
                                metrics.running.decrementAndGet();
                                // the decode-length estimate learns a choice's length (n of them ran side by side)
                                settle(settled, ch, decodeStart, produced.get() / g.n());
                                LOG.debug(
                                        "[{}] {} tokens relayed ({} us since the request came)",
                                        g.logId(),
                                        produced.get(),
                                        (System.nanoTime() - start) / 1000);
                            }))
                            .toList();
            return new Generation(ch.prefill().id(), decode.id(), choices, pr.promptLogprobs());
        }

        /** One that never completed its prefill leaves that queue's estimate (once). */
        private void prefillFailed() {
            if (accounted.compareAndSet(false, true))
                feedback.prefillFailed(current.get(), g.promptTokens().length, called.get());
        }

        /** The client left while a decode worker was reserving: that reservation must not linger. */
        private void reserveCancelled() {
            prefillFailed();
            WorkerEndpoint w = asked.get();
            if (w != null) workers.cancel(w.url(), reservation).subscribe();
        }
    }
}
