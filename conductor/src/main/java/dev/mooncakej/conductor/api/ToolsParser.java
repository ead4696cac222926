package dev.mooncakej.conductor.api;

import dev.mooncakej.conductor.tools.ToolCallFormat;
import dev.mooncakej.conductor.tools.ToolSet;
import dev.mooncakej.engine.constrain.JsonSchemas;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/** {@code tools}, {@code tool_choice} and {@code parallel_tool_calls} of a chat request, validated. */
final class ToolsParser {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private ToolsParser() {}

    /**
     * The request's tools, or null when it offers none ({@code tools} absent or empty, and no choice that
     * needs one). {@code format}: the model's tool-call family.
     */
    static ToolSet parse(JsonNode root, ToolCallFormat format) {
        JsonNode tools = root.get("tools");
        List<ToolSet.Function> functions = new ArrayList<>();
        if (tools != null && !tools.isNull()) {
            if (!tools.isArray())
                throw ApiException.invalid(
                        "tools", "tools must be an array of {\"type\": \"function\", \"function\": {...}} objects");
            Set<String> names = new HashSet<>();
            for (int i = 0; i < tools.size(); i++) {
                ToolSet.Function f = function(tools.get(i), "tools[" + i + "]");
                if (!names.add(f.name()))
                    throw ApiException.invalid(
                            "tools", "tools[" + i + "].function.name '" + f.name() + "' is offered twice");
                functions.add(f);
            }
        }
        JsonNode pc = root.get("parallel_tool_calls");
        if (pc != null && !pc.isNull() && !pc.isBoolean())
            throw ApiException.invalid("parallel_tool_calls", "parallel_tool_calls must be true or false");
        boolean parallel = pc == null || pc.isNull() || pc.asBoolean();
        JsonNode tc = root.get("tool_choice");
        ToolSet.Choice choice = functions.isEmpty() ? ToolSet.Choice.NONE : ToolSet.Choice.AUTO;
        String named = null;
        if (tc != null && !tc.isNull()) {
            if (tc.isString()) {
                choice = switch (tc.asString()) {
                    case "none" -> ToolSet.Choice.NONE;
                    case "auto" -> ToolSet.Choice.AUTO;
                    case "required" -> ToolSet.Choice.REQUIRED;
                    default ->
                        throw ApiException.invalid(
                                "tool_choice",
                                "tool_choice '" + clip(tc.asString()) + "' is not known: expected none, auto, required"
                                        + " or {\"type\": \"function\", \"function\": {\"name\": ...}}");
                };
            } else if (tc.isObject()
                    && "function".equals(tc.path("type").asString(""))
                    && tc.path("function").path("name").isString()) {
                choice = ToolSet.Choice.NAMED;
                named = tc.get("function").get("name").asString();
                String n = named;
                if (functions.stream().noneMatch(f -> f.name().equals(n)))
                    throw ApiException.invalid(
                            "tool_choice",
                            "tool_choice names the function '" + clip(named) + "', which tools does not offer");
            } else
                throw ApiException.invalid(
                        "tool_choice",
                        "tool_choice must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\":"
                                + " ...}}");
            if (functions.isEmpty() && choice != ToolSet.Choice.NONE && choice != ToolSet.Choice.AUTO)
                throw ApiException.invalid(
                        "tool_choice", "tool_choice " + tc + " needs tools: the request offers none");
            if (functions.isEmpty()) choice = ToolSet.Choice.NONE;
        }
        if (functions.isEmpty()) return null;
        ToolSet set = new ToolSet(List.copyOf(functions), choice, named, parallel, format);
        JsonNode schema = set.constraintSchema();
        if (schema != null) {
            try {
                JsonSchemas.compile(schema, set.strictSchema());
            } catch (IllegalArgumentException e) {
                throw ApiException.invalid(
                        "tools",
                        "unsupported_parameter",
                        "tools: a function's parameters cannot be enforced for tool_choice " + tc + ": "
                                + e.getMessage());
            }
        }
        return set;
    }

    private static ToolSet.Function function(JsonNode t, String p) {
        if (!t.isObject()
                || !"function".equals(t.path("type").asString(""))
                || !t.path("function").isObject())
            throw ApiException.invalid(
                    "tools",
                    p + " must be {\"type\": \"function\", \"function\": {\"name\": ..., \"parameters\": ...}}"
                            + " (function tools only)");
        JsonNode f = t.get("function");
        JsonNode name = f.get("name");
        if (name == null || !name.isString() || !name.asString().matches("[A-Za-z0-9_.-]{1,64}"))
            throw ApiException.invalid(
                    "tools",
                    p + ".function.name "
                            + (name == null ? "is missing" : "'" + clip(name.toString()) + "' is not valid")
                            + ": expected 1-64 of [A-Za-z0-9_.-]");
        JsonNode d = f.get("description");
        if (d != null && !d.isNull() && !d.isString())
            throw ApiException.invalid("tools", p + ".function.description must be a string");
        JsonNode params = f.get("parameters");
        if (params == null || params.isNull()) params = JSON.readTree("{\"type\":\"object\",\"properties\":{}}");
        if (!params.isObject())
            throw ApiException.invalid("tools", p + ".function.parameters must be a JSON schema object");
        JsonNode strict = f.get("strict");
        return new ToolSet.Function(
                name.asString(),
                d == null || d.isNull() ? null : d.asString(),
                params,
                strict != null && strict.asBoolean(false));
    }

    private static String clip(String s) {
        return s.length() <= 64 ? s : s.substring(0, 64) + "...";
    }
}
