package dev.mooncakej.web;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.WebSocket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import reactor.core.publisher.Mono;
import reactor.netty.DisposableServer;
import reactor.netty.http.client.HttpClient;
import reactor.netty.http.server.HttpServer;

/**
 * The edge's bounds on a real Reactor Netty server with a 700 ms request timeout: a body trickled
 * past it gets 408 and the connection closes; a request whose body arrives in time is served however
 * long its answer takes; an upgraded WebSocket (the control channel) lives on past the timeout
 * (Reactor Netty's own request timeout cut it); a connection over the cap is closed at once.
 */
@Timeout(30)
class ConnectionLimitsTest {
    private DisposableServer server;
    private ConnectionLimits limits;

    @BeforeEach
    void start() {
        limits = new ConnectionLimits(new ConnectionLimits.Settings(Duration.ofMillis(700), Duration.ofSeconds(60), 3));
        server = limits.apply(HttpServer.create()
                        .host("127.0.0.1")
                        .port(0)
                        .route(r -> r.post(
                                        "/echo",
                                        (req, res) -> res.sendString(req.receive()
                                                .aggregate()
                                                .asString()
                                                .defaultIfEmpty("")))
                                .get(
                                        "/slow-answer",
                                        (req, res) -> res.sendString(Mono.delay(Duration.ofMillis(1500))
                                                .thenReturn("late but whole")))
                                .ws(
                                        "/ws",
                                        (in, out) -> out.sendString(in.receive().asString()))))
                .bindNow();
    }

    @AfterEach
    void stop() {
        server.disposeNow();
    }

    private static String status(InputStream in) throws Exception {
        StringBuilder sb = new StringBuilder();
        for (int c; (c = in.read()) >= 0 && c != '\n'; ) sb.append((char) c);
        return sb.toString().strip();
    }

    @Test
    void aTrickledBodyGets408AndTheConnectionCloses() throws Exception {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress("127.0.0.1", server.port()), 3000);
            s.setSoTimeout(5000);
            s.getOutputStream()
                    .write("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nab"
                            .getBytes(StandardCharsets.US_ASCII));
            long t0 = System.nanoTime();
            assertThat(status(s.getInputStream())).isEqualTo("HTTP/1.1 408 Request Timeout");
            assertThat((System.nanoTime() - t0) / 1e6).as("ms until the 408").isBetween(500.0, 3000.0);
            String rest = new String(s.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertThat(rest).contains("request_timeout");
        }
    }

    @Test
    void aRequestThatArrivedInTimeIsAnsweredHoweverLongItsAnswerTakes() {
        String body = HttpClient.create()
                .get()
                .uri("http://127.0.0.1:" + server.port() + "/slow-answer")
                .responseContent()
                .aggregate()
                .asString()
                .block(Duration.ofSeconds(10));
        assertThat(body).isEqualTo("late but whole");
    }

    @Test
    void anUpgradedWebSocketOutlivesTheRequestTimeout() throws Exception {
        var received = new LinkedBlockingQueue<String>();
        var session = new CompletableFuture<WebSocket>();
        java.net.http.HttpClient.newHttpClient() // fully qualified: name clash
                .newWebSocketBuilder()
                .buildAsync(URI.create("ws://127.0.0.1:" + server.port() + "/ws"), new WebSocket.Listener() {
                    @Override
                    public CompletionStage<?> onText(WebSocket ws, CharSequence data, boolean last) {
                        received.add(data.toString());
                        ws.request(1);
                        return null;
                    }
                })
                .thenAccept(session::complete);
        WebSocket ws = session.get(5, TimeUnit.SECONDS);
        ws.sendText("before", true).get(5, TimeUnit.SECONDS);
        assertThat(received.poll(5, TimeUnit.SECONDS)).isEqualTo("before");
        Thread.sleep(2000); // well past the 700 ms request timeout
        ws.sendText("after", true).get(5, TimeUnit.SECONDS);
        assertThat(received.poll(5, TimeUnit.SECONDS))
                .as("an answer after the timeout")
                .isEqualTo("after");
    }

    @Test
    void aConnectionOverTheCapIsClosedAtOnce() throws Exception {
        Socket[] open = new Socket[3];
        try {
            for (int i = 0; i < 3; i++) {
                open[i] = new Socket("127.0.0.1", server.port());
            }
            long until = System.nanoTime() + 5_000_000_000L;
            while (limits.open() < 3 && System.nanoTime() < until) Thread.sleep(10);
            try (Socket extra = new Socket("127.0.0.1", server.port())) {
                extra.setSoTimeout(5000);
                assertThat(extra.getInputStream().read())
                        .as("the fourth connection, closed")
                        .isEqualTo(-1);
            }
            assertThat(limits.refused()).isEqualTo(1);
        } finally {
            for (Socket s : open) if (s != null) s.close();
        }
    }
}
