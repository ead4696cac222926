package dev.mooncakej.kvcache.wire;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.Base64;
import java.util.function.Function;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The credential of the internal HTTP plane: a caller of any {@code /internal/*} route of any service
 * sends {@link #HEADER} with {@link #value()}, an HMAC-SHA256 of a fixed label under the cluster
 * secret (so the secret itself never travels, and a value taken from one cluster is useless in
 * another). Compared in constant time. {@link #toString} never shows it.
 */
public final class ClusterCredential {
    public static final String HEADER = "X-Mooncakej-Cluster";
    static final String LABEL = "mooncakej internal plane v1";
    private final String value;

    private ClusterCredential(String value) {
        this.value = value;
    }

    /** From the cluster secret (at least 16 characters). */
    public static ClusterCredential of(String secret) {
        if (secret == null || secret.length() < 16)
            throw new IllegalArgumentException(
                    "the cluster secret is " + (secret == null ? "missing" : "shorter than 16 characters")
                            + ": expected at least 16 characters, the same on every service"
                            + " (./mooncakej up makes a random one)");
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(secret.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
            byte[] tag = mac.doFinal(LABEL.getBytes(StandardCharsets.UTF_8));
            return new ClusterCredential(Base64.getUrlEncoder().withoutPadding().encodeToString(tag));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is not available in this JVM", e);
        }
    }

    /**
     * From a service's settings: {@code mooncakej.cluster.secret} (an environment variable, e.g.
     * MOONCAKEJ_CLUSTER_SECRET) or {@code mooncakej.cluster.secret-file} (a file holding it, e.g. a
     * mounted Kubernetes secret). Never from a command line: the caller passes a property lookup.
     */
    public static ClusterCredential fromSettings(Function<String, String> property) {
        String file = property.apply("mooncakej.cluster.secret-file");
        String secret = property.apply("mooncakej.cluster.secret");
        if (file != null && !file.isBlank()) {
            try {
                secret = Files.readString(Path.of(file)).strip();
            } catch (IOException | RuntimeException e) {
                throw new IllegalArgumentException("mooncakej.cluster.secret-file=" + file + ": cannot be read ("
                        + e.getClass().getSimpleName() + "); expected a file holding the cluster secret");
            }
        }
        if (secret == null || secret.length() < 16)
            throw new IllegalArgumentException(
                    "mooncakej.cluster.secret is " + (secret == null ? "missing" : "shorter than 16 characters")
                            + ": expected the cluster secret (16 or more characters) in the environment"
                            + " (MOONCAKEJ_CLUSTER_SECRET) or in a file (mooncakej.cluster.secret-file);"
                            + " ./mooncakej up makes a random one");
        return of(secret);
    }

    /** The header value a caller sends. */
    public String value() {
        return value;
    }

    /** Whether a presented header value is this credential (constant time). */
    public boolean accepts(String presented) {
        return presented != null
                && MessageDigest.isEqual(
                        presented.getBytes(StandardCharsets.UTF_8), value.getBytes(StandardCharsets.UTF_8));
    }

    @Override
    public String toString() {
        return "ClusterCredential[redacted]";
    }
}
