package dev.mooncakej.conductor.workers;

import dev.mooncakej.cluster.InternalHttp;
import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.kvcache.wire.ClusterCredential;
import dev.mooncakej.kvcache.wire.InternalJson;
import dev.mooncakej.kvcache.wire.WorkerMessages;
import dev.mooncakej.kvcache.wire.WorkerMessages.DecodeTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.KvIndex;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillResult;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.Release;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveRequest;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveResponse;
import dev.mooncakej.kvcache.wire.WorkerMessages.TokenEvent;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.netty.handler.ssl.ClientAuth;
import io.netty.handler.ssl.JdkSslContext;
import java.time.Duration;
import java.util.function.BiConsumer;
import org.springframework.http.client.reactive.ReactorClientHttpConnector;
import org.springframework.stereotype.Component;
import org.springframework.web.reactive.function.client.WebClient;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.netty.http.client.HttpClient;

/**
 * Calls to the workers' internal API, each written once over a {@link WorkerCarrier}: each worker's
 * control channel ({@link ChannelCarrier}, the default) or one HTTP exchange per call
 * ({@link HttpCarrier}, {@code mooncakej.conductor.worker-channel=false}). A worker that answers with
 * an error becomes a {@link WorkerException} either way; the circuit breaker and timeouts wrap both.
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

    private final MeterRegistry meters;

    /** How calls travel: the control channel (falling back to HTTP) or HTTP alone. */
    private final WorkerCarrier carrier;

    public WorkerClient(ConductorProperties props, WorkerGuard guard, InternalHttp internal, MeterRegistry meters) {
        this.guard = guard;
        this.meters = meters;
        WebClient.Builder b = WebClient.builder()
                .codecs(c -> c.defaultCodecs().maxInMemorySize(16 << 20))
                .defaultHeader(ClusterCredential.HEADER, internal.credential().value());
        HttpClient http = HttpClient.create();
        if (internal.tls() != null) { // https workers: their certificates and host names verified against the CA
            var netty = new JdkSslContext(internal.tls(), true, ClientAuth.NONE);
            http = http.secure(spec -> spec.sslContext(netty));
        }
        b.clientConnector(new ReactorClientHttpConnector(http));
        this.web = b.build();
        this.stall = Duration.ofMillis(props.stallTimeoutMillis());
        this.channels = props.workerChannel()
                ? new WorkerChannels(http, internal.credential(), WorkerChannels.HANDSHAKE_TIMEOUT, stall)
                : null;
        this.timeout = Duration.ofMillis(props.workerTimeoutMillis());
        WorkerCarrier overHttp = new HttpCarrier(web);
        this.carrier = channels == null ? overHttp : new ChannelCarrier(channels, overHttp);
    }

    /** Hears that a worker's control channel stalled (true) or that it answers again (false). */
    public void onStall(BiConsumer<String, Boolean> listener) {
        if (channels != null) channels.onStall(listener);
    }

    /**
     * Reserve KV on a decode worker; empty when it has no room. Never retried on the same worker (a
     * stalled one would hold the request for every retry): it fails after the stall timeout, and the
     * request path asks the next decode worker. The decode worker answers a repeated reservation id
     * with the same reservation, so a reservation that did land is released by the path's cancel.
     */
    public Mono<ReserveResponse> reserve(String decodeUrl, ReserveRequest req, String requestId, String trace) {
        Mono<ReserveResponse> call = carrier.call(
                        decodeUrl, WorkerOp.RESERVE, requestId, trace, InternalJson.encode(req))
                .map(b -> InternalJson.decode(b, ReserveResponse.class))
                .onErrorResume(e -> e instanceof WorkerException w && w.status() == 429, e -> Mono.empty());
        return guard.once(decodeUrl, call.timeout(stall));
    }

    /**
     * The prefill of {@code task}, failing with a {@link java.util.concurrent.TimeoutException} after
     * {@code within}; {@code trace}: the request's span (a W3C traceparent; null: not traced).
     */
    public Mono<PrefillResult> prefill(
            String prefillUrl, PrefillTask task, String requestId, String trace, Duration within) {
        Mono<PrefillResult> call = carrier.call(
                        prefillUrl, WorkerOp.PREFILL, requestId, trace, InternalJson.encode(task))
                .map(b -> InternalJson.decode(b, PrefillResult.class));
        return guard.once(prefillUrl, call.timeout(within));
    }

    /** The token stream (one JSON object per event); an event that does not decode fails the stream. */
    public Flux<TokenEvent> decode(String decodeUrl, DecodeTask task, String requestId, String trace) {
        Flux<TokenEvent> call = carrier.stream(
                        decodeUrl,
                        WorkerOp.DECODE,
                        requestId,
                        trace,
                        InternalJson.encode(task),
                        () -> accepted(decodeUrl))
                .map(line -> InternalJson.decode(line, TokenEvent.class));
        // the first event may wait for a batch slot (worker timeout); each later token comes within the stall
        // timeout (a worker that stops answering altogether is caught sooner by its channel's pings)
        return guard.stream(decodeUrl, call.timeout(Mono.delay(timeout), ev -> Mono.delay(stall)));
    }

    /**
     * The worker took the task: it ends it (stop, length, cancelled or error) and counts that ending, so
     * the two counts reconcile (./mooncakej soak checks it).
     */
    private void accepted(String decodeUrl) {
        Counter.builder("mooncakej.worker.decodes.accepted")
                .description("decode tasks each worker took (it ends and counts each one)")
                .tag("worker", decodeUrl)
                .register(meters)
                .increment();
    }

    /**
     * A worker's profile (its block-key contract and start-up measurements), asked once at admission,
     * outside the circuit breaker (a worker still starting must not open it); empty when the worker
     * has no profile route (404).
     */
    public Mono<WorkerMessages.WorkerProfile> profile(String url) {
        return web.get()
                .uri(url + "/internal/profile")
                .exchangeToMono(r -> r.statusCode().value() == 404
                        ? Mono.<String>empty()
                        : r.statusCode().isError() ? HttpCarrier.<String>error(r, url) : r.bodyToMono(String.class))
                .map(b -> InternalJson.decode(b, WorkerMessages.WorkerProfile.class))
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
        Mono<Void> call = carrier.call(
                        decodeUrl, WorkerOp.RELEASE, null, null, InternalJson.encode(new Release(reservationId)))
                .then();
        return guard.idempotent(decodeUrl, call.timeout(Duration.ofSeconds(5)))
                .onErrorResume(e -> Mono.empty())
                .then();
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
