package dev.mooncakej.web;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Mono;
import reactor.netty.DisposableServer;
import reactor.netty.http.server.HttpServer;

/**
 * A keep-alive connection keeps being read after a request that was queued behind a slower one is
 * answered synchronously: the sequence of reactor/reactor-netty#4361 on a real server and a raw
 * socket. Two requests in one write (the first answered after 50 ms, the second at once), both
 * answers read, then a third request on the same connection must be answered. The stock server of
 * the Reactor Netty version in use stalls on the third (checked here too, so the test shows the
 * defect it guards against; when an upgrade fixes it, that check says the workaround can go).
 */
class KeepAliveReadsTest {
    private static final String SLOW = "GET /slow HTTP/1.1\r\nHost: test\r\n\r\n";
    private static final String FAST = "GET /fast HTTP/1.1\r\nHost: test\r\n\r\n";

    /** How many of {@code rounds} connections answered the third request (each in at most 3 s). */
    private static int answeredThird(UnaryOperator<HttpServer> customizer, int rounds) throws IOException {
        DisposableServer server = customizer
                .apply(HttpServer.create()
                        .host("127.0.0.1")
                        .port(0)
                        .route(r -> r.get(
                                        "/slow",
                                        (req, res) -> res.sendString(Mono.delay(Duration.ofMillis(50))
                                                .thenReturn("ok")))
                                .get("/fast", (req, res) -> res.sendString(Mono.just("ok")))))
                .bindNow();
        int answered = 0;
        try {
            for (int i = 0; i < rounds; i++) {
                try (Socket s = new Socket()) {
                    s.connect(new InetSocketAddress("127.0.0.1", server.port()), 3000);
                    s.setSoTimeout(3000);
                    var out = s.getOutputStream();
                    out.write((SLOW + FAST).getBytes(StandardCharsets.US_ASCII));
                    out.flush();
                    InputStream in = s.getInputStream();
                    assertThat(readResponses(in, 2))
                            .as("the two pipelined answers")
                            .isEqualTo(2);
                    out.write(FAST.getBytes(StandardCharsets.US_ASCII));
                    out.flush();
                    if (readResponses(in, 1) == 1) answered++;
                }
            }
        } finally {
            server.disposeNow();
        }
        return answered;
    }

    /** Reads until {@code n} complete "ok" answers arrived; fewer when the socket times out. */
    private static int readResponses(InputStream in, int n) throws IOException {
        ByteArrayOutputStream got = new ByteArrayOutputStream();
        byte[] buf = new byte[4096];
        try {
            while (count(got.toString(StandardCharsets.US_ASCII)) < n) {
                int r = in.read(buf);
                if (r < 0) break;
                got.write(buf, 0, r);
            }
        } catch (SocketTimeoutException e) {
            // counted below: the answer did not come
        }
        return count(got.toString(StandardCharsets.US_ASCII));
    }

    private static int count(String text) {
        int c = 0;
        for (int at = text.indexOf("\r\n\r\nok"); at >= 0; at = text.indexOf("\r\n\r\nok", at + 1)) c++;
        return c;
    }

    @Test
    void aQueuedRequestAnsweredAtOnceLeavesTheConnectionReading() throws IOException {
        assertThat(answeredThird(KeepAliveReads::install, 5))
                .as("third requests answered with KeepAliveReads")
                .isEqualTo(5);
    }

    @Test
    void theStockServerStallsThere() throws IOException {
        assertThat(answeredThird(UnaryOperator.identity(), 2))
                .as("third requests the stock Reactor Netty server answered (0 = the defect KeepAliveReads works"
                        + " around is still there; if this fails, an upgrade fixed it and KeepAliveReads can go)")
                .isZero();
    }
}
