package dev.mooncakej.conductor.api;

import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.conductor.model.ServedModel;
import dev.mooncakej.scheduler.LiveScheduler;
import dev.mooncakej.scheduler.WorkerEndpoint;
import dev.mooncakej.scheduler.AdmissionMode;
import dev.mooncakej.scheduler.ClusterScheduler;
import dev.mooncakej.scheduler.PrefillPolicy;
import dev.mooncakej.scheduler.SchedulerConfig;
import dev.mooncakej.engine.sampling.TextAssembler;
import dev.mooncakej.kvcache.cost.CostProfile;
import dev.mooncakej.conductor.workers.WorkerClient;
import dev.mooncakej.kvcache.wire.WorkerMessages.DecodeTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveRequest;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveResponse;
import dev.mooncakej.kvcache.wire.WorkerMessages.TokenEvent;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.time.Duration;
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
 * The request path: reserve KV on a decode worker, prefill on the chosen prefill worker (which writes
 * the KV into that reservation and returns the first token), then relay the decode worker's tokens
 * as text. Whatever ends the request (done, stop sequence, client gone, error), the reservation is
 * released and the worker stops.
 */
@Service
public class CompletionService {
    private static final Logger LOG = LoggerFactory.getLogger(CompletionService.class);

    private final ServedModel model;
    private final ConductorProperties props;
    private volatile LiveScheduler scheduler;
    private volatile boolean leader = true;
    private volatile String standbyReason = null;
    private final java.util.Map<String, WorkerEndpoint> endpoints = new java.util.concurrent.ConcurrentHashMap<>();
    private volatile List<String> memberPrefill;
    private volatile List<String> memberDecode;
    private final java.util.Set<String> openBreakers = java.util.concurrent.ConcurrentHashMap.newKeySet();
    private final WorkerClient workers;
    private final MeterRegistry meters;
    private final Timer ttft;
    private final Timer tbt;
    private final Timer e2e;
    private final DistributionSummary promptTokens;
    private final DistributionSummary cachedTokens;
    private final Counter kvBytes;
    private final Timer kvTime;

    public CompletionService(ServedModel model, ConductorProperties props, WorkerClient workers, MeterRegistry meters,
                             dev.mooncakej.conductor.workers.WorkerGuard guard) {
        this.model = model;
        this.props = props;
        this.workers = workers;
        this.meters = meters;
        this.scheduler = liveScheduler(props, endpoints(props.prefillWorkers()), endpoints(props.decodeWorkers()));
        this.memberPrefill = props.prefillWorkers();
        this.memberDecode = props.decodeWorkers();
        guard.onTransition(this::breakerChanged);
        this.ttft = Timer.builder("mooncakej.ttft").description("time to first token, as the client sees it").publishPercentileHistogram().register(meters);
        this.tbt = Timer.builder("mooncakej.tbt").description("time between tokens, as the client sees it").publishPercentileHistogram().register(meters);
        this.e2e = Timer.builder("mooncakej.e2e").description("end-to-end request latency").publishPercentileHistogram().register(meters);
        this.promptTokens = DistributionSummary.builder("mooncakej.prompt.tokens").register(meters);
        this.cachedTokens = DistributionSummary.builder("mooncakej.prompt.cached.tokens").register(meters);
        this.kvBytes = Counter.builder("mooncakej.kv.transferred.bytes").description("KV bytes moved from prefill to decode workers").register(meters);
        for (String reason : REJECT_REASONS) rejected(reason); // registered up front, so dashboards see zeros
        Gauge.builder("mooncakej.slo.ttft.seconds", props, ConductorProperties::ttftSloSeconds).description("TTFT SLO the scheduler admits against").register(meters);
        Gauge.builder("mooncakej.slo.tbt.seconds", props, ConductorProperties::tbtSloSeconds).description("TBT SLO the scheduler admits against").register(meters);
        this.kvTime = Timer.builder("mooncakej.kv.transferred.time").description("KV transfer time per request (prefill worker to decode worker)").register(meters);
    }

    public LiveScheduler scheduler() { return scheduler; }

    /**
     * The scheduler core on wall-clock time. Its prefill-time model starts from a rough guess for a
     * CPU worker and is refitted from the workers' reports; KV moves between workers are not priced
     * here (no prefix fetch between prefill workers yet).
     */
    private static LiveScheduler liveScheduler(ConductorProperties props, List<WorkerEndpoint> prefill, List<WorkerEndpoint> decode) {
        if (prefill.isEmpty() || decode.isEmpty()) return new LiveScheduler(null, prefill, decode, () -> System.nanoTime() / 1e9);
        CostProfile guess = new CostProfile("live-initial", 0.01, 1e-4, 0, 0.005, 0.001, 1e-7, 1);
        SchedulerConfig cfg = new SchedulerConfig(PrefillPolicy.parse(props.policy()), AdmissionMode.parse(props.admission()), props.ttftSloSeconds(),
                props.tbtSloSeconds(), 1.5, props.blockTokens(), guess, 1e12, props.decodeKvTokens(), 10, 1);
        ClusterScheduler core = new ClusterScheduler(cfg, prefill.size(), decode.size(), 0);
        core.spreadDecodeTies(true);
        return new LiveScheduler(core, prefill, decode, () -> System.nanoTime() / 1e9);
    }

