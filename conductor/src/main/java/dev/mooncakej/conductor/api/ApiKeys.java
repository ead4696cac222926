package dev.mooncakej.conductor.api;

import dev.mooncakej.conductor.ConductorProperties;
import io.github.resilience4j.bulkhead.Bulkhead;
import io.github.resilience4j.bulkhead.BulkheadConfig;
import io.github.resilience4j.ratelimiter.RateLimiter;
import io.github.resilience4j.ratelimiter.RateLimiterConfig;
import io.github.resilience4j.ratelimiter.internal.AtomicRateLimiter;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.springframework.stereotype.Component;

/**
 * API keys of the OpenAI endpoint ({@code mooncakej.conductor.api-keys-file}; none: the endpoint is
 * open, as before). Each line of the file: {@code KEY NAME [max-concurrent=N] [requests-per-minute=N]
 * [tokens-per-minute=N] [salt | salt=SECRET]}; KEY is the key itself or {@code sha256:HEX} of it. Only
 * the hashes are kept. Each key has its own limits (Resilience4j: a bulkhead for concurrent requests,
 * rate limiters for requests and tokens per minute) and with {@code salt} its own block keys, so no
 * other tenant can see its prefixes through cached tokens or timing. A salt derives from a secret:
 * the key's hash ({@code salt}) or the configured {@code SECRET} ({@code salt=SECRET}: several keys
 * that share it share their cache), never from the tenant's name, which others may know.
 *
 * <p>Per-key meters (requests by outcome, tokens, concurrent requests) are kept in a registry of
 * their own, read on the credentialed plane ({@code GET /internal/api-keys/metrics}); the public
 * {@code /actuator/prometheus} has only the totals by outcome, unless {@code
 * mooncakej.conductor.api-key-public-metrics=true} puts the per-key meters there too.
 */
@Component
public class ApiKeys {
    /** A caller that presented a valid key: its name (for meters and logs) and its block-key salt, or null. */
    public record Tenant(String name, String salt) {
        @Override
        public String toString() {
            return "Tenant[" + name + (salt == null ? "" : ", salted") + "]"; // the salt stays out of logs
        }
    }

    private record Entry(
            Tenant tenant, int maxConcurrent, Bulkhead concurrent, RateLimiter requests, RateLimiter tokens) {}

    private final Map<String, Entry> byHash = new HashMap<>();
    private final Map<Tenant, Entry> byTenant = new IdentityHashMap<>();
    private final MeterRegistry publicMeters;
    private final MeterRegistry tenantMeters;
    private final boolean enabled;

    public ApiKeys(ConductorProperties props, MeterRegistry meters) {
        this.publicMeters = meters;
        this.tenantMeters =
                props.apiKeyPublicMetrics() ? meters : new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        this.enabled = props.apiKeysFile() != null;
        if (enabled) load(props);
    }

    public boolean enabled() {
        return enabled;
    }

    /** The per-key meters in Prometheus' text format (the credentialed plane's view). */
    public String tenantMetrics() {
        return tenantMeters instanceof PrometheusMeterRegistry p ? p.scrape() : "";
    }

