package dev.mooncakej.conductor.workers;

import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.kvcache.wire.ControlFrame;
import dev.mooncakej.kvcache.wire.InternalJson;
import dev.mooncakej.kvcache.wire.WorkerMessages.DecodeTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.KvIndex;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillResult;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.Release;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveRequest;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveResponse;
import dev.mooncakej.kvcache.wire.WorkerMessages.TokenEvent;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerError;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicBoolean;
import org.springframework.http.HttpStatus;
import org.springframework.http.MediaType;
import org.springframework.stereotype.Component;
import org.springframework.web.reactive.function.client.WebClient;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * Calls to the workers' internal API: over each worker's control channel ({@link WorkerChannels}, the
 * default) or one HTTP exchange per call ({@code mooncakej.conductor.worker-channel=false}). A worker
 * that answers with an error becomes a {@link WorkerException} either way.
 */
@Component
public class WorkerClient implements AutoCloseable {
    private final WebClient web;
    private final Duration timeout;
    /** How long a reservation or a stream's next token may take before the call fails (never retried there). */
    private final Duration stall;

    private final WorkerGuard guard;

    /** The control channels, or null when calls go over HTTP ({@code mooncakej.conductor.worker-channel=false}). */
    private final WorkerChannels channels;

    private final io.micrometer.core.instrument.MeterRegistry meters;

    public WorkerClient(
            ConductorProperties props,
            WorkerGuard guard,
            dev.mooncakej.cluster.InternalHttp internal,
            io.micrometer.core.instrument.MeterRegistry meters) {
        this.guard = guard;
        this.meters = meters;
        WebClient.Builder b = WebClient.builder()
                .codecs(c -> c.defaultCodecs().maxInMemorySize(16 << 20))
                .defaultHeader(
                        dev.mooncakej.kvcache.wire.ClusterCredential.HEADER,
                        internal.credential().value());
        reactor.netty.http.client.HttpClient http = reactor.netty.http.client.HttpClient.create();
        if (internal.tls() != null) { // https workers: their certificates and host names verified against the CA
            var netty =
                    new io.netty.handler.ssl.JdkSslContext(internal.tls(), true, io.netty.handler.ssl.ClientAuth.NONE);
            http = http.secure(spec -> spec.sslContext(netty));
        }
        b.clientConnector(new org.springframework.http.client.reactive.ReactorClientHttpConnector(http));
        this.web = b.build();
        this.stall = Duration.ofMillis(props.stallTimeoutMillis());
        this.channels = props.workerChannel()
                ? new WorkerChannels(http, internal.credential(), WorkerChannels.HANDSHAKE_TIMEOUT, stall)
                : null;
        this.timeout = Duration.ofMillis(props.workerTimeoutMillis());
    }

    /** Hears that a worker's control channel stalled (true) or that it answers again (false). */
    public void onStall(java.util.function.BiConsumer<String, Boolean> listener) {
        if (channels != null) channels.onStall(listener);
    }

    /**
     * Reserve KV on a decode worker; empty when it has no room. Never retried on the same worker (a
     * stalled one would hold the request for every retry): it fails after the stall timeout, and the
     * request path asks the next decode worker. The decode worker answers a repeated reservation id
     * with the same reservation, so a reservation that did land is released by the path's cancel.
     */
    public Mono<ReserveResponse> reserve(String decodeUrl, ReserveRequest req, String requestId) {
        Mono<ReserveResponse> http = post(decodeUrl + "/internal/reserve", req, requestId)
                .exchangeToMono(r -> {
                    if (r.statusCode().value() == HttpStatus.TOO_MANY_REQUESTS.value())
                        return r.releaseBody().then(Mono.empty());
                    if (r.statusCode().isError()) return error(r, decodeUrl);
                    return r.bodyToMono(String.class).map(b -> InternalJson.decode(b, ReserveResponse.class));
                });
        Mono<ReserveResponse> call = overChannel(decodeUrl)
                ? channels.call(decodeUrl, ControlFrame.RESERVE, requestId, InternalJson.encode(req))
                        .map(b -> InternalJson.decode(b, ReserveResponse.class))
                        .onErrorResume(e -> e instanceof WorkerException w && w.status() == 429, e -> Mono.empty())
                        .onErrorResume(WorkerChannels.NoChannel.class, e -> http)
                : http;
        return guard.once(decodeUrl, call.timeout(stall));
    }

    /** Whether calls to {@code url} go over its control channel. */
    private boolean overChannel(String url) {
        return channels != null && !channels.httpOnly(url);
    }

    public Mono<PrefillResult> prefill(String prefillUrl, PrefillTask task, String requestId) {
        Mono<PrefillResult> http = post(prefillUrl + "/internal/prefill", task, requestId)
                .exchangeToMono(r -> r.statusCode().isError()
                        ? error(r, prefillUrl)
                        : r.bodyToMono(String.class).map(b -> InternalJson.decode(b, PrefillResult.class)));
        Mono<PrefillResult> call = overChannel(prefillUrl)
                ? channels.call(prefillUrl, ControlFrame.PREFILL, requestId, InternalJson.encode(task))
                        .map(b -> InternalJson.decode(b, PrefillResult.class))
                        .onErrorResume(WorkerChannels.NoChannel.class, e -> http)
                : http;
        return guard.once(prefillUrl, call.timeout(timeout));
    }

