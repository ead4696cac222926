package dev.mooncakej.web;

import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * The request timeout of one HTTP/1.1 connection: from a request's head to the last byte of its body,
 * at most {@code timeout}. Past it the connection answers 408 with an OpenAI-style error body (or,
 * when a response has already begun, is just closed) and closes, so a client that trickles a body
 * holds a connection no longer. Only the arrival of the request is timed: a long response (a token
 * stream) and an upgraded WebSocket (the control channel, whose request has no body) are not.
 */
final class RequestArrival extends ChannelDuplexHandler {
    static final String NAME = "mooncakej.requestArrival";

    private static final byte[] BODY = ("{\"error\":{\"message\":\"the request did not arrive whole within "
                    + "mooncakej.edge.request-timeout; send it again\",\"type\":\"invalid_request_error\","
                    + "\"param\":null,\"code\":\"request_timeout\"}}")
            .getBytes(StandardCharsets.UTF_8);

    private final long timeoutNanos;
    private ScheduledFuture<?> pending;
    /** Whether the request being timed has had a response begun (an early 401, a 413). */
    private boolean answered;

    RequestArrival(Duration timeout) {
        this.timeoutNanos = timeout.toNanos();
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) throws Exception {
        if (msg instanceof HttpRequest) {
            cancel();
            answered = false;
            pending = ctx.executor().schedule(() -> expire(ctx), timeoutNanos, TimeUnit.NANOSECONDS);
        }
        if (msg instanceof LastHttpContent) cancel();
        super.channelRead(ctx, msg);
    }

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) throws Exception {
        if (msg instanceof HttpResponse) answered = true;
        super.write(ctx, msg, promise);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) throws Exception {
        cancel();
        super.channelInactive(ctx);
    }

    private void cancel() {
        if (pending != null) {
            pending.cancel(false);
            pending = null;
        }
    }

    private void expire(ChannelHandlerContext ctx) {
        pending = null;
        if (!ctx.channel().isActive()) return;
        if (answered) { // a second answer would confuse the client: the connection just closes
            ctx.close();
            return;
        }
        var response = new DefaultFullHttpResponse(
                HttpVersion.HTTP_1_1, HttpResponseStatus.REQUEST_TIMEOUT, Unpooled.wrappedBuffer(BODY));
        response.headers()
                .set(HttpHeaderNames.CONTENT_TYPE, "application/json")
                .set(HttpHeaderNames.CONTENT_LENGTH, BODY.length)
                .set(HttpHeaderNames.CONNECTION, "close");
        ctx.writeAndFlush(response).addListener(ChannelFutureListener.CLOSE);
    }
}
