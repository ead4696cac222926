package dev.mooncakej.conductor.tools;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The function tools a chat request offers, its {@code tool_choice} and {@code parallel_tool_calls},
 * and the family its model writes calls in.
 *
 * @param format the model's family ({@link ToolCallFormat#HERMES} and the others), what {@code auto} parses
 */
public record ToolSet(List<Function> functions, Choice choice, String named, boolean parallel, ToolCallFormat format) {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    /** {@code tool_choice}. */
    public enum Choice {
        NONE,
        AUTO,
        REQUIRED,
        NAMED
    }

    /** One function: its name, description (or null), parameters schema, and OpenAI's {@code strict}. */
    public record Function(String name, String description, JsonNode parameters, boolean strict) {}

    /** What the answer is parsed as: null for {@code none} (the answer is text). */
    public ToolCallFormat outputFormat() {
        return switch (choice) {
            case NONE -> null;
            case AUTO -> format;
            case REQUIRED -> ToolCallFormat.CALL_ARRAY;
            case NAMED -> ToolCallFormat.ARGUMENTS;
        };
    }

    /** A new parser of this request's answer, or null when it is not parsed for calls. */
    public ToolCallStream stream() {
        ToolCallFormat f = outputFormat();
        return f == null ? null : new ToolCallStream(f, choice == Choice.NAMED ? named : null);
    }

    /** The tools as the chat template gets them: OpenAI's objects, as Hugging Face passes them. */
    public List<Map<String, Object>> templateTools() {
        List<Map<String, Object>> out = new ArrayList<>();
        for (Function f : functions) {
            Map<String, Object> fn = new LinkedHashMap<>();
            fn.put("name", f.name());
            if (f.description() != null) fn.put("description", f.description());
            fn.put("parameters", JSON.convertValue(f.parameters(), Map.class));
            Map<String, Object> t = new LinkedHashMap<>();
            t.put("type", "function");
            t.put("function", fn);
            out.add(t);
        }
        return out;
    }

    /**
     * The JSON schema the answer is decoded under when the choice forces a call: for {@code required}
     * an array of one call (more with {@code parallel_tool_calls}), each {@code {"name", "arguments"}}
     * with the arguments of the function it names; for a named function its parameters. Null otherwise.
     */
    public JsonNode constraintSchema() {
        if (choice == Choice.NAMED) return function(named).parameters();
        if (choice != Choice.REQUIRED) return null;
        var items = JSON.createArrayNode();
        for (Function f : functions) {
            var call = JSON.createObjectNode();
            call.put("type", "object");
            var props = call.putObject("properties");
            props.putObject("name").put("const", f.name());
            props.set("arguments", f.parameters());
            call.putArray("required").add("name").add("arguments");
            call.put("additionalProperties", false);
            items.add(call);
        }
        var s = JSON.createObjectNode();
        s.put("type", "array");
        s.put("minItems", 1);
        if (!parallel) s.put("maxItems", 1);
        if (items.size() == 1) s.set("items", items.get(0));
        else s.putObject("items").set("anyOf", items);
        return s;
    }

    /** Whether the forced schema is strict (undeclared properties refused): every function asked for it. */
    public boolean strictSchema() {
        if (choice == Choice.NAMED) return function(named).strict();
        return functions.stream().allMatch(Function::strict);
    }

    public Function function(String name) {
        for (Function f : functions) if (f.name().equals(name)) return f;
        throw new IllegalArgumentException("no function " + name);
    }
}