    /** The same endpoint object per URL across membership changes (its in-flight count carries over). */
    private List<WorkerEndpoint> endpoints(List<String> urls) {
        return urls.stream().map(u -> endpoints.computeIfAbsent(u, WorkerEndpoint::new)).toList();
    }

    /**
     * New membership (from etcd): a fresh scheduler over these workers, its global prefix index seeded
     * from what every prefill worker reports holding. Requests already running finish on the scheduler
     * that placed them. Returns the seconds the rebuild took.
     */
    public synchronized double updateWorkers(List<String> prefillUrls, List<String> decodeUrls) {
        long t0 = System.nanoTime();
        LiveScheduler next = liveScheduler(props, endpoints(prefillUrls), endpoints(decodeUrls));
        int seeded = 0;
        if (next.core() != null) {
            for (int i = 0; i < next.prefillWorkers().size(); i++) {
                String url = next.prefillWorkers().get(i).url();
                try {
                    long[] keys = workers.kvIndex(url).block(Duration.ofSeconds(5));
                    if (keys != null) {
                        next.core().prefill(i).cache(keys);
                        seeded += keys.length;
                    }
                } catch (RuntimeException e) {
                    LOG.warn("could not read the prefix index of {} ({}); it fills again as requests run", url, e.getMessage());
                }
            }
        }
        scheduler = next;
        double s = (System.nanoTime() - t0) / 1e9;
        LOG.info("workers now: prefill {}, decode {}; prefix index seeded with {} blocks in {} ms", prefillUrls, decodeUrls, seeded, Math.round(s * 1000));
        return s;
    }

    /** The cluster's workers (static list or etcd membership); those with an open circuit breaker are left out of scheduling. */
    public double setMembers(List<String> prefillUrls, List<String> decodeUrls) {
        memberPrefill = List.copyOf(prefillUrls);
        memberDecode = List.copyOf(decodeUrls);
        return refreshMembers();
    }

    private synchronized double refreshMembers() {
        return updateWorkers(memberPrefill.stream().filter(u -> !openBreakers.contains(u)).toList(),
                memberDecode.stream().filter(u -> !openBreakers.contains(u)).toList());
    }

    /** An open breaker takes its worker out of scheduling; half-open (trial calls) or closed brings it back. */
    private void breakerChanged(String url, io.github.resilience4j.circuitbreaker.CircuitBreaker.State state) {
        boolean out = state == io.github.resilience4j.circuitbreaker.CircuitBreaker.State.OPEN
                || state == io.github.resilience4j.circuitbreaker.CircuitBreaker.State.FORCED_OPEN;
        boolean changed = out ? openBreakers.add(url) : openBreakers.remove(url);
        if (changed) Thread.ofVirtual().start(this::refreshMembers);
    }

    /** Leadership (HA): a standby answers 503 naming the reason (and the leader) until it is elected. */
    public void setLeader(boolean leader, String standbyReason) {
        this.standbyReason = standbyReason;
        this.leader = leader;
    }

    public boolean leader() { return leader; }

    /** The URLs of the workers the scheduler uses now. */
    public List<String> workerUrls(boolean prefill) {
        LiveScheduler s = scheduler;
        return (prefill ? s.prefillWorkers() : s.decodeWorkers()).stream().map(WorkerEndpoint::url).toList();
    }

    /** A decode worker's pushed load, applied to the scheduler's view of that worker. */
    public void applyDecodeLoad(String workerUrl, int running, long kvTokens) {
        LiveScheduler s = scheduler;
        if (s.core() != null) s.applyDecodeLoad(workerUrl, running, kvTokens);
    }

    /** A prefill worker's pushed cache changes, applied to the scheduler's view of that worker. */
    public void applyKvEvents(String workerUrl, long[] stored, long[] evicted) {
        LiveScheduler s = scheduler;
        if (s.core() == null) return;
        s.applyKvEvents(workerUrl, stored == null ? new long[0] : stored, evicted == null ? new long[0] : evicted);
    }

    /** Why requests are turned away: the scheduler's two reasons, every decode worker full, no worker, a standby conductor. */
    static final List<String> REJECT_REASONS = List.of("ttft_slo", "decode_load", "kv_full", "no_workers", "standby");

    private Counter rejected(String reason) {
        return Counter.builder("mooncakej.rejections").description("requests turned away, by reason").tag("reason", reason).register(meters);
    }

