package dev.mooncakej.conductor.api;

import dev.mooncakej.engine.constrain.JsonSchemas;
import dev.mooncakej.kvcache.wire.WorkerMessages.Sampling;
import java.util.HashMap;
import java.util.Map;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/** The sampling parameters of a completion or chat request, checked as OpenAI and vLLM document them. */
final class SamplingParser {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private SamplingParser() {}

    /**
     * The sampling parameters, each range-checked as OpenAI (and vLLM, for its extensions) documents
     * them; a parameter whose value would change sampling in a way the sampler does not implement is
     * refused by name (its neutral value is accepted): presence and frequency penalties,
     * {@code repetition_penalty}, {@code min_p}, {@code top_logprobs} above 0, completions' {@code
     * logprobs} above 1.
     */
    static Sampling sampling(JsonNode root, boolean chat, int vocab) {
        Double temperature = range(root, "temperature", 0, 2, "0..2");
        Double topP = JsonFields.optionalNumber(root, "top_p");
        if (topP != null && (topP <= 0 || topP > 1))
            throw ApiException.invalid("top_p", "top_p=" + topP + " is out of range: expected a number in (0, 1]");
        Integer topK = JsonFields.optionalInt(root, "top_k");
        if (topK != null && topK < -1)
            throw ApiException.invalid("top_k", "top_k=" + topK + " is out of range: expected -1 or 0 (all) or >= 1");
        neutral(root, "presence_penalty", -2, 2, "-2..2", 0);
        neutral(root, "frequency_penalty", -2, 2, "-2..2", 0);
        Double rp = JsonFields.optionalNumber(root, "repetition_penalty");
        if (rp != null && !(rp > 0 && rp <= 2))
            throw ApiException.invalid(
                    "repetition_penalty", "repetition_penalty=" + rp + " is out of range: expected a number in (0, 2]");
        if (rp != null && rp != 1)
            throw unsupported("repetition_penalty", "repetition_penalty other than 1 is not supported by this server");
        neutral(root, "min_p", 0, 1, "0..1", 0);
        Long seed = root.has("seed") && !root.get("seed").isNull() ? JsonFields.requireLong(root, "seed") : null;
        boolean logprobs;
        if (chat) {
            logprobs = JsonFields.optionalBool(root, "logprobs");
            Integer top = JsonFields.optionalInt(root, "top_logprobs");
            if (top != null && (top < 0 || top > 20))
                throw ApiException.invalid("top_logprobs", "top_logprobs=" + top + " is out of range: expected 0..20");
            if (top != null && !logprobs)
                throw ApiException.invalid("top_logprobs", "top_logprobs needs logprobs: true");
            if (top != null && top > 0)
                throw unsupported(
                        "top_logprobs",
                        "top_logprobs above 0 is not supported by this server (it returns the chosen token's "
                                + "log-probability; send top_logprobs 0 or leave it out)");
        } else {
            Integer lp = JsonFields.optionalInt(root, "logprobs");
            if (lp != null && (lp < 0 || lp > 5))
                throw ApiException.invalid("logprobs", "logprobs=" + lp + " is out of range: expected 0..5");
            if (lp != null && lp > 1)
                throw unsupported(
                        "logprobs",
                        "logprobs above 1 is not supported by this server (it returns the chosen token's "
                                + "log-probability; send 0 or 1)");
            logprobs = lp != null;
        }
        float t = temperature == null ? 1f : temperature.floatValue();
        String[] schema = responseFormat(root.get("response_format"));
        Integer minTokens = JsonFields.optionalInt(root, "min_tokens");
        if (minTokens != null && minTokens < 0)
            throw ApiException.invalid("min_tokens", "min_tokens=" + minTokens + " is out of range: expected >= 0");
        JsonNode ie = root.get("ignore_eos");
        if (ie != null && !ie.isNull() && !ie.isBoolean())
            throw ApiException.invalid("ignore_eos", "ignore_eos must be true or false");
        return new Sampling(
                t,
                topP == null ? 1f : topP.floatValue(),
                topK == null ? 0 : Math.max(0, topK),
                seed,
                logprobs,
                schema == null ? null : schema[0],
                schema != null && schema[1] != null,
                logitBias(root.get("logit_bias"), vocab),
                minTokens,
                ie != null && ie.asBoolean(false));
    }

