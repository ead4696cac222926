package dev.mooncakej.conductor.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mooncakej.conductor.ConductorProperties;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The API key file: hashed keys, per-key limits released when a request ends, bad lines named (never their key). */
class ApiKeysTest {
    @TempDir
    Path dir;

    private ApiKeys keys(String file, Integer maxConcurrent, Long tokensPerMinute) throws Exception {
        Path f = Files.writeString(dir.resolve("keys"), file);
        ConductorProperties props = ApiFixtures.props(f.toString(), maxConcurrent, tokensPerMinute);
        return new ApiKeys(props, new SimpleMeterRegistry());
    }

    @Test
    void keysAreCheckedByHashAndLimitsHoldUntilARequestEnds() throws Exception {
        String key = "sk-0123456789abcdef-plain";
        ApiKeys k = keys(
                "# comment\n" + key + " alpha max-concurrent=1\nsha256:" + ApiKeys.sha256("sk-other-0123456789")
                        + " beta salt tokens-per-minute=100\n",
                null,
                null);
        assertThat(k.enabled()).isTrue();
        ApiKeys.Tenant alpha = k.authenticate("Bearer " + key);
        assertThat(alpha.name()).isEqualTo("alpha");
        assertThat(alpha.salt()).isNull();
        assertThat(k.authenticate("Bearer sk-other-0123456789").salt()).isEqualTo("tenant:beta");
        assertThatThrownBy(() -> k.authenticate(null))
                .satisfies(e -> assertThat(((ApiException) e).status()).isEqualTo(401));
        assertThatThrownBy(() -> k.authenticate("Bearer nope")).hasMessageContaining("not valid");
        Runnable first = k.admit(alpha, 10);
        assertThatThrownBy(() -> k.admit(alpha, 10))
                .satisfies(e -> {
                    assertThat(((ApiException) e).status()).isEqualTo(429);
                    assertThat(((ApiException) e).retryAfterSeconds()).isPositive();
                })
                .hasMessageContaining("concurrent");
        first.run();
        first.run(); // once only
        k.admit(alpha, 10).run();
        ApiKeys.Tenant beta = k.authenticate("Bearer sk-other-0123456789");
        k.admit(beta, 90).run();
        assertThatThrownBy(() -> k.admit(beta, 20)).hasMessageContaining("tokens per minute");
    }

    @Test
    void aBadLineIsNamedWithoutShowingItsKey() {
        assertThatThrownBy(() -> keys("sk-short x\n", null, null))
                .hasMessageContaining("line 1")
                .hasMessageContaining("shorter than 16")
                .satisfies(e -> assertThat(e.getMessage()).doesNotContain("sk-short"));
        assertThatThrownBy(() -> keys("sk-0123456789abcdef-plain alpha frobnicate=2\n", null, null))
                .hasMessageContaining("frobnicate=2");
        assertThatThrownBy(() -> keys("# nothing\n", null, null)).hasMessageContaining("holds no key");
        assertThatThrownBy(() -> keys("sha256:abc alpha\n", null, null)).hasMessageContaining("64 hex digits");
    }
}