    public void countOutcome(String outcome) {
        Counter.builder("mooncakej.requests").tag("outcome", outcome).register(meters).increment();
    }

    /**
     * Reserves KV, runs the prefill and returns, once the first token is known, the flux of text
     * events (starting with that token). Errors up to that point (overload 429, no worker 503, bad
     * worker answer) fail the Mono, so the HTTP status can still say so.
     */
    public Mono<Flux<GenerationEvent>> generate(GenerationRequest g) {
        if (!leader) {
            rejected("standby").increment();
            return Mono.error(new ApiException(503, "service_unavailable", null, "standby",
                    "this conductor is a standby (" + standbyReason + "); send requests to the leader", props.retryAfterSeconds()));
        }
        LiveScheduler scheduler = this.scheduler; // the scheduler that places this request also hears how it ends
        if (scheduler.core() == null) {
            rejected("no_workers").increment();
            String why = openBreakers.isEmpty() ? "no prefill or decode worker is configured or registered; start some (./mooncakej up) and retry"
                    : "no prefill or decode worker is available: " + openBreakers + " failed repeatedly and are out of scheduling until their circuit breakers let trial calls through; retry";
            return Mono.error(new ApiException(503, "service_unavailable", null, "no_workers", why, props.retryAfterSeconds()));
        }
        long id = ThreadLocalRandom.current().nextLong() & Long.MAX_VALUE;
        long start = System.nanoTime();
        int[] tokens = g.promptTokens();
        long[] keys = model.blockKeys().keys(tokens);
        promptTokens.record(tokens.length);
        LiveScheduler.Choice choice = scheduler.choose(keys, tokens.length);
        if (!choice.decision().accepted()) {
            rejected(dev.mooncakej.scheduler.Decision.TTFT_SLO.equals(choice.decision().rejectReason()) ? "ttft_slo" : "decode_load").increment();
            return Mono.error(new ApiException(429, "rate_limit_exceeded", null, "overloaded",
                    "the cluster is overloaded (" + choice.decision().rejectReason() + "); retry after " + props.retryAfterSeconds() + " s", props.retryAfterSeconds()));
        }
        java.util.concurrent.atomic.AtomicBoolean prefillAccounted = new java.util.concurrent.atomic.AtomicBoolean();
        Runnable prefillFailed = () -> {
            if (prefillAccounted.compareAndSet(false, true)) scheduler.prefillEnded(choice, tokens.length, 0, 0, false);
        };
        return reserve(id, g, choice.decodeCandidates(), 0).doOnError(e -> prefillFailed.run()).doOnCancel(prefillFailed).flatMap(res -> {
            WorkerEndpoint decode = res.endpoint();
            WorkerEndpoint prefill = choice.prefill();
            prefill.started();
            PrefillTask task = new PrefillTask(id, tokens, keys, res.response().kv(), g.sampling());
            return workers.prefill(prefill.url(), task, g.requestId())
                    .doFinally(s -> prefill.ended())
                    .doOnCancel(() -> {
                        prefillFailed.run();
                        workers.cancel(decode.url(), id).subscribe();
                    })
                    .onErrorResume(e -> {
                        prefillFailed.run();
                        return workers.cancel(decode.url(), id).then(Mono.error(asApiError(e, g)));
                    })
                    .map(pr -> {
                        prefillAccounted.set(true);
                        double decodeStart = scheduler.prefillEnded(choice, tokens.length, pr.cachedTokens(), pr.prefillSeconds(), true);
                        cachedTokens.record(pr.cachedTokens());
                        kvBytes.increment(pr.kvBytes());
                        kvTime.record(Duration.ofNanos((long) (pr.kvSeconds() * 1e9)));
                        LOG.info("[{}] prefill on {}: {} prompt tokens, {} cached, {} ms compute, {} KV bytes in {} ms to {}", g.requestId(), prefill.url(),
                                tokens.length, pr.cachedTokens(), Math.round(pr.prefillSeconds() * 1000), pr.kvBytes(), Math.round(pr.kvSeconds() * 1000), decode.url());
                        return relay(g, id, decode, pr.firstToken(), pr.firstLogprob(), pr.cachedTokens(), start)
                                .doFinally(sig -> scheduler.decodeEnded(choice, tokens.length, decodeStart));
                    });
        });
    }

