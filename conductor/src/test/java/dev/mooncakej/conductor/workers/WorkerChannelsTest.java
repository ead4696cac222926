package dev.mooncakej.conductor.workers;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.kvcache.wire.ClusterCredential;
import dev.mooncakej.kvcache.wire.ControlFrame;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerError;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.handler.codec.http.websocketx.BinaryWebSocketFrame;
import io.netty.handler.codec.http.websocketx.WebSocketFrame;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.springframework.web.reactive.function.client.WebClient;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.netty.DisposableServer;
import reactor.netty.http.client.HttpClient;
import reactor.netty.http.server.HttpServer;

/**
 * The conductor's end of the control channel against a stand-in worker: a real Reactor Netty
 * WebSocket server on loopback speaking {@link ControlFrame}s, whose behaviour each test sets
 * (answers out of order, streams, closes the connection, never answers the upgrade, is a plain HTTP
 * server). What a real worker answers is in EdgeSystemTest; here the failures a real worker rarely
 * shows on demand.
 */
class WorkerChannelsTest {
    private static final ClusterCredential CREDENTIAL = ClusterCredential.of("worker-channels-test-secret");
    private final Queue<ControlFrame> received = new ConcurrentLinkedQueue<>();
    private final Queue<String> credentials = new ConcurrentLinkedQueue<>();
    private final AtomicInteger connections = new AtomicInteger();
    private DisposableServer server;
    private WorkerChannels channels;

    @AfterEach
    void down() {
        if (channels != null) channels.close();
        if (server != null) server.disposeNow();
    }

    private static ControlFrame frame(WebSocketFrame f) {
        ByteBuf b = f.content();
        byte[] bytes = new byte[b.readableBytes()];
        b.readBytes(bytes);
        return ControlFrame.decode(ByteBuffer.wrap(bytes));
    }

    /** A worker that answers each frame it receives with what {@code answer} gives (a close when that errors). */
    private String worker(Function<ControlFrame, Flux<ControlFrame>> answer) {
        server = HttpServer.create()
                .host("127.0.0.1")
                .port(0)
                .route(r -> r.ws("/internal/channel", (in, out) -> {
                    connections.incrementAndGet();
                    credentials.add(String.valueOf(in.headers().get(ClusterCredential.HEADER)));
                    return out.sendObject(in.aggregateFrames(ControlFrame.MAX_BYTES)
                            .receiveFrames()
                            .map(WorkerChannelsTest::frame)
                            .doOnNext(received::add)
                            .flatMap(answer)
                            .map(f -> new BinaryWebSocketFrame(Unpooled.wrappedBuffer(f.encode()))));
                }))
                .bindNow();
        channels = new WorkerChannels(HttpClient.create(), CREDENTIAL, Duration.ofMillis(500));
        return "http://127.0.0.1:" + server.port();
    }

    /** What a call failed with (block() would wrap a checked exception). */
    private static Throwable failure(Mono<String> call) {
        return call.map(ok -> (Throwable) new AssertionError("answered " + ok))
                .onErrorResume(Mono::just)
                .block(Duration.ofSeconds(5));
    }