    /** The token stream (over HTTP, one JSON object per line); an event that does not decode fails the stream. */
    public Flux<TokenEvent> decode(String decodeUrl, DecodeTask task, String requestId) {
        Flux<TokenEvent> http = post(decodeUrl + "/internal/decode", task, requestId)
                .accept(MediaType.APPLICATION_NDJSON)
                .exchangeToFlux(r -> {
                    if (r.statusCode().isError())
                        return error(r, decodeUrl).flux().cast(TokenEvent.class);
                    accepted(decodeUrl);
                    return r.bodyToFlux(String.class)
                            .filter(line -> !line.isBlank())
                            .map(line -> InternalJson.decode(line, TokenEvent.class));
                });
        Flux<TokenEvent> call = http;
        if (overChannel(decodeUrl)) {
            AtomicBoolean taken = new AtomicBoolean();
            call = channels.stream(decodeUrl, ControlFrame.DECODE, requestId, InternalJson.encode(task))
                    .map(line -> InternalJson.decode(line, TokenEvent.class))
                    .doOnNext(ev -> {
                        if (taken.compareAndSet(false, true)) accepted(decodeUrl); // its first event: it took the task
                    })
                    .onErrorResume(WorkerChannels.NoChannel.class, e -> http);
        }
        // the first event may wait for a batch slot (worker timeout); each later token comes within the stall
        // timeout (a worker that stops answering altogether is caught sooner by its channel's pings)
        return guard.stream(decodeUrl, call.timeout(Mono.delay(timeout), ev -> Mono.delay(stall)));
    }

    /**
     * The worker took the task: it ends it (stop, length, cancelled or error) and counts that ending, so
     * the two counts reconcile (./mooncakej soak checks it).
     */
    private void accepted(String decodeUrl) {
        meters.counter("mooncakej.worker.decodes.accepted", "worker", decodeUrl).increment();
    }

    /**
     * A worker's profile (its block-key contract and start-up measurements), asked once at admission,
     * outside the circuit breaker (a worker still starting must not open it); empty when the worker
     * has no profile route (404).
     */
    public Mono<dev.mooncakej.kvcache.wire.WorkerMessages.WorkerProfile> profile(String url) {
        return web.get()
                .uri(url + "/internal/profile")
                .exchangeToMono(r -> r.statusCode().value() == 404
                        ? Mono.<String>empty()
                        : r.statusCode().isError() ? error(r, url) : r.bodyToMono(String.class))
                .map(b -> InternalJson.decode(b, dev.mooncakej.kvcache.wire.WorkerMessages.WorkerProfile.class))
                .timeout(Duration.ofSeconds(5));
    }

    /** Opens the control channel's connections to a just-admitted worker (best effort; HTTP: nothing). */
    public void warm(String url) {
        if (channels == null) return;
        channels.open(url)
                .timeout(Duration.ofSeconds(5))
                .onErrorResume(e -> Mono.empty())
                .subscribe();
    }

    /** The block keys a prefill worker holds in its prefix cache (to rebuild the global index after a failover). */
    public Mono<long[]> kvIndex(String prefillUrl) {
        return guard.idempotent(
                prefillUrl,
                web.get()
                        .uri(prefillUrl + "/internal/kv-index")
                        .retrieve()
                        .bodyToMono(String.class)
                        .map(b -> InternalJson.decode(b, KvIndex.class).blockKeys())
                        .timeout(Duration.ofSeconds(5)));
    }

    /** Best effort: drop a reservation that will not be used (the decode worker frees or fences its blocks). */
    public Mono<Void> cancel(String decodeUrl, long reservationId) {
        Mono<Void> http = web.delete()
                .uri(decodeUrl + "/internal/reservations/" + reservationId)
                .retrieve()
                .toBodilessEntity()
                .then();
        Mono<Void> call = overChannel(decodeUrl)
                ? channels.call(decodeUrl, ControlFrame.RELEASE, null, InternalJson.encode(new Release(reservationId)))
                        .then()
                        .onErrorResume(WorkerChannels.NoChannel.class, e -> http)
                : http;
        return guard.idempotent(decodeUrl, call.timeout(Duration.ofSeconds(5)))
                .onErrorResume(e -> Mono.empty())
                .then();
    }

    private WebClient.RequestHeadersSpec<?> post(String url, Object message, String requestId) {
        return web.post()
                .uri(url)
                .header("X-Request-Id", requestId)
                .contentType(MediaType.APPLICATION_JSON)
                .bodyValue(InternalJson.encode(message));
    }

    private static <T> Mono<T> error(org.springframework.web.reactive.function.client.ClientResponse r, String url) {
        int status = r.statusCode().value();
        return r.bodyToMono(String.class)
                .map(b -> InternalJson.decode(b, WorkerError.class))
                .defaultIfEmpty(new WorkerError("http_" + status, "no body"))
                .onErrorResume(e -> Mono.just(new WorkerError("http_" + status, "unreadable error body")))
                .flatMap(e -> Mono.error(new WorkerException(url, status, e.code(), e.message())));
    }

    /** How many control channels are open (0 over HTTP). */
    public int openChannels() {
        return channels == null ? 0 : channels.open();
    }

    @Override
    public void close() {
        if (channels != null) channels.close();
    }

    /** A worker answered with an error. */
    public static final class WorkerException extends RuntimeException {
        private final int status;
        private final String code;

        private final String workerMessage;

        public WorkerException(String url, int status, String code, String message) {
            super(url + " answered " + status + " (" + code + "): " + message);
            this.status = status;
            this.code = code;
            this.workerMessage = message;
        }

        /** What the worker said, without where it is (safe to pass on to a client). */
        public String workerMessage() {
            return workerMessage;
        }

        public int status() {
            return status;
        }

        public String code() {
            return code;
        }
    }
}
