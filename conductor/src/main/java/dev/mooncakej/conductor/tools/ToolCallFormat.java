package dev.mooncakej.conductor.tools;

import java.util.Arrays;
import java.util.Locale;

/**
 * How generated text holds tool calls. The first three are model families (chosen from the chat
 * template, or configured with {@code mooncakej.conductor.tool-parser}); the last two are what this
 * server makes the model write when {@code tool_choice} forces a call (the output is constrained to
 * them, so they parse whatever the model).
 */
public enum ToolCallFormat {
    /** Hermes, Qwen 2.5/3: {@code <tool_call>{"name": ..., "arguments": {...}}</tool_call>}, one block per call. */
    HERMES("hermes"),
    /**
     * Llama 3.1+: the whole answer is {@code {"name": ..., "parameters": {...}}} (calls joined by
     * {@code ;}), after an optional {@code <|python_tag|>}.
     */
    LLAMA3_JSON("llama3_json"),
    /** Mistral: {@code [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]} or {@code [TOOL_CALLS]name[ARGS]{...}}. */
    MISTRAL("mistral"),
    /** {@code tool_choice: required}: a JSON array of {@code {"name", "arguments"}} objects, nothing else. */
    CALL_ARRAY("call_array"),
    /** {@code tool_choice} naming a function: the answer is that function's arguments object. */
    ARGUMENTS("arguments");

    private final String id;

    ToolCallFormat(String id) {
        this.id = id;
    }

    public String id() {
        return id;
    }

    /** A configured family: {@code hermes}, {@code llama3_json} or {@code mistral}; {@code auto} is null. */
    public static ToolCallFormat configured(String value, String key) {
        String v = value == null ? "auto" : value.trim().toLowerCase(Locale.ROOT);
        return switch (v) {
            case "auto" -> null;
            case "hermes", "qwen" -> HERMES;
            case "llama3_json", "llama3", "llama" -> LLAMA3_JSON;
            case "mistral" -> MISTRAL;
            default ->
                throw new IllegalArgumentException(key + "=" + value + ": expected auto, hermes, llama3_json or mistral"
                        + " (formats " + Arrays.toString(new String[] {"hermes", "llama3_json", "mistral"}) + ")");
        };
    }

    /**
     * The family a chat template writes tool calls in: Mistral's {@code [TOOL_CALLS]}, Llama's
     * {@code <|python_tag|>} / {@code ipython} role, else Hermes (Qwen's templates, and the instruction
     * this server adds for templates that do not mention tools).
     */
    public static ToolCallFormat fromTemplate(String template) {
        if (template == null) return HERMES;
        if (template.contains("[TOOL_CALLS]")) return MISTRAL;
        if (template.contains("<tool_call>")) return HERMES;
        if (template.contains("<|python_tag|>") || template.contains("ipython")) return LLAMA3_JSON;
        return HERMES;
    }
}
