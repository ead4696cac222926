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
        assertThat(k.authenticate("bearer " + key)).as("the scheme in any case").isSameAs(alpha);
        assertThat(k.authenticate("BEARER " + key)).isSameAs(alpha);
        assertThatThrownBy(() -> k.authenticate(null))
                .satisfies(e -> assertThat(((ApiException) e).status()).isEqualTo(401));
        assertThatThrownBy(() -> k.authenticate("Bearer nope")).hasMessageContaining("not valid");
        Runnable first = k.admit(alpha);
        assertThatThrownBy(() -> k.admit(alpha))
                .satisfies(e -> {
                    assertThat(((ApiException) e).status()).isEqualTo(429);
                    assertThat(((ApiException) e).retryAfterSeconds()).isPositive();
                })
                .hasMessageContaining("concurrent");
        assertThat(k.tenantMetrics()).contains("mooncakej_api_key_concurrent{key=\"alpha\"} 1.0");
        first.run();
        first.run(); // once only
        assertThat(k.tenantMetrics()).contains("mooncakej_api_key_concurrent{key=\"alpha\"} 0.0");
        k.admit(alpha).run();
        ApiKeys.Tenant beta = k.authenticate("Bearer sk-other-0123456789");
        k.admit(beta).run();
        k.admitTokens(beta, 90);
        assertThatThrownBy(() -> k.admitTokens(beta, 20)).hasMessageContaining("tokens per minute");
    }

    @Test
    void aTenantsSaltDerivesFromASecretNeverFromItsName() throws Exception {
        String a = "sk-0123456789abcdef-aaaa", b = "sk-0123456789abcdef-bbbb", c = "sk-0123456789abcdef-cccc";
        ApiKeys k = keys(
                a + " beta salt\n" + b + " gamma salt=shared-secret-0123456789\n" + c
                        + " delta salt=shared-secret-0123456789\n",
                null,
                null);
        String salt = k.authenticate("Bearer " + a).salt();
        assertThat(salt).isNotNull().doesNotContain("beta").isNotEqualTo("tenant:beta");
        assertThat(keys(a.replace('a', 'e') + " beta salt\n", null, null)
                        .authenticate("Bearer " + a.replace('a', 'e'))
                        .salt())
                .as("another key of the same name has another salt")
                .isNotEqualTo(salt);
        assertThat(k.authenticate("Bearer " + b).salt())
                .as("a configured salt is shared by the keys that hold it")
                .isEqualTo(k.authenticate("Bearer " + c).salt())
                .isNotEqualTo(salt);
        assertThat(k.authenticate("Bearer " + a).toString()).doesNotContain(salt);
        assertThatThrownBy(() -> keys(a + " beta salt=short\n", null, null))
                .hasMessageContaining("16 or more")
                .satisfies(e -> assertThat(e.getMessage()).doesNotContain("short\n"));
    }

    @Test
    void perKeyMetersStayOffThePublicRegistryUnlessOptedIn() throws Exception {
        var registry = new SimpleMeterRegistry();
        Path f = Files.writeString(dir.resolve("keys2"), "sk-0123456789abcdef-plain alpha\n");
        ApiKeys k = new ApiKeys(ApiFixtures.props(f.toString(), null, null), registry);
        var alpha = k.authenticate("Bearer sk-0123456789abcdef-plain");
        k.admit(alpha).run();
        k.admitTokens(alpha, 5);
        assertThat(registry.getMeters())
                .as("public meters")
                .allSatisfy(m -> assertThat(m.getId().getTag("key")).isNull());
        assertThat(registry.find("mooncakej.api.requests")
                        .tag("outcome", "admitted")
                        .counter())
                .isNotNull();
        assertThat(k.tenantMetrics()).contains("key=\"alpha\"");
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
