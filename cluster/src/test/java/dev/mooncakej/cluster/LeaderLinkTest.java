package dev.mooncakej.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import com.sun.net.httpserver.HttpServer;
import dev.mooncakej.kvcache.wire.ClusterCredential;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The worker's side of epoch fencing: once a leader of a higher epoch has answered, an answer of a
 * lower epoch (a deposed leader that has not noticed yet) is refused, and every request says the
 * highest epoch heard (so a deposed master can refuse it too).
 */
@Timeout(30)
class LeaderLinkTest {
    /** A stand-in conductor that answers every POST with {@code {"ok":true}} at a given epoch. */
    private static HttpServer conductor(long epoch, List<String> heard) throws Exception {
        HttpServer s = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        s.createContext("/", x -> {
            heard.add(x.getRequestHeaders().getFirst(LeaderLink.EPOCH_HEADER));
            byte[] b = "{\"ok\":true}".getBytes(StandardCharsets.UTF_8);
            x.getResponseHeaders().set(LeaderLink.EPOCH_HEADER, Long.toString(epoch));
            x.sendResponseHeaders(200, b.length);
            x.getResponseBody().write(b);
            x.close();
        });
        s.start();
        return s;
    }

    @Test
    void anAnswerOfALowerEpochThanOneHeardIsRefused() throws Exception {
        List<String> heardOld = new CopyOnWriteArrayList<>(), heardNew = new CopyOnWriteArrayList<>();
        HttpServer old = conductor(3, heardOld), current = conductor(5, heardNew);
        try {
            AtomicReference<HttpServer> leader = new AtomicReference<>(old);
            LeaderLink link = new LeaderLink(
                    () -> "http://127.0.0.1:" + leader.get().getAddress().getPort(),
                    InternalHttp.plain(ClusterCredential.of("leader-link-test-secret-0123456789")));
            assertThat(link.post("/internal/store/get", "{}"))
                    .as("the first leader heard")
                    .isNotNull();
            assertThat(link.highestEpoch()).isEqualTo(3);
            leader.set(current);
            assertThat(link.post("/internal/store/get", "{}"))
                    .as("a newer leader")
                    .isNotNull();
            assertThat(link.highestEpoch()).isEqualTo(5);
            assertThat(heardNew).containsExactly("3");
            leader.set(old); // the deposed leader answers again (it has not noticed)
            assertThat(link.post("/internal/store/put-start", "{}"))
                    .as("the deposed leader's answer")
                    .isNull();
            assertThat(heardOld).as("epochs the old leader was told").containsExactly("0", "5");
            assertThat(link.highestEpoch()).isEqualTo(5);
        } finally {
            old.stop(0);
            current.stop(0);
        }
    }
}