    @Test
    void callsAndStreamsShareAFewConnectionsCarryTheCredentialAndGetTheirOwnAnswers() {
        String url = worker(f -> f.kind() != ControlFrame.CALL
                ? Flux.empty()
                : Mono.delay(Duration.ofMillis(f.requestId().equals("slow") ? 300 : 0))
                        .thenReturn(ControlFrame.reply(f.call(), "{\"answer\":\"" + f.requestId() + "\"}"))
                        .flux());
        Mono<String> slow = channels.call(url, ControlFrame.RESERVE, "slow", null, "{}");
        Mono<String> fast = channels.call(url, ControlFrame.RESERVE, "fast", null, "{}");
        List<String> answers = Flux.merge(slow, fast).collectList().block(Duration.ofSeconds(5));
        assertThat(answers).containsExactly("{\"answer\":\"fast\"}", "{\"answer\":\"slow\"}");
        // many calls at once: on the same few connections, each answered as itself
        List<String> many = Flux.range(0, 40)
                .flatMap(i -> channels.call(url, ControlFrame.RESERVE, "c" + i, null, "{}"))
                .collectList()
                .block(Duration.ofSeconds(5));
        assertThat(many).hasSize(40);
        for (int i = 0; i < 40; i++) assertThat(many).contains("{\"answer\":\"c" + i + "\"}");
        assertThat(connections).as("single-answer calls share one connection").hasValue(1);
        // streams go over the other connections, in turn
        for (int i = 0; i < 2 * (WorkerChannels.LANES - 1); i++)
            channels.stream(url, ControlFrame.DECODE, "s" + i, null, "{}", () -> {})
                    .take(1)
                    .onErrorResume(e -> Flux.empty())
                    .blockLast(Duration.ofSeconds(5));
        assertThat(connections).hasValue(WorkerChannels.LANES);
        assertThat(credentials).hasSize(WorkerChannels.LANES).containsOnly(CREDENTIAL.value());
        assertThat(channels.open()).isEqualTo(WorkerChannels.LANES);
    }

    @Test
    void anErrorFrameIsTheWorkersErrorWithItsStatus() {
        String url = worker(f -> Flux.just(ControlFrame.error(f.call(), 429, new WorkerError("kv_full", "no room"))));
        assertThat(failure(channels.call(url, ControlFrame.RESERVE, "r", null, "{}")))
                .isInstanceOfSatisfying(WorkerClient.WorkerException.class, e -> {
                    assertThat(e.status()).isEqualTo(429);
                    assertThat(e.code()).isEqualTo("kv_full");
                    assertThat(e.workerMessage()).isEqualTo("no room");
                });
    }

    @Test
    void aStreamEndsAtItsEndFrameAndACancelledOneSendsACancelFrame() {
        String url = worker(f -> f.kind() != ControlFrame.CALL
                ? Flux.empty()
                : f.requestId().equals("short")
                        ? Flux.just(
                                ControlFrame.item(f.call(), "1"),
                                ControlFrame.item(f.call(), "2"),
                                ControlFrame.end(f.call()))
                        : Flux.interval(Duration.ofMillis(20))
                                .map(i -> ControlFrame.item(f.call(), String.valueOf(i)))
                                .takeUntil(x -> received.stream()
                                        .anyMatch(r -> r.kind() == ControlFrame.CANCEL && r.call() == f.call())));
        assertThat(channels.stream(url, ControlFrame.DECODE, "short", null, "{}", () -> {})
                        .collectList()
                        .block(Duration.ofSeconds(5)))
                .containsExactly("1", "2");
        assertThat(channels.stream(url, ControlFrame.DECODE, "endless", null, "{}", () -> {})
                        .take(3)
                        .collectList()
                        .block(Duration.ofSeconds(5)))
                .containsExactly("0", "1", "2");
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (received.stream().noneMatch(r -> r.kind() == ControlFrame.CANCEL) && System.nanoTime() < deadline)
            Thread.onSpinWait();
        assertThat(received).anyMatch(r -> r.kind() == ControlFrame.CANCEL);
    }

    @Test
    void aStreamCancelledAfterItsCallWentOutCountsAsTakenOnceWhetherOrNotAnItemCame() {
        // a worker that takes each decode and answers its first item late (as a decode worker answers its
        // first token a step after taking the task): the soak compares this count with the worker's own
        String url = worker(f -> f.kind() != ControlFrame.CALL
                ? Flux.empty()
                : f.requestId().equals("late")
                        ? Flux.never()
                        : Flux.just(
                                ControlFrame.item(f.call(), "1"),
                                ControlFrame.item(f.call(), "2"),
                                ControlFrame.end(f.call())));
        ChannelCarrier carrier = new ChannelCarrier(channels, new HttpCarrier(WebClient.create()));
        AtomicInteger accepted = new AtomicInteger();
        // cancelled before its first item: the worker read the call (and will read the cancel after it)
        var late = carrier.stream(url, WorkerOp.DECODE, "late", null, "{}", accepted::incrementAndGet)
                .subscribe();
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (received.stream().noneMatch(r -> r.kind() == ControlFrame.CALL) && System.nanoTime() < deadline)
            Thread.onSpinWait();
        late.dispose();
        assertThat(accepted).as("taken, cancelled before its first item").hasValue(1);
        // one that relayed items and was cancelled after its first: still once
        assertThat(carrier.stream(url, WorkerOp.DECODE, "prompt", null, "{}", accepted::incrementAndGet)
                        .take(1)
                        .collectList()
                        .block(Duration.ofSeconds(5)))
                .containsExactly("1");
        assertThat(accepted).hasValue(2);
    }