    /**
     * OpenAI's {@code logit_bias}: token id (as a string key) to a bias in -100..100 added to its logit
     * ({@code -100} bans the token, {@code 100} all but forces it); at most 300 entries, as OpenAI allows.
     */
    static Map<Integer, Float> logitBias(JsonNode lb, int vocab) {
        if (lb == null || lb.isNull()) return null;
        if (!lb.isObject())
            throw ApiException.invalid(
                    "logit_bias", "logit_bias must be an object of token id to bias, like {\"50256\": -100}");
        if (lb.size() > 300)
            throw ApiException.invalid("logit_bias", "logit_bias has " + lb.size() + " entries: expected at most 300");
        Map<Integer, Float> out = new HashMap<>();
        for (String k : lb.propertyNames()) {
            int id;
            try {
                id = Integer.parseInt(k);
            } catch (NumberFormatException e) {
                id = -1;
            }
            if (id < 0 || id >= vocab)
                throw ApiException.invalid(
                        "logit_bias",
                        "logit_bias key '" + (k.length() > 32 ? k.substring(0, 32) + "..." : k)
                                + "' is not a token id: expected an integer in 0.." + (vocab - 1));
            JsonNode v = lb.get(k);
            if (!v.isNumber() || !(v.asDouble() >= -100 && v.asDouble() <= 100))
                throw ApiException.invalid(
                        "logit_bias",
                        "logit_bias[" + k + "]=" + v + " is out of range: expected a number in -100..100");
            out.put(id, (float) v.asDouble());
        }
        return out;
    }

    /**
     * {@code response_format}: null for text; for {@code json_object} the schema of any object; for
     * {@code json_schema} its schema (and "strict" in [1] when {@code strict: true}), compiled here so an
     * unsupported keyword is refused before anything runs.
     */
    static String[] responseFormat(JsonNode rf) {
        if (rf == null || rf.isNull()) return null;
        if (!rf.isObject())
            throw ApiException.invalid(
                    "response_format", "response_format: expected an object such as {\"type\": \"json_object\"}");
        String type = rf.path("type").asString("");
        String schema;
        boolean strict = false;
        switch (type) {
            case "text" -> {
                return null;
            }
            case "json_object" -> schema = "{\"type\":\"object\"}";
            case "json_schema" -> {
                JsonNode js = rf.get("json_schema");
                if (js == null
                        || !js.isObject()
                        || !js.has("schema")
                        || !js.get("schema").isObject())
                    throw ApiException.invalid(
                            "response_format",
                            "response_format.json_schema: expected {\"name\": ..., \"schema\": {...}, "
                                    + "\"strict\": true}");
                strict = js.path("strict").asBoolean(false);
                schema = js.get("schema").toString();
            }
            default ->
                throw ApiException.invalid(
                        "response_format",
                        "response_format type '" + type + "' is not known; expected text, json_object or json_schema");
        }
        try {
            JsonSchemas.compile(JSON.readTree(schema), strict);
        } catch (IllegalArgumentException e) {
            throw ApiException.invalid(
                    "response_format", "unsupported_parameter", "response_format: " + e.getMessage());
        }
        return new String[] {schema, strict ? "strict" : null};
    }

    private static Double range(JsonNode root, String name, double min, double max, String expected) {
        Double v = JsonFields.optionalNumber(root, name);
        if (v != null && !(v >= min && v <= max))
            throw ApiException.invalid(name, name + "=" + v + " is out of range: expected " + expected);
        return v;
    }

    /** A parameter accepted only at its neutral value (range-checked first). */
    private static void neutral(JsonNode root, String name, double min, double max, String expected, double neutral) {
        Double v = range(root, name, min, max, expected);
        if (v != null && v != neutral)
            throw unsupported(
                    name,
                    name + " other than " + (neutral == 0 ? "0" : String.valueOf(neutral))
                            + " is not supported by this server");
    }

    static ApiException unsupported(String param, String message) {
        return ApiException.invalid(param, "unsupported_parameter", message);
    }
}
