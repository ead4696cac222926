package dev.mooncakej.web;

import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.ChannelPromise;
import io.netty.handler.codec.http.LastHttpContent;
import reactor.netty.NettyPipeline;
import reactor.netty.http.server.HttpServer;

/**
 * Keeps a keep-alive HTTP/1.1 connection reading after every response. Reactor Netty 1.3.6 (the
 * version Spring Boot 4.0.7 brings; the fixed releases are not served here) reads on demand and
 * re-arms the read when a request's operations terminate; when a request that arrived before the
 * previous one had terminated is queued and then answered synchronously (a 401 from {@link
 * InternalPlaneFilter}, a status read), the re-arm is lost and the connection stops reading: the
 * caller's next request on it waits until its own timeout (reactor/reactor-netty#4361, #4347).
 * EdgeSystemTest met it once in CI as a 10 s timeout on a refused internal call.
 *
 * <p>The fix here: after the last part of each response is written, one read is requested on the
 * event loop, after the task that may have lost the re-arm. A read requested while one is already
 * pending is the same read; at most one read per response is added, so a client still cannot push
 * more than one socket read ahead of the server's backpressure.
 */
public final class KeepAliveReads extends ChannelDuplexHandler {
    /** The name of this handler in a connection's pipeline. */
    public static final String NAME = "mooncakej.keepAliveReads";

    private KeepAliveReads() {}

    /** The server with this handler on every HTTP/1.1 connection, just before Reactor Netty's traffic handler. */
    public static HttpServer install(HttpServer server) {
        return server.doOnChannelInit((observer, channel, remote) -> install(channel.pipeline()));
    }

    /** Puts the handler into one connection's pipeline (nothing when it has no HTTP/1.1 traffic handler). */
    static void install(ChannelPipeline pipeline) {
        if (pipeline.get(NettyPipeline.HttpTrafficHandler) != null && pipeline.get(NAME) == null)
            pipeline.addBefore(NettyPipeline.HttpTrafficHandler, NAME, new KeepAliveReads());
    }

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
        boolean last = msg instanceof LastHttpContent;
        ctx.write(msg, promise);
        if (last)
            ctx.executor().execute(() -> {
                if (ctx.channel().isActive()) ctx.read();
            });
    }
}
