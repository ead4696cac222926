package dev.mooncakej.conductor.api;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import org.springframework.stereotype.Component;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * OpenAI's Responses API ({@code POST /v1/responses}) as a translation onto chat completions: the
 * request becomes a chat request (instructions as the system message, the stored conversation of
 * {@code previous_response_id}, input items as messages, function tools, {@code text.format} as
 * {@code response_format}), and its answer becomes output items. A subset: text and function tools,
 * no built-in tools, no reasoning items, no background mode; anything else is refused by name.
 *
 * <p>Conversations are held in memory (the most recent {@link #MAX_STORED}, and at most
 * {@link #MAX_CHARS} characters of message text in all, each visible only to the
 * API key that made it); their KV stays in the pool as every chat answer's does, so the next turn
 * reuses the previous turns' blocks.
 */
@Component
public class ResponsesApi {
    static final int MAX_STORED = 2048;
    /** Characters of message text the stored conversations may hold in all (the conductor's heap is small). */
    static final long MAX_CHARS = 32L << 20;

    private static final JsonMapper JSON = JsonMapper.builder().build();

    /** Fields a request may carry, at most at the values given in {@link #check}. */
    static final Set<String> KNOWN = Set.of(
            "model",
            "input",
            "instructions",
            "previous_response_id",
            "max_output_tokens",
            "temperature",
            "top_p",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "stream",
            "text",
            "store",
            "metadata",
            "user",
            "reasoning",
            "include",
            "truncation",
            "background",
            "service_tier",
            "seed",
            "top_k");

    /** A stored conversation: its messages in chat form, whose key made it, and their characters. */
    record Stored(String tenant, List<Map<String, Object>> messages, long chars) {}

    /** Stored conversations, least recently used first; guarded by itself. */
    private final LinkedHashMap<String, Stored> stored = new LinkedHashMap<>(256, 0.75f, true);

    private long storedChars;

    /** A translated request: the chat body, the conversation so far (input included), what to echo. */
    public record Turn(String chatBody, List<Map<String, Object>> messages, JsonNode request, boolean store) {}

    /** Translates {@code body} for the key {@code tenant} (null: no keys). */
    public Turn translate(String body, String tenant) {
        JsonNode root;
        try {
            root = JSON.readTree(body == null ? "" : body);
        } catch (JacksonException e) {
            throw ApiException.invalid(
                    null, "invalid_json", "the request body is not valid JSON; expected a JSON object");
        }
        if (root == null || !root.isObject())
            throw ApiException.invalid(null, "invalid_json", "the request body must be a JSON object");
        check(root);
        List<Map<String, Object>> messages = new ArrayList<>();
        JsonNode prev = root.get("previous_response_id");
        if (prev != null && !prev.isNull()) {
            Stored s;
            synchronized (stored) {
                s = stored.get(prev.asString(""));
            }
            if (s == null || !Objects.equals(s.tenant(), tenant))
                throw new ApiException(
                        404,
                        "invalid_request_error",
                        "previous_response_id",
                        "not_found",
                        "previous_response_id '" + clip(prev.asString("")) + "' is not a stored response of this "
                                + "key (responses are kept in memory, the most recent " + MAX_STORED + " within "
                                + (MAX_CHARS >> 20) + " MiB of text; send the whole conversation as input instead)",
                        null);
            messages.addAll(s.messages());
        }
        messages.addAll(input(root.get("input")));
        ObjectNode chat = JSON.createObjectNode();
        chat.set("model", root.get("model"));
        ArrayNode msgs = chat.putArray("messages");
        JsonNode instructions = root.get("instructions");
        if (instructions != null && !instructions.isNull()) {
            if (!instructions.isString()) throw ApiException.invalid("instructions", "instructions must be a string");
            msgs.addObject().put("role", "system").put("content", instructions.asString());
        }
        for (Map<String, Object> m : messages) msgs.add(JSON.valueToTree(m));
        copy(root, chat, "max_output_tokens", "max_tokens");
        copy(root, chat, "temperature", "temperature");
        copy(root, chat, "top_p", "top_p");
        copy(root, chat, "top_k", "top_k");
        copy(root, chat, "seed", "seed");
        copy(root, chat, "parallel_tool_calls", "parallel_tool_calls");
        copy(root, chat, "stream", "stream");
        if (root.path("stream").asBoolean(false))
            chat.putObject("stream_options").put("include_usage", true);
        JsonNode tools = root.get("tools");
        if (tools != null && !tools.isNull()) chat.set("tools", tools(tools));
        JsonNode tc = root.get("tool_choice");
        if (tc != null && !tc.isNull()) {
            if (tc.isObject()
                    && "function".equals(tc.path("type").asString(""))
                    && tc.path("name").isString()) {
                ObjectNode named = chat.putObject("tool_choice");
                named.put("type", "function");
                named.putObject("function").put("name", tc.get("name").asString());
            } else chat.set("tool_choice", tc);
        }
        JsonNode format = root.path("text").path("format");
        if (format.isObject()) {
            String type = format.path("type").asString("");
            switch (type) {
                case "text" -> {}
                case "json_object" -> chat.putObject("response_format").put("type", "json_object");
                case "json_schema" -> {
                    ObjectNode rf = chat.putObject("response_format");
                    rf.put("type", "json_schema");
                    ObjectNode js = rf.putObject("json_schema");
                    js.set("name", format.path("name"));
                    js.set("schema", format.get("schema"));
                    js.put("strict", format.path("strict").asBoolean(false));
                }
                default ->
                    throw ApiException.invalid(
                            "text.format",
                            "text.format type '" + clip(type) + "': expected text, json_object or json_schema");
            }
        }
        boolean store = !root.has("store")
                || root.get("store").isNull()
                || root.get("store").asBoolean(true);
        return new Turn(chat.toString(), messages, root, store);
    }

    /** Keeps the conversation with its answer as {@code id} (when the request asked to store it). */
    public void remember(String id, String tenant, Turn turn, Map<String, Object> answer) {
        if (!turn.store()) return;
        List<Map<String, Object>> all = new ArrayList<>(turn.messages());
        all.add(answer);
        long chars = 0;
        for (Map<String, Object> m : all) chars += m.toString().length(); // content, tool calls and all
        if (chars > MAX_CHARS / 4) return; // one conversation may not push out most of the others
        synchronized (stored) {
            Stored old = stored.put(id, new Stored(tenant, List.copyOf(all), chars));
            storedChars += chars - (old == null ? 0 : old.chars());
            for (var it = stored.entrySet().iterator();
                    it.hasNext() && (stored.size() > MAX_STORED || storedChars > MAX_CHARS); ) {
                storedChars -= it.next().getValue().chars();
                it.remove();
            }
        }
    }

    /** Conversations held, and their characters (tests). */
    long[] held() {
        synchronized (stored) {
            return new long[] {stored.size(), storedChars};
        }
    }

    private static void check(JsonNode root) {
        for (Iterator<String> it = root.propertyNames().iterator(); it.hasNext(); ) {
            String k = it.next();
            if (!KNOWN.contains(k))
                throw SamplingParser.unsupported(
                        k, k + " is not supported by this server's /v1/responses (docs/api.md)");
        }
        if (root.path("background").asBoolean(false))
            throw SamplingParser.unsupported("background", "background mode is not supported by this server");
        JsonNode reasoning = root.get("reasoning");
        if (reasoning != null
                && !reasoning.isNull()
                && !reasoning.path("effort").isNull()
                && !reasoning.path("effort").isMissingNode())
            throw SamplingParser.unsupported("reasoning", "reasoning is not supported by this server's models");
        JsonNode include = root.get("include");
        if (include != null && !include.isNull() && !(include.isArray() && include.isEmpty()))
            throw SamplingParser.unsupported(
                    "include", "include is not supported by this server (send [] or leave it out)");
        JsonNode truncation = root.get("truncation");
        if (truncation != null && !truncation.isNull() && !"disabled".equals(truncation.asString("")))
            throw SamplingParser.unsupported(
                    "truncation",
                    "truncation other than disabled is not supported: a prompt over the context is a 400");
    }

    private static void copy(JsonNode from, ObjectNode to, String name, String as) {
        JsonNode v = from.get(name);
        if (v != null && !v.isNull()) to.set(as, v);
    }

    /** Responses' function tools ({@code {type, name, parameters}}) in chat form. */
    private static ArrayNode tools(JsonNode tools) {
        if (!tools.isArray()) throw ApiException.invalid("tools", "tools must be an array of function tools");
        ArrayNode out = JSON.createArrayNode();
        for (int i = 0; i < tools.size(); i++) {
            JsonNode t = tools.get(i);
            if (!"function".equals(t.path("type").asString("")))
                throw SamplingParser.unsupported(
                        "tools",
                        "tools[" + i + "] of type '" + clip(t.path("type").asString("")) + "' is not supported: this"
                                + " server runs function tools only");
            ObjectNode fn = JSON.createObjectNode();
            for (String k : List.of("name", "description", "parameters", "strict"))
                if (t.has(k) && !t.get(k).isNull()) fn.set(k, t.get(k));
            ObjectNode tool = out.addObject();
            tool.put("type", "function");
            tool.set("function", fn);
        }
        return out;
    }

    /** The input (a string, or items) as chat messages. */
    private static List<Map<String, Object>> input(JsonNode input) {
        List<Map<String, Object>> out = new ArrayList<>();
        if (input == null || input.isNull())
            throw ApiException.invalid("input", "input is required: a string or an array of input items");
        if (input.isString()) {
            out.add(message("user", input.asString()));
            return out;
        }
        if (!input.isArray()) throw ApiException.invalid("input", "input must be a string or an array of input items");
        for (int i = 0; i < input.size(); i++) {
            JsonNode item = input.get(i);
            String p = "input[" + i + "]";
            String type = item.path("type").asString(item.has("role") ? "message" : "");
            switch (type) {
                case "message" -> out.add(message(item.path("role").asString(""), text(item.get("content"), p)));
                case "function_call" -> {
                    if (!item.path("call_id").isString()
                            || !item.path("name").isString()
                            || !item.path("arguments").isString())
                        throw ApiException.invalid(p, p + ": a function_call needs call_id, name and arguments");
                    Map<String, Object> fn = new LinkedHashMap<>();
                    fn.put("name", item.get("name").asString());
                    fn.put("arguments", item.get("arguments").asString());
                    Map<String, Object> call = new LinkedHashMap<>();
                    call.put("id", item.get("call_id").asString());
                    call.put("type", "function");
                    call.put("function", fn);
                    Map<String, Object> last = out.isEmpty() ? null : out.get(out.size() - 1);
                    if (last != null && last.containsKey("tool_calls")) { // parallel calls: one assistant turn
                        @SuppressWarnings("unchecked")
                        List<Object> calls = (List<Object>) last.get("tool_calls");
                        calls.add(call);
                    } else {
                        Map<String, Object> m = message("assistant", null);
                        m.put("tool_calls", new ArrayList<>(List.of(call)));
                        out.add(m);
                    }
                }
                case "function_call_output" -> {
                    if (!item.path("call_id").isString())
                        throw ApiException.invalid(p, p + ": a function_call_output needs its call_id");
                    JsonNode o = item.get("output");
                    Map<String, Object> m =
                            message("tool", o == null || o.isNull() ? "" : o.isString() ? o.asString() : o.toString());
                    m.put("tool_call_id", item.get("call_id").asString());
                    out.add(m);
                }
                default ->
                    throw SamplingParser.unsupported(
                            p,
                            p + " of type '" + clip(type) + "' is not supported: expected message, function_call or "
                                    + "function_call_output");
            }
        }
        return out;
    }

    private static Map<String, Object> message(String role, String content) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("role", role);
        m.put("content", content);
        return m;
    }

    /** A message's content: a string, or parts of type input_text / output_text. */
    private static String text(JsonNode c, String p) {
        if (c == null || c.isNull()) throw ApiException.invalid(p + ".content", p + ".content is required");
        if (c.isString()) return c.asString();
        if (!c.isArray())
            throw ApiException.invalid(p + ".content", p + ".content must be a string or an array of parts");
        StringBuilder sb = new StringBuilder();
        for (JsonNode part : c) {
            String t = part.path("type").asString("");
            if (!(t.equals("input_text") || t.equals("output_text"))
                    || !part.path("text").isString())
                throw SamplingParser.unsupported(
                        p + ".content",
                        p + ".content part of type '" + clip(t) + "' is not supported: this model reads input_text");
            sb.append(part.get("text").asString());
        }
        return sb.toString();
    }

    private static String clip(String s) {
        return s.length() <= 64 ? s : s.substring(0, 64) + "...";
    }
}
