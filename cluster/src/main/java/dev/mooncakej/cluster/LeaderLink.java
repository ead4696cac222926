package dev.mooncakej.cluster;

import dev.mooncakej.kvcache.wire.ClusterCredential;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import java.util.logging.Logger;

/**
 * POSTs internal JSON to the leader conductor (the store master's host): its URL from etcd in a
 * cluster, or the worker's {@code conductor-url} on one host. Fenced by leadership epoch: every
 * answer carries its conductor's epoch ({@value #EPOCH_HEADER}), the link remembers the highest it
 * has heard and sends it with every request; an answer with a lower epoch (a deposed leader that has
 * not noticed yet) is refused as if no leader had answered, so its allocations never become writes.
 */
public final class LeaderLink {
    /** The header of a leadership epoch (as the conductor's LeaderEpochFilter writes and reads it). */
    public static final String EPOCH_HEADER = "X-Mooncakej-Leader-Epoch";

    private static final Logger LOG = Logger.getLogger(LeaderLink.class.getName());
    private final Supplier<String> leaderUrl;
    private final ClusterCredential credential;
    private final HttpClient http;
    private final AtomicLong highestEpoch = new AtomicLong();

    public LeaderLink(Supplier<String> leaderUrl, InternalHttp internal) {
        this.leaderUrl = leaderUrl;
        this.credential = internal.credential();
        this.http = internal.newClient(Duration.ofSeconds(2));
    }

    /** The highest leadership epoch this link has heard (0: none yet). */
    public long highestEpoch() {
        return highestEpoch.get();
    }

    /**
     * The answer's body on a 2xx from a leader at least as new as any heard before, else null (no
     * leader, a standby's 409, a refused message, unreachable, a deposed leader's answer).
     */
    public String post(String path, String json) {
        String base = leaderUrl.get();
        if (base == null) return null;
        try {
            HttpResponse<String> r = http.send(
                    HttpRequest.newBuilder(URI.create(base + path))
                            .timeout(Duration.ofSeconds(2))
                            .header("Content-Type", "application/json")
                            .header(ClusterCredential.HEADER, credential.value())
                            .header(EPOCH_HEADER, Long.toString(highestEpoch.get()))
                            .POST(HttpRequest.BodyPublishers.ofString(json))
                            .build(),
                    HttpResponse.BodyHandlers.ofString());
            if (r.statusCode() / 100 != 2) return null;
            return accepts(r.headers().firstValue(EPOCH_HEADER).orElse(null), base + path) ? r.body() : null;
        } catch (IOException e) {
            return null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        }
    }

    /** Whether an answer with this epoch header may be used; the highest epoch heard moves up with it. */
    boolean accepts(String header, String from) {
        if (header == null) return true; // a conductor that does not fence (an older version)
        long epoch;
        try {
            epoch = Long.parseLong(header.strip());
        } catch (NumberFormatException e) {
            LOG.warning("refused an answer of " + from + " with a malformed leadership epoch");
            return false;
        }
        long before = highestEpoch.getAndAccumulate(epoch, Math::max);
        if (epoch < before) {
            LOG.warning("refused an answer of " + from + " at leadership epoch " + epoch + ": a leader of epoch "
                    + before + " has been heard (a deposed leader)");
            return false;
        }
        return true;
    }
}