    @Test
    void aChannelThatBreaksFailsItsCallsWithAnIoExceptionAndTheNextCallOpensANewOne() {
        AtomicInteger calls = new AtomicInteger();
        String url = worker(f -> calls.incrementAndGet() == 1
                ? Flux.error(new IllegalStateException("the worker drops the connection"))
                : Flux.just(ControlFrame.reply(f.call(), "{}")));
        assertThat(failure(channels.call(url, ControlFrame.PREFILL, "a", null, "{}")))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("control channel to " + url);
        assertThat(channels.call(url, ControlFrame.PREFILL, "b", null, "{}").block(Duration.ofSeconds(5)))
                .isEqualTo("{}");
        assertThat(connections).hasValue(2);
    }

    @Test
    void aWorkerThatNeverAnswersTheUpgradeFailsTheCallAfterTheHandshakeTimeout() throws Exception {
        channels = new WorkerChannels(HttpClient.create(), CREDENTIAL, Duration.ofMillis(300));
        try (ServerSocket silent = new ServerSocket(0, 5, InetAddress.getLoopbackAddress())) {
            String url = "http://127.0.0.1:" + silent.getLocalPort();
            long t0 = System.nanoTime();
            assertThat(failure(channels.call(url, ControlFrame.RESERVE, "r", null, "{}")))
                    .isInstanceOf(IOException.class)
                    .hasMessageContaining("no answer to the upgrade in 300 ms");
            assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(Duration.ofSeconds(4));
        }
    }

    @Test
    void aPlainHttpServerHasNoChannelButARefusedCredentialIsAFailure() {
        server = HttpServer.create()
                .host("127.0.0.1")
                .port(0)
                .route(r -> r.get(
                        "/internal/channel",
                        (req, res) -> res.status(req.requestHeaders().contains(ClusterCredential.HEADER) ? 404 : 401)
                                .send()))
                .bindNow();
        channels = new WorkerChannels(HttpClient.create(), CREDENTIAL);
        String url = "http://127.0.0.1:" + server.port();
        assertThat(channels.httpOnly(url)).isFalse();
        assertThat(failure(channels.call(url, ControlFrame.RESERVE, "r", null, "{}")))
                .isInstanceOf(WorkerChannels.NoChannel.class);
        assertThat(channels.httpOnly(url)).as("calls go over HTTP for a while").isTrue();

        WorkerChannels wrongSecret =
                new WorkerChannels(HttpClient.create(), ClusterCredential.of("another-cluster-secret"));
        DisposableServer refusing = HttpServer.create()
                .host("127.0.0.1")
                .port(0)
                .route(r ->
                        r.get("/internal/channel", (req, res) -> res.status(401).send()))
                .bindNow();
        try {
            String other = "http://127.0.0.1:" + refusing.port();
            assertThat(failure(wrongSecret.call(other, ControlFrame.RESERVE, "r", null, "{}")))
                    .isInstanceOf(IOException.class)
                    .isNotInstanceOf(WorkerChannels.NoChannel.class);
            assertThat(wrongSecret.httpOnly(other))
                    .as("a 401 is no reason to fall back")
                    .isFalse();
        } finally {
            wrongSecret.close();
            refusing.disposeNow();
        }
    }
}
