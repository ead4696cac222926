package dev.mooncakej.conductor.api;

import tools.jackson.databind.JsonNode;

/** A request body's optional and required fields, each type-checked with an error that names it. */
final class JsonFields {
    private JsonFields() {}

    static String requiredString(JsonNode root, String name) {
        JsonNode v = root.get(name);
        if (v == null || v.isNull()) throw ApiException.invalid(name, name + " is required");
        if (!v.isString())
            throw ApiException.invalid(
                    name,
                    name + " must be a string, got " + v.getNodeType().name().toLowerCase());
        return v.asString();
    }

    static Integer optionalInt(JsonNode root, String name) {
        JsonNode v = root.get(name);
        if (v == null || v.isNull()) return null;
        if (!v.isIntegralNumber() || !v.canConvertToInt())
            throw ApiException.invalid(name, name + " must be an integer, got " + v);
        return v.asInt();
    }

    static long requireLong(JsonNode root, String name) {
        JsonNode v = root.get(name);
        if (!v.isIntegralNumber() || !v.canConvertToLong())
            throw ApiException.invalid(name, name + " must be an integer, got " + v);
        return v.asLong();
    }

    static Double optionalNumber(JsonNode root, String name) {
        JsonNode v = root.get(name);
        if (v == null || v.isNull()) return null;
        if (!v.isNumber()) throw ApiException.invalid(name, name + " must be a number, got " + v);
        return v.asDouble();
    }

    static boolean optionalBool(JsonNode root, String name) {
        JsonNode v = root.get(name);
        if (v == null || v.isNull()) return false;
        if (!v.isBoolean()) throw ApiException.invalid(name, name + " must be true or false, got " + v);
        return v.asBoolean();
    }
}
