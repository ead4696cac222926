package dev.mooncakej.conductor.api;

import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.conductor.model.ServedModel;
import dev.mooncakej.conductor.request.AnswerTokens;
import dev.mooncakej.conductor.request.GenerationRequest;
import dev.mooncakej.conductor.tools.ToolCallFormat;
import dev.mooncakej.conductor.tools.ToolSet;
import dev.mooncakej.engine.tokenizer.ChatTemplate;
import dev.mooncakej.kvcache.wire.WorkerMessages.Sampling;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Predicate;
import org.springframework.stereotype.Component;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ObjectNode;

/**
 * Turns an OpenAI request body into a {@link GenerationRequest}, validating every field: a bad value
 * gives a 400 naming the parameter, the value and the expected form.
 */
@Component
public class RequestParser {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private final ServedModel model;
    private final ConductorProperties props;

    private final AnswerTokens answers;
    /** Marks an assistant answer's place in a rendered template; the nonce keeps user text from forging one. */
    private final String marker = "\uE000mooncakej-answer-" + Long.toHexString(new SecureRandom().nextLong());

    public RequestParser(ServedModel model, ConductorProperties props, AnswerTokens answers) {
        this.model = model;
        this.props = props;
        this.answers = answers;
    }

    public GenerationRequest parse(String body, boolean chat, String requestId) {
        return parse(body, chat, requestId, null);
    }