    private void load(ConductorProperties props) {
        String file = props.apiKeysFile();
        List<String> lines;
        try {
            lines = Files.readAllLines(Path.of(file), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalArgumentException("mooncakej.conductor.api-keys-file=" + file
                    + ": cannot be read; expected a file of lines 'KEY NAME [max-concurrent=N] [requests-per-minute=N]"
                    + " [tokens-per-minute=N] [salt]'");
        }
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i).strip();
            if (line.isEmpty() || line.startsWith("#")) continue;
            String[] f = line.split("\\s+");
            String where = "mooncakej.conductor.api-keys-file line " + (i + 1);
            if (f.length < 2 || !f[1].matches("[A-Za-z0-9._-]{1,64}"))
                throw new IllegalArgumentException(where
                        + ": expected 'KEY NAME ...' with a NAME of 1-64 [A-Za-z0-9._-] (the key itself is not shown)");
            String hash = f[0].startsWith("sha256:") ? f[0].substring(7).toLowerCase(Locale.ROOT) : sha256(f[0]);
            if (!hash.matches("[0-9a-f]{64}"))
                throw new IllegalArgumentException(where + ": a sha256: key needs 64 hex digits");
            if (!f[0].startsWith("sha256:") && f[0].length() < 16)
                throw new IllegalArgumentException(where + " (" + f[1] + "): the key is shorter than 16 characters");
            int concurrent = props.apiKeyMaxConcurrent(), rpm = props.apiKeyRequestsPerMinute();
            long tpm = props.apiKeyTokensPerMinute();
            String salt = null;
            for (int k = 2; k < f.length; k++) {
                String[] kv = f[k].split("=", 2);
                try {
                    switch (kv[0]) {
                        case "max-concurrent" -> concurrent = Integer.parseInt(kv[1]);
                        case "requests-per-minute" -> rpm = Integer.parseInt(kv[1]);
                        case "tokens-per-minute" -> tpm = Long.parseLong(kv[1]);
                        case "salt" -> {
                            if (kv.length == 2 && kv[1].length() < 16) throw new IllegalArgumentException();
                            salt = "tenant:"
                                    + sha256("mooncakej-tenant-salt\u0000"
                                            + (kv.length == 2 ? "secret:" + kv[1] : "key:" + hash));
                        }
                        default -> throw new IllegalArgumentException();
                    }
                } catch (RuntimeException e) {
                    throw new IllegalArgumentException(
                            where + " (" + f[1] + "): '" + (f[k].startsWith("salt=") ? "salt=..." : f[k])
                                    + "': expected max-concurrent=N, requests-per-minute=N, tokens-per-minute=N,"
                                    + " salt or salt=SECRET (16 or more characters)");
                }
            }
            if (concurrent < 1 || rpm < 1 || tpm < 1)
                throw new IllegalArgumentException(where + " (" + f[1] + "): limits must be positive");
            Tenant t = new Tenant(f[1], salt);
            Entry e = new Entry(
                    t,
                    concurrent,
                    Bulkhead.of(
                            "key-" + t.name(),
                            BulkheadConfig.custom()
                                    .maxConcurrentCalls(concurrent)
                                    .maxWaitDuration(Duration.ZERO)
                                    .build()),
                    limiter("rpm-" + t.name(), rpm),
                    limiter("tpm-" + t.name(), (int) Math.min(Integer.MAX_VALUE, tpm)));
            byHash.put(hash, e);
            byTenant.put(t, e);
            Gauge.builder(
                            "mooncakej.api.key.concurrent",
                            e,
                            x -> x.maxConcurrent() - x.concurrent().getMetrics().getAvailableConcurrentCalls())
                    .description("requests of an API key admitted and not yet ended")
                    .tag("key", t.name())
                    .register(tenantMeters);
        }
        if (byHash.isEmpty())
            throw new IllegalArgumentException("mooncakej.conductor.api-keys-file=" + file + ": holds no key");
    }

    private static RateLimiter limiter(String name, int perMinute) {
        return RateLimiter.of(
                name,
                RateLimiterConfig.custom()
                        .limitForPeriod(perMinute)
                        .limitRefreshPeriod(Duration.ofMinutes(1))
                        .timeoutDuration(Duration.ZERO)
                        .build());
    }

    static String sha256(String key) {
        try {
            return HexFormat.of()
                    .formatHex(MessageDigest.getInstance("SHA-256").digest(key.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * The tenant of an {@code Authorization} header (the scheme {@code Bearer} in any case, as RFC 9110
     * wants); 401 ({@code invalid_api_key}) without a valid key; null when the endpoint is open.
     */
    public Tenant authenticate(String authorization) {
        if (!enabled) return null;
        if (authorization == null || !authorization.regionMatches(true, 0, "Bearer ", 0, 7)) {
            count("-", "unauthorized");
            throw new ApiException(
                    401,
                    "invalid_request_error",
                    null,
                    "invalid_api_key",
                    "no API key: send 'Authorization: Bearer <key>'",
                    null);
        }
        Entry e = byHash.get(sha256(authorization.substring(7).strip()));
        if (e == null) {
            count("-", "unauthorized");
            throw new ApiException(
                    401, "invalid_request_error", null, "invalid_api_key", "the API key is not valid", null);
        }
        return e.tenant();
    }

    /**
     * Admits one request of a tenant against its concurrency and requests-per-minute limits, before
     * its body is read, or answers 429 with Retry-After. The returned runnable releases the
     * concurrency slot; it may be called any number of times (the first call releases).
     */
    public Runnable admit(Tenant t) {
        if (t == null) return () -> {};
        Entry e = byTenant.get(t);
        if (!e.concurrent().tryAcquirePermission()) {
            count(t.name(), "limited");
            throw limited(t, "concurrent requests", 1);
        }
        if (!e.requests().acquirePermission()) {
            e.concurrent().onComplete();
            count(t.name(), "limited");
            throw limited(t, "requests per minute", retryAfter(e.requests()));
        }
        AtomicBoolean released = new AtomicBoolean();
        return () -> {
            if (released.compareAndSet(false, true)) e.concurrent().onComplete();
        };
    }

    /**
     * Charges a tokenized request's tokens (prompt plus the most it may generate) to its tenant's
     * tokens-per-minute limit, or answers 429 with Retry-After.
     */
    public void admitTokens(Tenant t, long tokens) {
        if (t == null) return;
        Entry e = byTenant.get(t);
        if (!e.tokens().acquirePermission((int) Math.min(Integer.MAX_VALUE, Math.max(1, tokens)))) {
            count(t.name(), "limited");
            throw limited(t, "tokens per minute", retryAfter(e.tokens()));
        }
        count(t.name(), "admitted");
        tenantMeters.counter("mooncakej.api.tokens", "key", t.name()).increment(tokens);
    }

    private static int retryAfter(RateLimiter r) {
        long nanos = r instanceof AtomicRateLimiter a ? a.getDetailedMetrics().getNanosToWait() : 0;
        return (int) Math.max(1, TimeUnit.NANOSECONDS.toSeconds(nanos) + 1);
    }

    private static ApiException limited(Tenant t, String what, int retryAfterSeconds) {
        return new ApiException(
                429,
                "rate_limit_exceeded",
                null,
                "rate_limit_exceeded",
                "API key '" + t.name() + "' is over its limit of " + what + "; retry after " + retryAfterSeconds + " s",
                retryAfterSeconds);
    }

    private void count(String key, String outcome) {
        Counter.builder("mooncakej.api.requests")
                .description("requests on the OpenAI endpoint with API keys, by outcome")
                .tag("outcome", outcome)
                .register(publicMeters)
                .increment();
        if (!key.equals("-"))
            Counter.builder("mooncakej.api.key.requests")
                    .description("requests on the OpenAI endpoint by API key name and outcome")
                    .tag("key", key)
                    .tag("outcome", outcome)
                    .register(tenantMeters)
                    .increment();
    }
}
