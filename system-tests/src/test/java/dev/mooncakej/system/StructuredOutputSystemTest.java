package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.constrain.RandomSchemas;
import dev.mooncakej.engine.generate.ModelGenerator;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * {@code response_format} through a 1P+1D cluster of the random-weight model: for 100 random schemas
 * (nested objects with required properties, arrays with bounds, enums, numbers, strings with escapes,
 * nullable fields) every completion parses and satisfies its schema, streamed and not (the prefill
 * worker's first token and each decode step masked by the same schema), where the model unconstrained
 * writes no JSON at all; and a value is closed within a small {@code max_tokens} (steering), where the
 * same request unsteered would be cut inside a string.
 */
@Timeout(value = 10, unit = TimeUnit.MINUTES)
class StructuredOutputSystemTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static LocalCluster cluster;

    static final String SCHEMA = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":12},"
            + "\"age\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"maxItems\":3,"
            + "\"items\":{\"enum\":[\"red\",\"green\",\"blue\"]}}},\"required\":[\"name\",\"age\",\"tags\"],"
            + "\"additionalProperties\":false}";

    @BeforeAll
    static void up() throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-structured");
        Path model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        cluster = LocalCluster.start(model, 1, 1, Map.of("MOONCAKEJ_CONDUCTOR_TTFTSLOSECONDS", "600"));
    }

    @AfterAll
    static void down() {
        if (cluster != null) cluster.close();
    }

    static String body(String schema, int seed, boolean stream) {
        return "{\"model\":\"mooncakej-tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"Answer in JSON\"}],"
                + "\"max_tokens\":400,\"temperature\":1.0,\"seed\":" + seed + ",\"stream\":" + stream
                + ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"answer\",\"strict\":true,"
                + "\"schema\":" + schema + "}}}";
    }

    static String body(String schema, int seed, boolean stream, int maxTokens) {
        return body(schema, seed, stream).replace("\"max_tokens\":400", "\"max_tokens\":" + maxTokens);
    }

    /** The streamed content of an SSE body, the deltas joined. */
    static String streamed(String sse) throws Exception {
        StringBuilder out = new StringBuilder();
        for (String line : sse.split("\n")) {
            if (!line.startsWith("data:") || line.contains("[DONE]")) continue;
            JsonNode delta = JSON.readTree(line.substring(5).trim())
                    .get("choices")
                    .get(0)
                    .path("delta");
            if (delta.has("content")) out.append(delta.get("content").asString());
        }
        return out.toString();
    }

    @Test
    void hundredRandomSchemasEveryCompletionParsesAndSatisfiesItsSchemaStreamedAndNot() throws Exception {
        SplittableRandom r = new SplittableRandom(27);
        int stopped = 0;
        for (int i = 0; i < 100; i++) {
            JsonNode schema = RandomSchemas.schema(r, 3);
            String text = JSON.writeValueAsString(schema);
            HttpResponse<String> plain =
                    LocalCluster.post(cluster.url() + "/v1/chat/completions", body(text, i, false, 200));
            assertThat(plain.statusCode()).as(plain.body()).isEqualTo(200);
            JsonNode choice = JSON.readTree(plain.body()).get("choices").get(0);
            String content = choice.get("message").get("content").asString();
            if (choice.get("finish_reason").asString().equals("stop")) stopped++;
            assertThat(RandomSchemas.violation(schema, JSON.readTree(content), "#"))
                    .as("schema %d %s: %s", i, text, content)
                    .isNull();
            HttpResponse<String> s =
                    LocalCluster.post(cluster.url() + "/v1/chat/completions", body(text, i, true, 200));
            assertThat(s.statusCode()).as(s.body()).isEqualTo(200);
            assertThat(streamed(s.body()))
                    .as("schema %d streamed, same seed", i)
                    .isEqualTo(content);
            if (i % 25 == 0) System.out.printf("schema %d %s%n  -> %s%n", i, text, content);
        }
        System.out.printf("100 schemas: %d completions ended by the model, the rest closed by steering%n", stopped);
    }

    @Test
    void aSmallMaxTokensStillGivesAClosedValue() throws Exception {
        String schema = "{\"type\":\"object\",\"properties\":{\"note\":{\"type\":\"string\"},"
                + "\"n\":{\"type\":\"integer\"}},\"required\":[\"note\",\"n\"],\"additionalProperties\":false}";
        for (int seed = 1; seed <= 5; seed++) {
            HttpResponse<String> r =
                    LocalCluster.post(cluster.url() + "/v1/chat/completions", body(schema, seed, false, 24));
            assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
            JsonNode out = JSON.readTree(r.body());
            String content =
                    out.get("choices").get(0).get("message").get("content").asString();
            assertThat(out.get("usage").get("completion_tokens").asInt()).isLessThanOrEqualTo(24);
            JsonNode v = JSON.readTree(content);
            assertThat(v.get("note").isString() && v.get("n").isIntegralNumber())
                    .as("closed within 24 tokens: %s", content)
                    .isTrue();
        }
    }

    @Test
    void withoutResponseFormatTheSameRequestIsNotTheSchemasJson() throws Exception {
        String plain = body(SCHEMA, 1, false).replaceAll(",\\\"response_format\\\":.*}$", "}");
        assertThat(plain).doesNotContain("response_format");
        HttpResponse<String> r = LocalCluster.post(cluster.url() + "/v1/chat/completions", plain);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        String content = JSON.readTree(r.body())
                .get("choices")
                .get(0)
                .get("message")
                .get("content")
                .asString();
        boolean valid;
        try {
            valid = violation(JSON.readTree(SCHEMA), JSON.readTree(content)) == null;
        } catch (RuntimeException e) {
            valid = false;
        }
        assertThat(valid).as("unconstrained output %s", content).isFalse();
    }

    @Test
    void jsonObjectGivesAnObjectOrAValidPrefixWhenTheBudgetEnds() throws Exception {
        HttpResponse<String> r = LocalCluster.post(
                cluster.url() + "/v1/chat/completions",
                "{\"model\":\"mooncakej-tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                        + "\"max_tokens\":300,"
                        + "\"temperature\":0,\"response_format\":{\"type\":\"json_object\"}}");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        JsonNode choice = JSON.readTree(r.body()).get("choices").get(0);
        String content = choice.get("message").get("content").asString();
        assertThat(content.stripLeading()).startsWith("{");
        if (choice.get("finish_reason").asString().equals("stop"))
            assertThat(JSON.readTree(content).isObject()).isTrue();
    }

    @Test
    void anUnsupportedKeywordIsRefusedByNameBeforeAnythingRuns() throws Exception {
        HttpResponse<String> r = LocalCluster.post(
                cluster.url() + "/v1/chat/completions", body("{\"type\":\"integer\",\"minimum\":3}", 1, false));
        assertThat(r.statusCode()).isEqualTo(400);
        assertThat(r.body()).contains("response_format").contains("'minimum' is not supported");
    }

    /** Null when {@code v} satisfies the test's schemas (their keywords only), else what is wrong. */
    static String violation(JsonNode s, JsonNode v) {
        if (s.has("enum")) return contains(s.get("enum"), v) ? null : v + " not in " + s.get("enum");
        if (s.has("anyOf")) {
            for (JsonNode a : s.get("anyOf")) if (violation(a, v) == null) return null;
            return v + " matches no alternative";
        }
        switch (s.get("type").asString()) {
            case "object" -> {
                if (!v.isObject()) return "not an object: " + v;
                for (JsonNode req : s.get("required")) if (!v.has(req.asString())) return "missing " + req;
                for (String k : v.propertyNames()) {
                    JsonNode ps = s.get("properties").get(k);
                    if (ps == null) return "undeclared " + k;
                    String w = violation(ps, v.get(k));
                    if (w != null) return k + ": " + w;
                }
                return null;
            }
            case "array" -> {
                if (!v.isArray()) return "not an array: " + v;
                if (v.size() < s.path("minItems").asInt(0)
                        || v.size() > s.path("maxItems").asInt(1000)) return v.size() + " items";
                for (JsonNode e : v) {
                    String w = violation(s.get("items"), e);
                    if (w != null) return w;
                }
                return null;
            }
            case "string" -> {
                if (!v.isString()) return "not a string: " + v;
                return v.asString().codePointCount(0, v.asString().length())
                                > s.path("maxLength").asInt(1000)
                        ? "too long"
                        : null;
            }
            case "integer" -> {
                return v.isIntegralNumber() ? null : "not an integer: " + v;
            }
            case "number" -> {
                return v.isNumber() ? null : "not a number: " + v;
            }
            case "boolean" -> {
                return v.isBoolean() ? null : "not a boolean: " + v;
            }
            default -> {
                return v.isNull() ? null : "not null: " + v;
            }
        }
    }

    private static boolean contains(JsonNode arr, JsonNode v) {
        for (JsonNode e : arr) if (e.equals(v)) return true;
        return false;
    }
}