    /** As above, for a tenant whose block keys (and remembered answers) are salted with {@code salt}. */
    public GenerationRequest parse(String body, boolean chat, String requestId, String salt) {
        JsonNode root = object(body);
        refuseUnsupported(root, chat);
        String m = JsonFields.requiredString(root, "model");
        if (!model.serves(m)) throw notServed(m);
        Sampling sampling =
                SamplingParser.sampling(root, chat, model.tokenizer().vocabSize());
        ToolSet tools = chat ? ToolsParser.parse(root, toolFormat()) : null;
        if (tools != null && tools.choice() != ToolSet.Choice.NONE && sampling.schema() != null)
            throw SamplingParser.unsupported(
                    "response_format",
                    "response_format together with tools (tool_choice "
                            + tools.choice().name().toLowerCase(Locale.ROOT)
                            + ") is not supported: send one of them, or tool_choice none");
        JsonNode forced = tools == null ? null : tools.constraintSchema();
        if (forced != null) // tool_choice required or named: the answer is decoded under the call's schema
        sampling = sampling.withSchema(forced.toString(), tools.strictSchema());
        boundByContext(root, chat);
        int[] tokens = chat ? chatPrompt(root, salt, tools) : completionPrompt(root);
        if (tokens.length == 0)
            throw ApiException.invalid(
                    chat ? "messages" : "prompt", "the prompt is empty after tokenization; send at least one token");
        if (tokens.length >= model.contextLength()) {
            throw ApiException.invalid(
                    chat ? "messages" : "prompt",
                    "context_length_exceeded",
                    "the prompt has " + tokens.length + " tokens; this model's context is " + model.contextLength()
                            + " tokens, and at least one must be left to generate");
        }
        int room = model.contextLength() - tokens.length;
        Integer maxTokens = JsonFields.optionalInt(
                root, chat && root.has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens");
        String maxName = chat && root.has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
        int max = maxTokens == null ? Math.min(props.defaultMaxTokens(), room) : maxTokens;
        if (max < 1 || max > room) {
            throw ApiException.invalid(
                    maxName,
                    maxName + "=" + max + " is out of range: expected 1.." + room + " (context " + model.contextLength()
                            + " minus " + tokens.length + " prompt tokens)");
        }
        if (sampling.minTokens() > max)
            throw ApiException.invalid(
                    "min_tokens", "min_tokens=" + sampling.minTokens() + " exceeds " + maxName + "=" + max);
        Integer nOrNull = JsonFields.optionalInt(root, "n");
        int n = nOrNull == null ? 1 : nOrNull;
        if (n < 1 || n > GenerationRequest.MAX_N)
            throw ApiException.invalid("n", "n=" + n + " is out of range: expected 1.." + GenerationRequest.MAX_N);
        boolean stream = JsonFields.optionalBool(root, "stream");
        boolean includeUsage = false;
        if (root.has("stream_options") && !root.get("stream_options").isNull()) {
            JsonNode so = root.get("stream_options");
            if (!so.isObject())
                throw ApiException.invalid(
                        "stream_options", "stream_options must be an object like {\"include_usage\": true}");
            includeUsage = JsonFields.optionalBool(so, "include_usage");
        }
        List<String> stop = stops(root);
        String echo = null;
        if (!chat && root.path("echo").asBoolean(false)) {
            JsonNode p = root.get("prompt");
            echo = p.isString()
                    ? p.asString()
                    : p.isArray() && p.size() == 1 && p.get(0).isString()
                            ? p.get(0).asString()
                            : model.tokenizer().decode(tokens);
        }
        return new GenerationRequest(
                chat,
                m,
                tokens,
                max,
                sampling,
                stop,
                stream,
                includeUsage,
                requestId,
                salt,
                tools,
                echo,
                n,
                echo != null && sampling.logprobs(),
                null);
    }

    /** Most prompts one /v1/completions request may carry. */
    static final int MAX_BATCH = 64;

    /**
     * A /v1/completions body: one request per prompt when {@code prompt} is a batch (an array of
     * strings, or an array of token-id arrays), each with the request's other fields; else the one.
     */
    public List<GenerationRequest> parseCompletions(String body, String requestId, String salt) {
        JsonNode root = object(body);
        JsonNode p = root.get("prompt");
        boolean strings = p != null && p.isArray() && p.size() > 1 && allMatch(p, JsonNode::isString);
        boolean idLists = p != null && p.isArray() && !p.isEmpty() && allMatch(p, JsonNode::isArray);
        if (!strings && !idLists) return List.of(parse(body, false, requestId, salt));
        if (p.size() > MAX_BATCH)
            throw ApiException.invalid("prompt", "prompt has " + p.size() + " prompts: expected at most " + MAX_BATCH);
        List<GenerationRequest> out = new ArrayList<>();
        for (int i = 0; i < p.size(); i++) {
            ObjectNode one = (ObjectNode) root.deepCopy();
            one.set("prompt", p.get(i));
            try {
                out.add(parse(one.toString(), false, requestId + "-" + i, salt));
            } catch (ApiException e) {
                throw e.forPrompt(i);
            }
        }
        return out;
    }

    private static boolean allMatch(JsonNode arr, Predicate<JsonNode> test) {
        for (JsonNode x : arr) if (!test.test(x)) return false;
        return true;
    }

    /**
     * vLLM's {@code POST /tokenize}: the ids a request's {@code prompt} (with the BOS token unless
     * {@code add_special_tokens} is false) or {@code messages} (rendered as a chat request renders them,
     * with its {@code tools}) would be generated from.
     */
    public int[] tokenize(String body, String salt) {
        JsonNode root = object(body);
        String m = JsonFields.requiredString(root, "model");
        if (!model.serves(m)) throw notServed(m);
        boundByContext(root, root.has("messages"));
        if (root.has("messages")) {
            ToolSet tools = ToolsParser.parse(root, toolFormat());
            return chatPrompt(root, salt, tools);
        }
        JsonNode special = root.get("add_special_tokens");
        if (special != null && !special.isNull() && !special.isBoolean())
            throw ApiException.invalid("add_special_tokens", "add_special_tokens must be true or false");
        int[] ids = completionPrompt(root);
        if (special != null
                && !special.isNull()
                && !special.asBoolean()
                && root.path("prompt").isString())
            return model.tokenizer().encode(root.get("prompt").asString());
        return ids;
    }

    /** vLLM's {@code POST /detokenize}: the text of {@code tokens}, each checked against the vocabulary. */
    public String detokenize(String body) {
        JsonNode root = object(body);
        String m = JsonFields.requiredString(root, "model");
        if (!model.serves(m)) throw notServed(m);
        JsonNode t = root.get("tokens");
        if (t == null || !t.isArray())
            throw ApiException.invalid("tokens", "tokens is required: an array of token ids");
        int[] ids = new int[t.size()];
        for (int i = 0; i < ids.length; i++) {
            JsonNode x = t.get(i);
            if (!x.isInt() || x.asInt() < 0 || x.asInt() >= model.tokenizer().vocabSize())
                throw ApiException.invalid(
                        "tokens",
                        "tokens[" + i + "]=" + x + " is not a token id: expected an integer in 0.."
                                + (model.tokenizer().vocabSize() - 1));
            ids[i] = x.asInt();
        }
        return model.tokenizer().decode(ids);
    }

    private static JsonNode object(String body) {
        JsonNode root;
        try {
            root = JSON.readTree(body == null ? "" : body);
        } catch (JacksonException e) {
            throw ApiException.invalid(
                    null,
                    "invalid_json",
                    "the request body is not valid JSON (" + firstLine(e.getOriginalMessage())
                            + "); expected a JSON object");
        }
        if (root == null || !root.isObject())
            throw ApiException.invalid(null, "invalid_json", "the request body must be a JSON object");
        return root;
    }

    private ApiException notServed(String m) {
        return new ApiException(
                404,
                "invalid_request_error",
                "model",
                "model_not_found",
                "the model '" + clip(m) + "' does not exist; this server serves " + model.names()
                        + " (see GET /v1/models)",
                null);
    }

    /**
     * Refuses, before tokenizing, a prompt that cannot fit the context whatever its tokenization: one
     * token stands for at most {@link ServedModel#maxTokenBytes()} bytes, so a text of B bytes has at
     * least B / that many tokens. A multi-megabyte prompt is refused in microseconds.
     */
    private void boundByContext(JsonNode root, boolean chat) {
        long bytes = 0;
        if (chat) {
            JsonNode msgs = root.get("messages");
            if (msgs != null && msgs.isArray())
                for (JsonNode msg : msgs) {
                    JsonNode c = msg.get("content");
                    if (c != null && c.isString()) bytes += utf8Length(c.asString());
                    else if (c != null && c.isArray())
                        for (JsonNode part : c)
                            if (part.path("text").isString())
                                bytes += utf8Length(part.get("text").asString());
                }
        } else {
            JsonNode p = root.get("prompt");
            if (p != null && p.isString()) bytes = utf8Length(p.asString());
            else if (p != null && p.isArray() && p.size() == 1 && p.get(0).isString())
                bytes = utf8Length(p.get(0).asString());
        }
        long atLeast = bytes / model.maxTokenBytes();
        if (atLeast >= model.contextLength())
            throw ApiException.invalid(
                    chat ? "messages" : "prompt",
                    "context_length_exceeded",
                    "the prompt has at least " + atLeast + " tokens (" + bytes + " bytes of text); this model's "
                            + "context is " + model.contextLength() + " tokens");
    }

    private static long utf8Length(String s) {
        long n = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x80) n++;
            else if (c < 0x800) n += 2;
            else if (Character.isHighSurrogate(c)) {
                n += 4;
                i++;
            } else n += 3;
        }
        return n;
    }

    private static String clip(String s) {
        return s.length() <= 64 ? s : s.substring(0, 64) + "...";
    }

    /**
     * OpenAI parameters this server knows but does not implement: refused by name rather than ignored
     * (a client relying on tools or a JSON schema must not get free text back and think it worked).
     */
    static final List<String> UNSUPPORTED = List.of(
            "functions",
            "function_call",
            "audio",
            "modalities",
            "prediction",
            "web_search_options",
            "reasoning_effort",
            "suffix");

    private static void refuseUnsupported(JsonNode root, boolean chat) {
        for (String p : UNSUPPORTED) {
            if (root.has(p) && !root.get(p).isNull())
                throw ApiException.invalid(
                        p,
                        "unsupported_parameter",
                        p + " is not supported by this server"
                                + (p.startsWith("function")
                                        ? " (deprecated by OpenAI: send tools and tool_choice)"
                                        : ""));
        }
        if (!chat)
            for (String p : List.of("tools", "tool_choice", "parallel_tool_calls"))
                if (root.has(p) && !root.get(p).isNull())
                    throw ApiException.invalid(
                            p,
                            "unsupported_parameter",
                            p + " belongs to /v1/chat/completions; /v1/completions takes a prompt only");
        JsonNode echo = root.get("echo");
        if (echo != null && !echo.isNull() && (chat || !echo.isBoolean()))
            throw ApiException.invalid("echo", chat ? "echo belongs to /v1/completions" : "echo must be true or false");
        JsonNode bestOf = root.get("best_of");
        if (!chat && bestOf != null && !bestOf.isNull() && bestOf.asInt(1) != 1)
            throw ApiException.invalid("best_of", "unsupported_parameter", "best_of other than 1 is not supported");
    }

    /** The family this model writes tool calls in: configured, or read from its chat template. */
    private ToolCallFormat toolFormat() {
        ToolCallFormat configured = ToolCallFormat.configured(props.toolParser(), "mooncakej.conductor.tool-parser");
        if (configured != null) return configured;
        ChatTemplate tpl = model.chatTemplate();
        return ToolCallFormat.fromTemplate(tpl == null ? null : tpl.template());
    }

    private int[] chatPrompt(JsonNode root, String salt, ToolSet tools) {
        JsonNode msgs = root.get("messages");
        if (msgs == null || !msgs.isArray() || msgs.isEmpty())
            throw ApiException.invalid(
                    "messages", "messages must be a non-empty array of {\"role\", \"content\"} objects");
        ChatTemplate tpl = model.chatTemplate();
        // a template that does not take tools gets them (and the calls and results) as text it can read
        boolean toolsAsText = tools != null && (tpl == null || !tpl.template().contains("tools"));
        List<Map<String, Object>> list = new ArrayList<>();
        List<int[]> spliced = new ArrayList<>();
        List<Map<String, Object>> plain = new ArrayList<>();
        if (toolsAsText) {
            String instruction = toolInstruction(tools);
            plain.add(message("system", instruction));
            spliced.add(model.tokenizer().encode(instruction));
            list.add(message("system", marker + (spliced.size() - 1) + "\uE000"));
        }
        for (int i = 0; i < msgs.size(); i++) {
            JsonNode msg = msgs.get(i);
            String p = "messages[" + i + "]";
            if (!msg.isObject()) throw ApiException.invalid(p, p + " must be an object with role and content");
            String role = role(msg, p);
            List<Map<String, Object>> calls = toolCalls(msg, p, role);
            JsonNode c = msg.get("content");
            // an assistant turn with only tool calls: its null content reaches the template as "" (as vLLM
            // passes it; templates test and concatenate it)
            String content = c == null || c.isNull() ? "" : content(c, p + ".content");
            if (toolsAsText && !calls.isEmpty()) {
                content = (content == null ? "" : content) + callsAsText(calls);
                calls = List.of();
            }
            if (toolsAsText && role.equals("tool")) {
                role = "user";
                content = "<tool_response>\n" + content + "\n</tool_response>";
            }
            if (toolsAsText && role.equals("system") && i == 0 && !list.isEmpty()) { // one system message
                String merged = plain.get(0).get("content") + "\n\n" + content;
                plain.set(0, message("system", merged));
                spliced.set(0, model.tokenizer().encode(merged));
                continue;
            }
            Map<String, Object> plainMsg = message(role, content);
            Map<String, Object> marked = message(role, "");
            if (!content.isEmpty()) {
                int[] ids = "assistant".equals(role) && calls.isEmpty() ? answers.lookup(salt, content) : null;
                // its place in the text gets the ids generated for it (an answer of this server's), or its
                // text encoded as text: special-token text a user writes never becomes a control token
                spliced.add(ids != null ? ids : model.tokenizer().encode(content));
                marked.put("content", marker + (spliced.size() - 1) + "\uE000");
            }
            for (Map<String, Object> m : List.of(plainMsg, marked)) {
                if (!calls.isEmpty()) m.put("tool_calls", calls);
                if (role.equals("tool")) {
                    m.put("tool_call_id", msg.get("tool_call_id").asString());
                    if (msg.path("name").isString())
                        m.put("name", msg.get("name").asString());
                }
            }
            plain.add(plainMsg);
            list.add(marked);
        }
        List<Map<String, Object>> templateTools = tools == null || toolsAsText ? null : tools.templateTools();
        int[] ids = encodeSpliced(render(list, templateTools), spliced);
        if (ids == null) // the template did not keep the markers as they were: its whole text, specials escaped
        ids = model.tokenizer().encodeWithSpecials(render(escaped(plain), templateTools));
        return withBos(ids);
    }

    private static Map<String, Object> message(String role, String content) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("role", role);
        m.put("content", content);
        return m;
    }

    /**
     * The tools, for a template that does not take them: a system instruction in the Hermes form (the
     * form {@link ToolCallFormat#fromTemplate} then parses).
     */
    static String toolInstruction(ToolSet tools) {
        StringBuilder sb = new StringBuilder("# Tools\n\nYou may call one or more of these functions. Their signatures"
                + " are JSON schemas inside <tools></tools>:\n<tools>");
        for (Map<String, Object> t : tools.templateTools()) sb.append('\n').append(JSON.writeValueAsString(t));
        sb.append("\n</tools>\n\nTo call one, answer with a JSON object holding its name and arguments inside "
                + "<tool_call></tool_call>:\n<tool_call>\n{\"name\": <function name>, \"arguments\": <arguments "
                + "object>}\n</tool_call>");
        return sb.toString();
    }

    private static String callsAsText(List<Map<String, Object>> calls) {
        StringBuilder sb = new StringBuilder();
        for (Map<String, Object> c : calls) {
            @SuppressWarnings("unchecked")
            Map<String, Object> fn = (Map<String, Object>) c.get("function");
            Map<String, Object> call = new LinkedHashMap<>();
            call.put("name", fn.get("name"));
            call.put("arguments", fn.get("arguments"));
            sb.append("<tool_call>\n").append(JSON.writeValueAsString(call)).append("\n</tool_call>");
        }
        return sb.toString();
    }

    /**
     * An assistant message's {@code tool_calls}, validated, as templates read them (arguments as an
     * object when they are JSON, as Hugging Face's templates expect); empty for other messages.
     */
    private static List<Map<String, Object>> toolCalls(JsonNode msg, String p, String role) {
        JsonNode tc = msg.get("tool_calls");
        if (tc == null || tc.isNull()) return List.of();
        if (!role.equals("assistant"))
            throw ApiException.invalid(p + ".tool_calls", p + ".tool_calls: only an assistant message has tool calls");
        if (!tc.isArray())
            throw ApiException.invalid(p + ".tool_calls", p + ".tool_calls must be an array of tool calls");
        List<Map<String, Object>> out = new ArrayList<>();
        for (int k = 0; k < tc.size(); k++) {
            JsonNode call = tc.get(k);
            String q = p + ".tool_calls[" + k + "]";
            JsonNode fn = call.path("function");
            if (!call.isObject()
                    || !fn.path("name").isString()
                    || !fn.path("arguments").isString())
                throw ApiException.invalid(
                        q,
                        q + " must be {\"id\": ..., \"type\": \"function\", \"function\": {\"name\": ..., "
                                + "\"arguments\": \"<JSON text>\"}}");
            Object args = fn.get("arguments").asString();
            try {
                JsonNode parsed = JSON.readTree((String) args);
                if (parsed != null && parsed.isObject()) args = JSON.convertValue(parsed, Map.class);
            } catch (RuntimeException e) {
                // not JSON: the template gets the text as the client sent it
            }
            Map<String, Object> f = new LinkedHashMap<>();
            f.put("name", fn.get("name").asString());
            f.put("arguments", args);
            Map<String, Object> c = new LinkedHashMap<>();
            c.put("id", call.path("id").asString(""));
            c.put("type", "function");
            c.put("function", f);
            out.add(c);
        }
        return out;
    }

    /** Messages whose special-token text is broken up, so the tokenizer reads it as text. */
    private List<Map<String, Object>> escaped(List<Map<String, Object>> msgs) {
        List<Map<String, Object>> out = new ArrayList<>(msgs.size());
        for (Map<String, Object> m : msgs) {
            Map<String, Object> e = new LinkedHashMap<>(m);
            if (m.get("content") instanceof String c) {
                for (String special : model.specialTokenTexts())
                    c = c.replace(special, special.charAt(0) + "\u200B" + special.substring(1));
                e.put("content", c);
            }
            out.add(e);
        }
        return out;
    }

    private String render(List<Map<String, Object>> list, List<Map<String, Object>> tools) {
        ChatTemplate tpl = model.chatTemplate();
        if (tpl == null) {
            StringBuilder sb = new StringBuilder();
            for (Map<String, Object> msg : list) {
                sb.append(msg.get("role")).append(": ");
                if (msg.get("content") != null) sb.append(msg.get("content"));
                sb.append('\n');
            }
            return sb.append("assistant: ").toString();
        }
        try {
            return tpl.render(list, tools, true);
        } catch (IllegalArgumentException e) {
            throw ApiException.invalid("messages", e.getMessage());
        }
    }

    /**
     * Tokenizes the rendered text, with each answer marker replaced by the ids generated for that
     * answer; null when the template did not keep a marker as it was (the caller renders the text).
     */
    private int[] encodeSpliced(String text, List<int[]> spliced) {
        List<int[]> parts = new ArrayList<>();
        int from = 0;
        for (int k = 0; k < spliced.size(); k++) {
            String m = marker + k + "\uE000";
            int at = text.indexOf(m, from);
            if (at < 0) return null; // the template changed it
            parts.add(model.tokenizer().encodeWithSpecials(text.substring(from, at)));
            parts.add(spliced.get(k));
            from = at + m.length();
        }
        parts.add(model.tokenizer().encodeWithSpecials(text.substring(from)));
        int n = 0;
        for (int[] p : parts) n += p.length;
        int[] out = new int[n];
        int o = 0;
        for (int[] p : parts) {
            System.arraycopy(p, 0, out, o, p.length);
            o += p.length;
        }
        return out;
    }

    /**
     * A message's role as the template gets it, with the fields that role requires: system, developer
     * (rendered as system, as OpenAI treats it for models without a developer role), user and tool
     * need content (tool also its tool_call_id); assistant needs content unless it has tool_calls.
     */
    private static String role(JsonNode msg, String p) {
        JsonNode r = msg.get("role");
        if (r == null || !r.isString())
            throw ApiException.invalid(
                    p + ".role", p + ".role must be a string: system, developer, user, assistant or tool");
        String role = r.asString();
        switch (role) {
            case "system", "developer", "user", "assistant", "tool" -> {}
            default ->
                throw ApiException.invalid(
                        p + ".role",
                        p + ".role '" + clip(role) + "' is not a role: expected system, developer, user, assistant or"
                                + " tool");
        }
        JsonNode c = msg.get("content");
        boolean calls = msg.has("tool_calls") && !msg.get("tool_calls").isNull();
        if ((c == null || c.isNull()) && !(role.equals("assistant") && calls))
            throw ApiException.invalid(
                    p + ".content",
                    p + ".content is required for a " + role + " message"
                            + (role.equals("assistant") ? " without tool_calls" : ""));
        if (role.equals("tool")) {
            JsonNode id = msg.get("tool_call_id");
            if (id == null || !id.isString() || id.asString().isEmpty())
                throw ApiException.invalid(
                        p + ".tool_call_id", p + ".tool_call_id is required for a tool message (a string)");
        }
        return role.equals("developer") ? "system" : role;
    }

    private static String content(JsonNode c, String param) {
        if (c.isString()) return c.asString();
        if (c.isArray()) { // content parts: text only
            StringBuilder sb = new StringBuilder();
            for (JsonNode part : c) {
                if (!part.isObject()
                        || !"text".equals(part.path("type").asString(""))
                        || !part.path("text").isString()) {
                    throw ApiException.invalid(
                            param,
                            param
                                    + " parts must be {\"type\": \"text\", \"text\": \"...\"}; this model reads text "
                                    + "only");
                }
                sb.append(part.get("text").asString());
            }
            return sb.toString();
        }
        throw ApiException.invalid(param, param + " must be a string or an array of text parts");
    }

    private int[] completionPrompt(JsonNode root) {
        JsonNode p = root.get("prompt");
        if (p == null || p.isNull())
            throw ApiException.invalid("prompt", "prompt is required: a string, or an array with one string");
        if (p.isString()) return withBos(model.tokenizer().encode(p.asString()));
        if (p.isArray() && p.size() == 1 && p.get(0).isString())
            return withBos(model.tokenizer().encode(p.get(0).asString()));
        if (p.isArray() && !p.isEmpty() && p.get(0).isNumber()) {
            int[] ids = new int[p.size()];
            for (int i = 0; i < ids.length; i++) {
                JsonNode t = p.get(i);
                if (!t.isInt()
                        || t.asInt() < 0
                        || t.asInt() >= model.tokenizer().vocabSize()) {
                    throw ApiException.invalid(
                            "prompt",
                            "prompt[" + i + "]=" + t + " is not a token id: expected an integer in 0.."
                                    + (model.tokenizer().vocabSize() - 1));
                }
                ids[i] = t.asInt();
            }
            return ids;
        }
        throw ApiException.invalid(
                "prompt",
                "prompt must be a string, an array of token ids, or a batch: an array of strings or of token-id "
                        + "arrays (at most " + MAX_BATCH + ")");
    }

    private int[] withBos(int[] ids) {
        if (!model.tokenizer().addBos()
                || model.tokenizer().bos() < 0
                || (ids.length > 0 && ids[0] == model.tokenizer().bos())) return ids;
        int[] out = new int[ids.length + 1];
        out[0] = model.tokenizer().bos();
        System.arraycopy(ids, 0, out, 1, ids.length);
        return out;
    }

    private static List<String> stops(JsonNode root) {
        JsonNode s = root.get("stop");
        if (s == null || s.isNull()) return List.of();
        List<String> out = new ArrayList<>();
        if (s.isString()) out.add(s.asString());
        else if (s.isArray())
            for (JsonNode x : s) {
                if (!x.isString())
                    throw ApiException.invalid("stop", "stop must be a string or an array of up to 4 strings");
                out.add(x.asString());
            }
        else throw ApiException.invalid("stop", "stop must be a string or an array of up to 4 strings");
        if (out.size() > 4)
            throw ApiException.invalid("stop", "stop has " + out.size() + " sequences: expected at most 4");
        for (String x : out) if (x.isEmpty()) throw ApiException.invalid("stop", "stop sequences must not be empty");
        return out;
    }

    private static String firstLine(String s) {
        if (s == null) return "parse error";
        int i = s.indexOf('\n');
        return i < 0 ? s : s.substring(0, i);
    }
}
