package dev.mooncakej.conductor.workers;

import dev.mooncakej.kvcache.wire.ClusterCredential;
import dev.mooncakej.kvcache.wire.ControlFrame;
import dev.mooncakej.kvcache.wire.InternalJson;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerError;
import io.netty.handler.codec.http.websocketx.WebSocketClientHandshakeException;
import java.io.IOException;
import java.net.URI;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BiConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.http.HttpHeaders;
import org.springframework.web.reactive.socket.WebSocketMessage;
import org.springframework.web.reactive.socket.WebSocketSession;
import org.springframework.web.reactive.socket.client.ReactorNettyWebSocketClient;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.netty.http.client.HttpClient;
import reactor.netty.http.client.WebsocketClientSpec;

/**
 * The conductor's end of the control channels ({@link ControlFrame}): {@value #LANES} WebSockets per
 * worker, each opened on first use with the cluster credential (wss when the cluster runs TLS) and
 * kept open: one for the single-answer calls (reserve, prefill, release), the others shared in turn by
 * decode streams. A call costs one frame each way instead of an HTTP exchange. A
 * channel that closes or breaks fails every call still on it with an {@link IOException} (what a
 * broken HTTP connection gives, so the same retries and breakers apply); the next call opens a new
 * one. Cancelling a call sends a cancel frame (the worker stops that decode as if its HTTP caller had
 * left).
 *
 * <p>Every open channel is pinged (a WebSocket ping, answered by the worker's network stack) every
 * quarter of the stall timeout; a channel that hears nothing from its worker for the stall timeout
 * ({@code mooncakej.conductor.stall-timeout-millis}) is ended, which fails its calls and streams
 * within seconds instead of at their own timeouts, and the worker is reported stalled (out of
 * scheduling) until a channel to it opens again: a stopped process (SIGSTOP) still accepts TCP
 * connections but answers nothing.
 */
