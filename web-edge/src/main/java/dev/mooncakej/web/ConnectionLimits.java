package dev.mooncakej.web;

import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;
import reactor.netty.NettyPipeline;
import reactor.netty.http.server.HttpServer;

/**
 * Bounds what a client can hold on a service's HTTP server ({@code mooncakej.edge.*}, one set for each
 * service): the whole request (headers and body) must arrive within {@code request-timeout} (else 408
 * and the connection closes; {@link RequestArrival}, not Reactor Netty's own request timeout, which
 * keeps counting on an upgraded WebSocket and cut every control channel after that long), a
 * kept-alive connection idle for {@code idle-timeout} is closed, the TLS handshake (where the service
 * serves TLS) is Reactor Netty's, bounded at 10 s, and at most {@code max-connections} connections
 * are open at once: one more is closed as soon as it is accepted, before a byte of it is read. A
 * slow client (one byte a second) therefore holds a connection for at most the request timeout and
 * no buffer past what it sent.
 *
 * <p>The control channel's WebSockets are not cut by the idle timeout once upgraded (the channel
 * pings instead, see {@link ControlChannelEndpoint}); they do count against the connection cap.
 */
public final class ConnectionLimits implements Function<HttpServer, HttpServer> {
    /** The settings, validated once. */
    public record Settings(Duration requestTimeout, Duration idleTimeout, int maxConnections) {
        public Settings {
            if (requestTimeout == null || requestTimeout.isNegative() || requestTimeout.isZero())
                throw new IllegalArgumentException("mooncakej.edge.request-timeout=" + requestTimeout
                        + ": expected a positive duration such as 30s (the most a whole request may take to arrive)");
            if (idleTimeout == null || idleTimeout.isNegative() || idleTimeout.isZero())
                throw new IllegalArgumentException("mooncakej.edge.idle-timeout=" + idleTimeout
                        + ": expected a positive duration such as 60s (a kept-alive connection idle this long closes)");
            if (maxConnections < 1 || maxConnections > 1_000_000)
                throw new IllegalArgumentException(
                        "mooncakej.edge.max-connections=" + maxConnections + ": expected 1..1000000 open connections");
        }

        public static Settings defaults() {
            return new Settings(Duration.ofSeconds(30), Duration.ofSeconds(60), 4096);
        }
    }

    private final Settings settings;
    private final AtomicInteger open = new AtomicInteger();
    private final AtomicLong refused = new AtomicLong();
    private final Cap cap = new Cap();

    public ConnectionLimits(Settings settings) {
        this.settings = settings;
    }

    /** Connections open now. */
    public int open() {
        return open.get();
    }

    /** Connections closed at once because the cap was reached, since start. */
    public long refused() {
        return refused.get();
    }

    @Override
    public HttpServer apply(HttpServer server) {
        return server.idleTimeout(settings.idleTimeout()).doOnChannelInit((observer, channel, remote) -> {
            channel.pipeline().addFirst("mooncakej.cap", cap);
            if (channel.pipeline().get(NettyPipeline.HttpCodec) != null)
                channel.pipeline()
                        .addAfter(
                                NettyPipeline.HttpCodec,
                                RequestArrival.NAME,
                                new RequestArrival(settings.requestTimeout()));
        });
    }

    /** Counts connections; one over the cap is closed when it becomes active. */
    @ChannelHandler.Sharable
    private final class Cap extends ChannelInboundHandlerAdapter {
        @Override
        public void channelActive(ChannelHandlerContext ctx) throws Exception {
            if (open.incrementAndGet() > settings.maxConnections()) {
                refused.incrementAndGet();
                ctx.close();
                return;
            }
            super.channelActive(ctx);
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) throws Exception {
            open.decrementAndGet();
            super.channelInactive(ctx);
        }
    }
}
