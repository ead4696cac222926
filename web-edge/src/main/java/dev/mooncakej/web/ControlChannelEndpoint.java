package dev.mooncakej.web;

import dev.mooncakej.kvcache.wire.ControlFrame;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.web.reactive.socket.CloseStatus;
import org.springframework.web.reactive.socket.WebSocketHandler;
import org.springframework.web.reactive.socket.WebSocketMessage;
import org.springframework.web.reactive.socket.WebSocketSession;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;

/**
 * A worker's end of the control channel ({@link ControlFrame}): a WebSocket on {@value #PATH}, which
 * is on the internal plane, so {@link InternalPlaneFilter} refuses the upgrade without the cluster
 * credential (and TLS is the service's own). Each call frame runs its operation through the worker's
 * {@link ChannelOps}; calls run concurrently and their answers interleave. A cancel frame, or the
 * connection closing, cancels the calls it concerns exactly as a caller leaving an HTTP route does (a
 * decode stream ends as cancelled). A frame that does not parse, a frame kind a caller may not send or
 * a call id already in flight closes the channel with a protocol error naming it.
 */
public final class ControlChannelEndpoint implements WebSocketHandler {
    public static final String PATH = "/internal/channel";
    private static final Logger LOG = LoggerFactory.getLogger(ControlChannelEndpoint.class);

    private final ChannelOps ops;
    private final AtomicInteger open = new AtomicInteger();
    private final Set<WebSocketSession> sessions = ConcurrentHashMap.newKeySet();
    private final Counter calls;

    public ControlChannelEndpoint(ChannelOps ops, MeterRegistry meters) {
        this.ops = ops;
        this.calls = meters == null
                ? null
                : Counter.builder("mooncakej.channel.calls")
                        .description("calls answered on the control channel")
                        .register(meters);
        if (meters != null)
            Gauge.builder("mooncakej.channel.open", open, AtomicInteger::get)
                    .description("control channels open to this service")
                    .register(meters);
    }

    /** Control channels open now. */
    public int openChannels() {
        return open.get();
    }

    @Override
    public Mono<Void> handle(WebSocketSession session) {
        Map<Long, Sinks.Empty<Void>> inFlight = new ConcurrentHashMap<>();
        open.incrementAndGet();
        sessions.add(session);
        LOG.info(
                "control channel {} opened from {}",
                session.getId(),
                session.getHandshakeInfo().getRemoteAddress());
        Flux<WebSocketMessage> answers = session.receive()
                // the conductor's pings (liveness, answered by the network stack) are no control frames
                .filter(m -> m.getType() != WebSocketMessage.Type.PING && m.getType() != WebSocketMessage.Type.PONG)
                .flatMap(
                        m -> Flux.defer(() -> answer(frame(m), inFlight))
                                .onErrorResume(ProtocolViolation.class, e -> violated(session, e)),
                        Integer.MAX_VALUE)
                .map(f -> session.binaryMessage(b -> b.wrap(f.encode())));
        return session.send(answers).doFinally(s -> {
            open.decrementAndGet();
            sessions.remove(session);
            inFlight.values().forEach(c -> c.tryEmitEmpty()); // whatever still runs is cancelled
            LOG.info("control channel {} ended ({})", session.getId(), s);
        });
    }

    /**
     * Closes every open channel as going away (the service is stopping, after its work has drained):
     * their callers open new ones elsewhere instead of holding a connection the server's graceful
     * shutdown would wait for.
     */
    public void closeAll(Duration wait) {
        if (sessions.isEmpty()) return;
        LOG.info("closing {} control channel(s): this service is stopping", sessions.size());
        Flux.fromIterable(List.copyOf(sessions))
                .flatMap(s -> s.close(CloseStatus.GOING_AWAY).onErrorResume(e -> Mono.empty()))
                .then()
                .block(wait);
    }

    /** Closes the channel with a protocol error that names what was wrong (at most 123 bytes, as a close allows). */
    private static Flux<ControlFrame> violated(WebSocketSession session, ProtocolViolation e) {
        String why = e.getMessage();
        LOG.warn("control channel {} closed: {}", session.getId(), why);
        return session.close(
                        CloseStatus.PROTOCOL_ERROR.withReason(why.length() > 100 ? why.substring(0, 100) + "..." : why))
                .thenMany(Flux.empty());
    }

    private static ControlFrame frame(WebSocketMessage m) {
        if (m.getType() != WebSocketMessage.Type.BINARY)
            throw new ProtocolViolation("a " + m.getType() + " message: expected binary control frames");
        var buf = m.getPayload();
        byte[] bytes = new byte[buf.readableByteCount()];
        buf.read(bytes);
        try {
            return ControlFrame.decode(ByteBuffer.wrap(bytes));
        } catch (IllegalArgumentException e) {
            throw new ProtocolViolation(e.getMessage());
        }
    }

    private Flux<ControlFrame> answer(ControlFrame f, Map<Long, Sinks.Empty<Void>> inFlight) {
        long id = f.call();
        if (f.kind() == ControlFrame.CANCEL) {
            Sinks.Empty<Void> c = inFlight.remove(id);
            if (c != null) c.tryEmitEmpty();
            return Flux.empty();
        }
        if (f.kind() != ControlFrame.CALL)
            return Flux.error(new ProtocolViolation("frame kind " + f.kind() + " from a caller: expected calls"));
        Sinks.Empty<Void> cancelled = Sinks.empty();
        if (inFlight.putIfAbsent(id, cancelled) != null)
            return Flux.error(new ProtocolViolation("call " + id + " is already in flight"));
        if (calls != null) calls.increment();
        Flux<ControlFrame> run = Flux.defer(() -> ops.streams(f.op())
                        ? ops.stream(f.op(), f.text(), f.requestId(), f.trace())
                                .map(json -> ControlFrame.item(id, json))
                                .concatWith(Mono.fromSupplier(() -> ControlFrame.end(id)))
                        : ops.call(f.op(), f.text(), f.requestId(), f.trace())
                                .map(json -> ControlFrame.reply(id, json))
                                .switchIfEmpty(Mono.error(new IllegalStateException("no answer")))
                                .flux())
                .onErrorResume(e -> Mono.just(ops.errorFrame(id, e)));
        return run.takeUntilOther(cancelled.asMono()).doFinally(s -> inFlight.remove(id, cancelled));
    }

    /** The caller broke the protocol: the channel closes. */
    static final class ProtocolViolation extends RuntimeException {
        ProtocolViolation(String message) {
            super(message, null, false, false);
        }
    }
}