final class WorkerChannels implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(WorkerChannels.class);

    private final ReactorNettyWebSocketClient client;
    private final String credential;
    private final Map<String, Channel> byUrl = new ConcurrentHashMap<>();

    /** Connections per worker. */
    static final int LANES = 4;

    private final AtomicInteger lanes = new AtomicInteger();

    /** Workers that answered the upgrade as a plain HTTP server (no channel there), until when (nanoTime). */
    private final Map<String, Long> httpOnly = new ConcurrentHashMap<>();

    /** How long opening a channel may take. */
    static final Duration HANDSHAKE_TIMEOUT = Duration.ofSeconds(10);

    /** How long a worker without a channel is called over HTTP before the conductor asks again. */
    static final long RECHECK_NANOS = 60_000_000_000L;

    private final Duration handshakeTimeout;

    /** How long an open channel may hear nothing from its worker (pongs included) before it is ended. */
    private final Duration stallTimeout;

    /** Hears that a worker stalled (true: no answer for the stall timeout) or answers again (false). */
    private volatile BiConsumer<String, Boolean> onStall = (u, s) -> {};

    /** Workers reported stalled, with the probe that looks for them to answer again. */
    private final Map<String, Disposable> stalled = new ConcurrentHashMap<>();

    WorkerChannels(HttpClient http, ClusterCredential credential) {
        this(http, credential, HANDSHAKE_TIMEOUT, Duration.ofSeconds(10));
    }

    WorkerChannels(HttpClient http, ClusterCredential credential, Duration handshakeTimeout) {
        this(http, credential, handshakeTimeout, Duration.ofSeconds(10));
    }

    WorkerChannels(HttpClient http, ClusterCredential credential, Duration handshakeTimeout, Duration stallTimeout) {
        this.handshakeTimeout = handshakeTimeout;
        this.stallTimeout = stallTimeout;
        this.client = new ReactorNettyWebSocketClient(
                http, () -> WebsocketClientSpec.builder().maxFramePayloadLength(ControlFrame.MAX_BYTES));
        this.credential = credential.value();
    }

    /** The one answer to a call, as JSON; a worker's error answer is a {@link WorkerClient.WorkerException}. */
    Mono<String> call(String url, int op, String requestId, String trace, String json) {
        return exchange(url, op, requestId, trace, json, () -> {}).next().map(ControlFrame::text);
    }

    /**
     * The items of a streaming call, as JSON, until the worker ends the stream; {@code sent} runs once
     * the call's frame is on its way. {@code trace}: the caller's span (W3C traceparent; null: none).
     */
    Flux<String> stream(String url, int op, String requestId, String trace, String json, Runnable sent) {
        return exchange(url, op, requestId, trace, json, sent)
                .takeWhile(f -> f.kind() == ControlFrame.ITEM)
                .map(ControlFrame::text);
    }

    /**
     * Whether {@code url} is a worker that serves no control channel (an older version during a
     * rolling upgrade, a stand-in): its calls go over HTTP until {@link #RECHECK_NANOS} have passed.
     */
    boolean httpOnly(String url) {
        Long until = httpOnly.get(url);
        if (until == null) return false;
        if (System.nanoTime() - until < 0) return true;
        httpOnly.remove(url, until);
        return false;
    }

    /** The worker answered the upgrade without switching protocols and not as a refusal: it has no channel. */
    static final class NoChannel extends IOException {
        NoChannel(String message) {
            super(message);
        }
    }

    /** How many channels are open now. */
    int open() {
        return (int) byUrl.values().stream().filter(c -> c.session != null).count();
    }

    private Flux<ControlFrame> exchange(
            String url, int op, String requestId, String trace, String json, Runnable sent) {
        String rid = requestId == null ? "" : requestId.length() > 128 ? requestId.substring(0, 128) : requestId;
        return Flux.defer(() -> {
            // calls spread over a few connections (each on its own event loop at both ends), so one
            // connection's frames (every token of every stream to that worker) do not queue the rest
            // single-answer calls (reserve, prefill, release) have a connection of their own, so an answer
            // that the scheduler waits for never queues behind token frames; streams share the others
            int n = op == ControlFrame.DECODE ? 1 + Math.floorMod(lanes.getAndIncrement(), LANES - 1) : 0;
            String lane = url + "#" + n;
            Channel ch = byUrl.compute(lane, (k, c) -> c == null || c.ended ? new Channel(url, k) : c);
            return ch.ready.asMono().thenMany(Flux.defer(() -> {
                Flux<ControlFrame> answers = ch.call(op, rid, trace, json);
                sent.run(); // ordered on the connection: a cancel sent later reaches the worker after it
                return answers;
            }));
        });
    }

    /** Opens every lane to {@code url} now (an admitted worker's first request then pays no handshake). */
    Mono<Void> open(String url) {
        return Flux.range(0, LANES)
                .flatMap(n -> {
                    Channel ch = byUrl.compute(url + "#" + n, (k, c) -> c == null || c.ended ? new Channel(url, k) : c);
                    return ch.ready.asMono();
                })
                .then();
    }

    /** Who hears that a worker stalled or answers again (the conductor's membership). */
    void onStall(BiConsumer<String, Boolean> listener) {
        this.onStall = listener;
    }

    /** Workers whose channel heard nothing for the stall timeout and that have not answered since. */
    Set<String> stalledWorkers() {
        return Set.copyOf(stalled.keySet());
    }

    /**
     * A channel to {@code url} heard nothing for the stall timeout: the worker is reported stalled,
     * and a probe opens a channel to it every stall timeout until one opens (it answers again).
     */
    private void stalled(String url) {
        if (stalled.containsKey(url)) return;
        Disposable probe = Flux.interval(stallTimeout, stallTimeout)
                .onBackpressureDrop() // an attempt that outlasts a tick (a stopped worker) skips ticks, not the probe
                .concatMap(t -> Mono.defer(() -> {
                            Channel ch =
                                    byUrl.compute(url + "#0", (k, c) -> c == null || c.ended ? new Channel(url, k) : c);
                            return ch.ready.asMono().then(Mono.just(true));
                        })
                        .onErrorReturn(false))
                .filter(ok -> ok)
                .next()
                .subscribe(ok -> {
                    if (stalled.remove(url) != null) {
                        LOG.info("worker {} answers again: back in scheduling", url);
                        onStall.accept(url, false);
                    }
                });
        if (stalled.putIfAbsent(url, probe) != null) {
            probe.dispose();
            return;
        }
        LOG.warn(
                "worker {} answered nothing for {} ms: out of scheduling until it answers again",
                url,
                stallTimeout.toMillis());
        onStall.accept(url, true);
    }

    @Override
    public void close() {
        stalled.values().forEach(Disposable::dispose);
        stalled.clear();
        byUrl.values().forEach(Channel::close);
        byUrl.clear();
    }

    /** One worker's channel: its session, the calls waiting on it and the frames to send. */
    private final class Channel {
        final String url, key;
        final Sinks.Empty<Void> ready = Sinks.empty();
        final Sinks.Many<ControlFrame> outbound = Sinks.many().unicast().onBackpressureBuffer();
        final Map<Long, Sinks.Many<ControlFrame>> pending = new ConcurrentHashMap<>();
        final AtomicLong ids = new AtomicLong();
        final Disposable connection;
        volatile WebSocketSession session;
        volatile boolean ended;
        volatile Throwable why;

        Channel(String url, String key) {
            this.url = url;
            this.key = key;
            HttpHeaders headers = new HttpHeaders();
            headers.set(ClusterCredential.HEADER, credential);
            URI uri = URI.create(url.replaceFirst("^http", "ws") + "/internal/channel");
            this.connection = client.execute(uri, headers, this::run).subscribe(v -> {}, e -> end(e), () -> end(null));
            // a worker that takes the connection but never answers the upgrade (stopped, overloaded) must
            // not hold every later call: they fail after this and the next one tries again
            Mono.delay(handshakeTimeout).subscribe(t -> {
                if (session == null && !ended) {
                    connection.dispose();
                    end(new TimeoutException("no answer to the upgrade in " + handshakeTimeout.toMillis() + " ms"));
                }
            });
        }

        /** When this channel last heard its worker (any frame, pongs included), System.nanoTime(). */
        volatile long heard = System.nanoTime();

        private Mono<Void> run(WebSocketSession s) {
            session = s;
            heard = System.nanoTime();
            ready.tryEmitEmpty();
            LOG.info("control channel to {} open", url);
            Mono<Void> in = s.receive().doOnNext(this::route).then();
            Duration every = stallTimeout.dividedBy(4);
            Flux<WebSocketMessage> pings = Flux.interval(every, every).handle((t, sink) -> {
                long silent = System.nanoTime() - heard;
                if (silent > stallTimeout.toNanos()) {
                    stalled(url);
                    sink.error(new TimeoutException(
                            "the worker answered nothing for " + TimeUnit.NANOSECONDS.toMillis(silent) + " ms"));
                } else sink.next(s.pingMessage(f -> f.wrap(new byte[] {'p'})));
            });
            Mono<Void> out =
                    s.send(Flux.merge(outbound.asFlux().map(f -> s.binaryMessage(b -> b.wrap(f.encode()))), pings));
            return Mono.firstWithSignal(in, out);
        }

        private void route(WebSocketMessage m) {
            heard = System.nanoTime();
            if (m.getType() == WebSocketMessage.Type.PONG || m.getType() == WebSocketMessage.Type.PING) return;
            var buf = m.getPayload();
            byte[] bytes = new byte[buf.readableByteCount()];
            buf.read(bytes);
            ControlFrame f;
            try {
                if (m.getType() != WebSocketMessage.Type.BINARY)
                    throw new IllegalArgumentException("a " + m.getType() + " message: expected binary frames");
                f = ControlFrame.decode(ByteBuffer.wrap(bytes));
                if (f.kind() == ControlFrame.CALL || f.kind() == ControlFrame.CANCEL)
                    throw new IllegalArgumentException("frame kind " + f.kind() + " from a worker: expected answers");
            } catch (IllegalArgumentException e) { // a worker that sends garbage gets no more calls on this channel
                throw new IllegalStateException(
                        "worker " + url + " broke the control channel protocol: " + e.getMessage());
            }
            Sinks.Many<ControlFrame> sink = f.ends() ? pending.remove(f.call()) : pending.get(f.call());
            if (sink == null) return; // a call cancelled here whose answer was already on its way
            if (f.kind() == ControlFrame.ERROR) {
                WorkerError e;
                try {
                    e = InternalJson.decode(f.text(), WorkerError.class);
                } catch (IllegalArgumentException bad) {
                    e = new WorkerError("http_" + f.status(), "unreadable error body");
                }
                sink.tryEmitError(new WorkerClient.WorkerException(url, f.status(), e.code(), e.message()));
                return;
            }
            sink.tryEmitNext(f);
            if (f.ends()) sink.tryEmitComplete();
        }

        Flux<ControlFrame> call(int op, String rid, String trace, String json) {
            long id = ids.incrementAndGet();
            Sinks.Many<ControlFrame> answers = Sinks.many().unicast().onBackpressureBuffer();
            pending.put(id, answers);
            if (ended) { // ended between the lookup and now
                pending.remove(id);
                return Flux.error(broken());
            }
            send(ControlFrame.call(id, op, rid, trace, json));
            return answers.asFlux().doOnCancel(() -> {
                if (pending.remove(id) != null) send(ControlFrame.cancel(id));
            });
        }

        private void send(ControlFrame f) {
            synchronized (outbound) { // emissions must not overlap
                outbound.tryEmitNext(f);
            }
        }

        private void end(Throwable e) {
            ended = true;
            why = e;
            if (session == null && served(e) == 0) { // it is not a channel server: HTTP for a while
                httpOnly.put(url, System.nanoTime() + RECHECK_NANOS);
                LOG.info("worker {} serves no control channel ({}): calling it over HTTP", url, e.getMessage());
                NoChannel none = new NoChannel(url + " serves no control channel");
                ready.tryEmitError(none);
                pending.values().forEach(p -> p.tryEmitError(none));
                pending.clear();
                byUrl.remove(key, this);
                return;
            }
            if (e != null) LOG.warn("control channel to {} failed: {}", url, e.toString());
            else LOG.info("control channel to {} closed", url);
            ready.tryEmitError(broken());
            pending.values().forEach(s -> s.tryEmitError(broken()));
            pending.clear();
            byUrl.remove(key, this);
        }

        /**
         * 0 when {@code e} is a handshake a server answered as plain HTTP (404, 405, 400, 200: no
         * WebSocket there); otherwise its status, or -1. A 401 or 403 (a credential refused) and a 5xx are
         * failures, never a reason to fall back.
         */
        private static int served(Throwable e) {
            for (Throwable t = e; t != null; t = t.getCause())
                if (t instanceof WebSocketClientHandshakeException h && h.response() != null) {
                    int status = h.response().status().code();
                    return status == 401 || status == 403 || status >= 500 ? status : 0;
                }
            return -1;
        }

        private IOException broken() {
            return new IOException(
                    "control channel to " + url + " " + (why == null ? "closed" : "failed: " + why.getMessage()), why);
        }

        void close() {
            connection.dispose();
        }
    }
}
