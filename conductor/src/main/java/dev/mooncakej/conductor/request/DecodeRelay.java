package dev.mooncakej.conductor.request;

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
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.stereotype.Component;
import reactor.core.publisher.Flux;

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

    public DecodeRelay(ServedModel model, WorkerClient workers, ConductorMetrics metrics, AnswerTokens answers) {
        this.model = model;
        this.workers = workers;
        this.metrics = metrics;
        this.answers = answers;
    }

    /**
     * The text events of {@code g} (prompt block keys {@code keys}) from its first token on, decoded in
     * {@code reservation} on {@code decode}; {@code produced} counts the tokens relayed.
     */
    Flux<GenerationEvent> relay(
            GenerationRequest g,
            long[] keys,
            long reservation,
            WorkerEndpoint decode,
            PrefillResult pr,
            long start,
            AtomicInteger produced) {
        TokenEvent first = TokenEvent.token(pr.firstToken(), pr.firstLogprob());
        Flux<TokenEvent> source;
        if (model.tokenizer().isEndOfGeneration(pr.firstToken()) || g.maxTokens() == 1) {
            workers.cancel(decode.url(), reservation).subscribe();
            source = Flux.just(first);
        } else {
            DecodeTask dt = new DecodeTask(
                    reservation,
                    pr.firstToken(),
                    g.promptTokens().length,
                    g.maxTokens(),
                    g.sampling(),
                    sequenceKeys(g, keys));
            source = Flux.concat(Flux.just(first), workers.decode(decode.url(), dt, g.requestId()));
        }
        Stream s = new Stream(g, reservation, decode, pr.cachedTokens(), start, produced);
        decode.started();
        return source.concatMap(s::on)
                .takeUntil(ev -> ev instanceof GenerationEvent.Done)
                .doFinally(signal -> {
                    decode.ended();
                    if (!s.finished) {
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
        volatile boolean finished;
        long lastTokenAt;

        Stream(
                GenerationRequest g,
                long reservation,
                WorkerEndpoint decode,
                int cached,
                long start,
                AtomicInteger produced) {
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
            if (produced.getAndIncrement() == 0) metrics.ttft.record(Duration.ofNanos(now - start));
            else metrics.tbt.record(Duration.ofNanos(now - lastTokenAt));
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
            if (produced.get() >= g.maxTokens()) {
                finished = true;
                return out.concatWith(done(ended(text.flush()), "length"));
            }
            return out;
        }

        /** The decode worker ended the stream ({@code finish}: length, stop, or error...). */
        private Flux<GenerationEvent> finish(String finish) {
            finished = true;
            if (finish.startsWith("error")) {
                LOG.warn("[{}] decode worker {} ended the stream with {}", g.requestId(), decode.id(), finish);
                return Flux.error(new RequestFailure(
                        RequestFailure.Kind.DECODE_FAILED,
                        "the decode worker failed (request " + g.requestId() + "; the conductor's log says why)",
                        null));
            }
            return done(ended(text.flush()), finish.equals("length") ? "length" : "stop");
        }

        /** The answer's last text: a chat answer is remembered with its ids. */
        private String ended(String tail) {
            if (said != null)
                answers.remember(
                        g.salt(),
                        said.append(tail).toString(),
                        saidIds.stream().mapToInt(Integer::intValue).toArray());
            return tail;
        }

        private Flux<GenerationEvent> done(String tail, String reason) {
            metrics.e2e.record(Duration.ofNanos(System.nanoTime() - start));
            Flux<GenerationEvent> d =
                    Flux.just(new GenerationEvent.Done(reason, g.promptTokens().length, produced.get(), cached));
            return tail.isEmpty()
                    ? d
                    : Flux.<GenerationEvent>just(new GenerationEvent.Delta(tail, -1, 0f))
                            .concatWith(d);
        }
    }
}
