package dev.mooncakej.engine.constrain;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.JsonNodeFactory;
import tools.jackson.databind.node.ObjectNode;

/**
 * Random JSON schemas of the kinds structured-output clients send (nested objects with required
 * properties, arrays with bounds, enums, numbers, strings with escapes, nullable fields), values that
 * satisfy them, and an independent validator (written for the test, not the code under test).
 */
public final class RandomSchemas {
    public static final JsonMapper JSON = JsonMapper.builder().build();
    private static final JsonNodeFactory F = JsonNodeFactory.instance;
    private static final String[] WORDS = {"alpha", "beta", "quote\"d", "back\\slash", "new\nline", "日本", "😀", "x"};

    private RandomSchemas() {}

    public static ObjectNode schema(SplittableRandom r, int depth) {
        ObjectNode s = F.objectNode();
        int kind = depth <= 0 ? 2 + r.nextInt(6) : r.nextInt(8);
        switch (kind) {
            case 0, 1 -> {
                s.put("type", "object");
                ObjectNode props = s.putObject("properties");
                ArrayNode req = F.arrayNode();
                int n = 1 + r.nextInt(4);
                for (int i = 0; i < n; i++) {
                    String name = (i == 2 ? "k\"ey" : "p") + i;
                    props.set(name, schema(r, depth - 1));
                    if (r.nextInt(3) > 0) req.add(name);
                }
                s.set("required", req);
                s.put("additionalProperties", false);
            }
            case 2 -> {
                s.put("type", "array");
                s.set("items", schema(r, depth - 1));
                int min = r.nextInt(2);
                s.put("minItems", min);
                s.put("maxItems", min + r.nextInt(4));
            }
            case 3 -> {
                s.put("type", "string");
                if (r.nextBoolean()) s.put("maxLength", 3 + r.nextInt(10));
            }
            case 4 -> s.put("type", r.nextBoolean() ? "number" : "integer");
            case 5 -> s.put("type", "boolean");
            case 6 -> {
                ArrayNode e = s.putArray("enum");
                for (int i = 0; i < 1 + r.nextInt(4); i++) {
                    if (r.nextBoolean()) e.add(WORDS[r.nextInt(WORDS.length)] + i);
                    else e.add(r.nextInt(100));
                }
            }
            default -> {
                ArrayNode any = s.putArray("anyOf");
                any.add(schema(r, depth - 1));
                any.add(F.objectNode().put("type", "null"));
            }
        }
        return s;
    }

    /** A value satisfying {@code s}. */
    public static JsonNode value(JsonNode s, SplittableRandom r) {
        if (s.has("enum")) return s.get("enum").get(r.nextInt(s.get("enum").size()));
        if (s.has("anyOf"))
            return value(s.get("anyOf").get(r.nextInt(s.get("anyOf").size())), r);
        return switch (s.get("type").asString()) {
            case "object" -> {
                ObjectNode o = F.objectNode();
                List<String> req = new ArrayList<>();
                s.get("required").forEach(x -> req.add(x.asString()));
                for (Map.Entry<String, JsonNode> p : s.get("properties").properties()) {
                    if (req.contains(p.getKey()) || r.nextBoolean()) o.set(p.getKey(), value(p.getValue(), r));
                }
                yield o;
            }
            case "array" -> {
                ArrayNode a = F.arrayNode();
                int min = s.get("minItems").asInt(), max = s.get("maxItems").asInt();
                for (int i = 0; i < min + r.nextInt(max - min + 1); i++) a.add(value(s.get("items"), r));
                yield a;
            }
            case "string" -> {
                String w = WORDS[r.nextInt(WORDS.length)];
                int max = s.has("maxLength") ? s.get("maxLength").asInt() : 100;
                yield F.stringNode(w.codePointCount(0, w.length()) <= max ? w : "ok");
            }
            case "number" -> F.numberNode(r.nextDouble() * 2000 - 1000);
            case "integer" -> F.numberNode(r.nextInt(2001) - 1000);
            case "boolean" -> F.booleanNode(r.nextBoolean());
            default -> F.nullNode();
        };
    }

    /** Null when {@code v} satisfies {@code s}, else what is wrong. */
    public static String violation(JsonNode s, JsonNode v, String at) {
        if (s.has("enum")) {
            for (JsonNode e : s.get("enum")) if (e.equals(v)) return null;
            return at + ": " + v + " is not in " + s.get("enum");
        }
        if (s.has("anyOf")) {
            for (JsonNode alt : s.get("anyOf")) if (violation(alt, v, at) == null) return null;
            return at + ": " + v + " matches no alternative";
        }
        String type = s.get("type").asString();
        switch (type) {
            case "object" -> {
                if (!v.isObject()) return at + ": expected an object, found " + v;
                for (JsonNode req : s.get("required"))
                    if (!v.has(req.asString())) return at + ": required '" + req.asString() + "' missing";
                for (Iterator<String> it = v.propertyNames().iterator(); it.hasNext(); ) {
                    String k = it.next();
                    JsonNode ps = s.get("properties").get(k);
                    if (ps == null) return at + ": property '" + k + "' not declared";
                    String w = violation(ps, v.get(k), at + "/" + k);
                    if (w != null) return w;
                }
                return null;
            }
            case "array" -> {
                if (!v.isArray()) return at + ": expected an array, found " + v;
                if (v.size() < s.get("minItems").asInt()
                        || v.size() > s.get("maxItems").asInt()) return at + ": " + v.size() + " items";
                for (int i = 0; i < v.size(); i++) {
                    String w = violation(s.get("items"), v.get(i), at + "/" + i);
                    if (w != null) return w;
                }
                return null;
            }
            case "string" -> {
                if (!v.isString()) return at + ": expected a string, found " + v;
                int len = v.asString().codePointCount(0, v.asString().length());
                return s.has("maxLength") && len > s.get("maxLength").asInt() ? at + ": string too long" : null;
            }
            case "number" -> {
                return v.isNumber() ? null : at + ": expected a number, found " + v;
            }
            case "integer" -> {
                return v.isIntegralNumber() ? null : at + ": expected an integer, found " + v;
            }
            case "boolean" -> {
                return v.isBoolean() ? null : at + ": expected a boolean, found " + v;
            }
            default -> {
                return v.isNull() ? null : at + ": expected null, found " + v;
            }
        }
    }
}
