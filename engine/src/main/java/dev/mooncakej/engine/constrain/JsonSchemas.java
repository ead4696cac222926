package dev.mooncakej.engine.constrain;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Compiles a JSON schema (the subset structured-output clients send: OpenAI's strict mode, Pydantic and
 * Zod output) to a {@link SchemaNode}. A keyword outside the subset is refused by name, with its
 * location, rather than ignored: a constraint that is not enforced would let invalid output through.
 */
public final class JsonSchemas {
    /** Keywords that constrain and are enforced. */
    static final Set<String> ENFORCED = Set.of(
            "type",
            "properties",
            "required",
            "additionalProperties",
            "items",
            "enum",
            "const",
            "anyOf",
            "minItems",
            "maxItems",
            "minLength",
            "maxLength",
            "$ref",
            "$defs",
            "definitions");

    /** Keywords that only annotate and are accepted. */
    static final Set<String> ANNOTATIONS =
            Set.of("title", "description", "default", "examples", "$schema", "$id", "$comment", "strict");

    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final int MAX_REF_DEPTH = 32;

    private JsonSchemas() {}

    /** Any JSON value whose top level is an object ({@code response_format: {type: json_object}}). */
    public static SchemaNode anyObject() {
        return new SchemaNode.Obj(List.of(), List.of(), Set.of(), new SchemaNode.Any());
    }

    /**
     * @param strict OpenAI's {@code strict: true}: properties not declared are refused even when
     *               {@code additionalProperties} is absent
     */
    public static SchemaNode compile(JsonNode schema, boolean strict) {
        return new JsonSchemas.Compiler(schema, strict).node(schema, "#", 0);
    }

    private record Compiler(JsonNode root, boolean strict) {
        SchemaNode node(JsonNode s, String at, int depth) {
            if (depth > MAX_REF_DEPTH)
                throw refuse(at, "nests deeper than " + MAX_REF_DEPTH + " levels (a recursive $ref is not supported)");
            if (s.isBoolean()) {
                if (s.asBoolean()) return new SchemaNode.Any();
                throw refuse(at, "is the schema false, which no value satisfies");
            }
            if (!s.isObject()) throw refuse(at, "is " + s.getNodeType() + "; expected a schema object");
            for (String k : s.propertyNames()) {
                if (!ENFORCED.contains(k) && !ANNOTATIONS.contains(k)) {
                    throw refuse(
                            at,
                            "keyword '" + k + "' is not supported; supported: " + ENFORCED + " (and the annotations "
                                    + ANNOTATIONS + ")");
                }
            }
            if (s.has("$ref"))
                return node(
                        resolve(s.get("$ref").asString(""), at), s.get("$ref").asString(), depth + 1);
            if (s.has("const")) return literal(List.of(s.get("const")));
            if (s.has("enum")) {
                JsonNode e = s.get("enum");
                if (!e.isArray() || e.isEmpty()) throw refuse(at + "/enum", "expected a non-empty array");
                List<JsonNode> values = new ArrayList<>();
                e.forEach(values::add);
                return literal(values);
            }
            if (s.has("anyOf")) {
                JsonNode a = s.get("anyOf");
                if (!a.isArray() || a.isEmpty()) throw refuse(at + "/anyOf", "expected a non-empty array of schemas");
                List<SchemaNode> alts = new ArrayList<>();
                for (int i = 0; i < a.size(); i++) alts.add(node(a.get(i), at + "/anyOf/" + i, depth + 1));
                return alts.size() == 1 ? alts.get(0) : new SchemaNode.Union(alts);
            }
            JsonNode type = s.get("type");
            if (type == null) return s.has("properties") ? object(s, at, depth) : new SchemaNode.Any();
            if (type.isArray()) {
                List<SchemaNode> alts = new ArrayList<>();
                for (JsonNode t : type) alts.add(typed(t.asString(""), s, at, depth));
                if (alts.isEmpty()) throw refuse(at + "/type", "expected at least one type");
                return alts.size() == 1 ? alts.get(0) : new SchemaNode.Union(alts);
            }
            return typed(type.asString(""), s, at, depth);
        }