    /** The first token, then the decode worker's tokens, as text events; releases the request however it ends. */
    private Flux<GenerationEvent> relay(GenerationRequest g, long id, WorkerEndpoint decode, int firstToken, float firstLogprob, int cached, long start) {
        int promptLength = g.promptTokens().length;
        AtomicLong lastTokenAt = new AtomicLong();
        AtomicInteger produced = new AtomicInteger();
        AtomicBoolean finished = new AtomicBoolean();
        TextAssembler text = new TextAssembler(model.tokenizer(), g.stop());
        TokenEvent first = TokenEvent.token(firstToken, firstLogprob);
        Flux<TokenEvent> source;
        if (model.tokenizer().isEndOfGeneration(firstToken) || g.maxTokens() == 1) {
            workers.cancel(decode.url(), id).subscribe();
            source = Flux.just(first);
        } else {
            DecodeTask dt = new DecodeTask(id, firstToken, promptLength, g.maxTokens(), g.sampling());
            source = Flux.concat(Flux.just(first), workers.decode(decode.url(), dt, g.requestId()));
        }
        decode.started();
        return source.concatMap(ev -> {
            if (finished.get()) return Flux.<GenerationEvent>empty();
            if (ev.finish() != null) {
                finished.set(true);
                if (ev.finish().startsWith("error")) {
                    return Flux.<GenerationEvent>error(new ApiException(500, "server_error", null, "decode_failed", "the decode worker failed: " + ev.finish(), null));
                }
                return done(text.flush(), ev.finish().equals("length") ? "length" : "stop", promptLength, produced.get(), cached, start);
            }
            if (model.tokenizer().isEndOfGeneration(ev.token())) {
                finished.set(true);
                return done(text.flush(), "stop", promptLength, produced.get(), cached, start);
            }
            long now = System.nanoTime();
            if (produced.getAndIncrement() == 0) ttft.record(Duration.ofNanos(now - start));
            else tbt.record(Duration.ofNanos(now - lastTokenAt.get()));
            lastTokenAt.set(now);
            Flux<GenerationEvent> out = Flux.just(new GenerationEvent.Delta(text.add(ev.token()), ev.token(), ev.logprob()));
            if (text.stopped()) {
                finished.set(true);
                return out.concatWith(done("", "stop", promptLength, produced.get(), cached, start));
            }
            if (produced.get() >= g.maxTokens()) {
                finished.set(true);
                return out.concatWith(done(text.flush(), "length", promptLength, produced.get(), cached, start));
            }
            return out;
        }).takeUntil(ev -> ev instanceof GenerationEvent.Done)
                .doFinally(signal -> {
                    decode.ended();
                    if (!finished.get()) {
                        LOG.info("[{}] ended early ({}); releasing request {} on {}", g.requestId(), signal, id, decode.url());
                        workers.cancel(decode.url(), id).subscribe();
                    }
                });
    }

    private Throwable asApiError(Throwable e, GenerationRequest g) {
        if (e instanceof ApiException) return e;
        LOG.warn("[{}] prefill failed: {}", g.requestId(), e.getMessage());
        if (e instanceof WorkerClient.WorkerException we && we.status() == 400) {
            return new ApiException(400, "invalid_request_error", null, "rejected_by_worker", we.getMessage(), null);
        }
        return new ApiException(503, "service_unavailable", null, "prefill_failed", "the prefill failed: " + e.getMessage(), props.retryAfterSeconds());
    }

    private Flux<GenerationEvent> done(String tail, String reason, int prompt, int completion, int cached, long start) {
        e2e.record(Duration.ofNanos(System.nanoTime() - start));
        Flux<GenerationEvent> d = Flux.just(new GenerationEvent.Done(reason, prompt, completion, cached));
        return tail.isEmpty() ? d : Flux.<GenerationEvent>just(new GenerationEvent.Delta(tail, -1, 0f)).concatWith(d);
    }

    private record Reserved(WorkerEndpoint endpoint, ReserveResponse response) {}

    /** Tries decode workers in order until one has room; 429 when none has. */
    private Mono<Reserved> reserve(long id, GenerationRequest g, List<WorkerEndpoint> candidates, int i) {
        if (i >= candidates.size()) {
            rejected("kv_full").increment();
            return Mono.error(new ApiException(429, "rate_limit_exceeded", null, "overloaded",
                    "every decode worker's KV cache is full; retry after " + props.retryAfterSeconds() + " s", props.retryAfterSeconds()));
        }
        WorkerEndpoint w = candidates.get(i);
        return workers.reserve(w.url(), new ReserveRequest(id, g.promptTokens().length, g.maxTokens()), g.requestId())
                .map(r -> new Reserved(w, r))
                .switchIfEmpty(Mono.defer(() -> reserve(id, g, candidates, i + 1)))
                .onErrorResume(e -> !(e instanceof ApiException), e -> {
                    LOG.warn("[{}] decode worker {} failed: {}", g.requestId(), w.url(), e.getMessage());
                    return i + 1 < candidates.size() ? reserve(id, g, candidates, i + 1)
                            : Mono.error(new ApiException(503, "service_unavailable", null, "worker_unavailable",
                                    "no decode worker is reachable (" + e.getMessage() + ")", props.retryAfterSeconds()));
                });
    }
}
