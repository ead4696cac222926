package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.generate.ModelGenerator;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * {@code response_format} through a 1P+1D cluster of the random-weight model: every completion with a
 * JSON schema parses and satisfies it, streamed and not (the prefill worker's first token and each
 * decode step masked by the same schema), where the model unconstrained writes no JSON at all. The
 * schemas are bounded (string lengths, array sizes), so every completion fits in its max_tokens:
 * steering towards a close when the budget runs out is not built yet.
 */
@Timeout(value = 10, unit = TimeUnit.MINUTES)
class StructuredOutputSystemTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static LocalCluster cluster;

    static final List<String> SCHEMAS = List.of(
            "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":12},"
                    + "\"age\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"maxItems\":3,"
                    + "\"items\":{\"enum\":[\"red\",\"green\",\"blue\"]}}},\"required\":[\"name\",\"age\",\"tags\"],"
                    + "\"additionalProperties\":false}",
            "{\"type\":\"array\",\"items\":{\"type\":\"boolean\"},\"minItems\":1,\"maxItems\":5}",
            "{\"enum\":[\"yes\",\"no\",\"maybe\"]}",
            "{\"type\":\"object\",\"properties\":{\"point\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":"
                    + "\"number\"},\"y\":{\"type\":\"number\"}},\"required\":[\"x\",\"y\"],"
                    + "\"additionalProperties\":false},"
                    + "\"label\":{\"anyOf\":[{\"type\":\"string\",\"maxLength\":6},{\"type\":\"null\"}]}},"
                    + "\"required\":[\"point\",\"label\"],\"additionalProperties\":false}");

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

    @Test
    void everyCompletionParsesAndSatisfiesItsSchemaStreamedAndNot() throws Exception {
        for (int i = 0; i < SCHEMAS.size(); i++) {
            JsonNode schema = JSON.readTree(SCHEMAS.get(i));
            for (int seed = 1; seed <= 3; seed++) {
                HttpResponse<String> r =
                        LocalCluster.post(cluster.url() + "/v1/chat/completions", body(SCHEMAS.get(i), seed, false));
                assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
                JsonNode choice = JSON.readTree(r.body()).get("choices").get(0);
                assertThat(choice.get("finish_reason").asString()).as(r.body()).isEqualTo("stop");
                String content = choice.get("message").get("content").asString();
                assertThat(violation(schema, JSON.readTree(content)))
                        .as("schema %d: %s", i, content)
                        .isNull();

                HttpResponse<String> s =
                        LocalCluster.post(cluster.url() + "/v1/chat/completions", body(SCHEMAS.get(i), seed, true));
                assertThat(s.statusCode()).as(s.body()).isEqualTo(200);
                StringBuilder streamed = new StringBuilder();
                for (String line : s.body().split("\n")) {
                    if (!line.startsWith("data:") || line.contains("[DONE]")) continue;
                    JsonNode delta = JSON.readTree(line.substring(5).trim())
                            .get("choices")
                            .get(0)
                            .path("delta");
                    if (delta.has("content"))
                        streamed.append(delta.get("content").asString());
                }
                assertThat(streamed.toString()).as("streamed, same seed").isEqualTo(content);
            }
        }
    }

    @Test
    void withoutResponseFormatTheSameRequestIsNotTheSchemasJson() throws Exception {
        String plain = body(SCHEMAS.get(0), 1, false).replaceAll(",\\\"response_format\\\":.*}$", "}");
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
            valid = violation(JSON.readTree(SCHEMAS.get(0)), JSON.readTree(content)) == null;
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