        SchemaNode typed(String type, JsonNode s, String at, int depth) {
            return switch (type) {
                case "object" -> object(s, at, depth);
                case "array" -> {
                    SchemaNode items =
                            s.has("items") ? node(s.get("items"), at + "/items", depth + 1) : new SchemaNode.Any();
                    int min = count(s, "minItems", at, 0), max = count(s, "maxItems", at, Integer.MAX_VALUE);
                    if (min > max) throw refuse(at, "minItems " + min + " exceeds maxItems " + max);
                    yield new SchemaNode.Arr(items, min, max);
                }
                case "string" -> {
                    int min = count(s, "minLength", at, 0), max = count(s, "maxLength", at, Integer.MAX_VALUE);
                    if (min > max) throw refuse(at, "minLength " + min + " exceeds maxLength " + max);
                    yield new SchemaNode.Str(min, max);
                }
                case "number" -> new SchemaNode.Num(false);
                case "integer" -> new SchemaNode.Num(true);
                case "boolean" -> new SchemaNode.Bool();
                case "null" -> new SchemaNode.Null();
                default ->
                    throw refuse(
                            at + "/type",
                            "type '" + type + "' is not known; expected object, array, string, number, integer, "
                                    + "boolean or null");
            };
        }

        SchemaNode object(JsonNode s, String at, int depth) {
            List<String> names = new ArrayList<>();
            List<SchemaNode> values = new ArrayList<>();
            JsonNode props = s.get("properties");
            if (props != null) {
                if (!props.isObject()) throw refuse(at + "/properties", "expected an object of schemas");
                if (props.size() > JsonMatcher.MAX_PROPERTIES)
                    throw refuse(
                            at + "/properties",
                            "has " + props.size() + " properties; at most " + JsonMatcher.MAX_PROPERTIES
                                    + " are supported");
                for (Map.Entry<String, JsonNode> e : props.properties()) {
                    names.add(e.getKey());
                    values.add(node(e.getValue(), at + "/properties/" + e.getKey(), depth + 1));
                }
            }
            Set<String> required = new LinkedHashSet<>();
            if (s.has("required")) {
                for (JsonNode r : s.get("required")) {
                    if (!names.contains(r.asString(""))) {
                        throw refuse(at + "/required", "names '" + r.asString("") + "', which is not in properties");
                    }
                    required.add(r.asString());
                }
            }
            SchemaNode additional;
            JsonNode ap = s.get("additionalProperties");
            if (ap == null) additional = strict ? null : new SchemaNode.Any();
            else if (ap.isBoolean()) additional = ap.asBoolean() ? new SchemaNode.Any() : null;
            else additional = node(ap, at + "/additionalProperties", depth + 1);
            return new SchemaNode.Obj(List.copyOf(names), List.copyOf(values), Set.copyOf(required), additional);
        }

        JsonNode resolve(String ref, String at) {
            for (String prefix : List.of("#/$defs/", "#/definitions/")) {
                if (ref.startsWith(prefix)) {
                    JsonNode d =
                            root.path(prefix.substring(2, prefix.length() - 1)).get(ref.substring(prefix.length()));
                    if (d == null) throw refuse(at, "$ref '" + ref + "' names no definition");
                    return d;
                }
            }
            if (ref.equals("#")) return root;
            throw refuse(at, "$ref '" + ref + "' is not supported; expected #/$defs/NAME or #/definitions/NAME");
        }

        SchemaNode literal(List<JsonNode> values) {
            List<byte[]> texts = new ArrayList<>();
            Set<String> seen = new HashSet<>();
            for (JsonNode v : values) {
                String t = JSON.writeValueAsString(v);
                if (seen.add(t)) texts.add(t.getBytes(StandardCharsets.UTF_8));
            }
            return new SchemaNode.Literal(List.copyOf(texts));
        }

        int count(JsonNode s, String key, String at, int dflt) {
            if (!s.has(key)) return dflt;
            JsonNode v = s.get(key);
            if (!v.canConvertToInt() || v.asInt() < 0)
                throw refuse(at + "/" + key, "expected a count >= 0, found " + v);
            return v.asInt();
        }
    }

    static IllegalArgumentException refuse(String at, String problem) {
        return new IllegalArgumentException("json schema " + at + ": " + problem);
    }
}
