package dev.mooncakej.conductor.api;

import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.conductor.model.ServedModel;
import dev.mooncakej.conductor.request.AnswerTokens;
import dev.mooncakej.conductor.request.GenerationRequest;
import dev.mooncakej.engine.tokenizer.ChatTemplate;
import dev.mooncakej.kvcache.wire.WorkerMessages.Sampling;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.List;
import org.springframework.stereotype.Component;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

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
        refuseUnsupported(root, chat);
        String m = JsonFields.requiredString(root, "model");
        if (!model.serves(m)) {
            throw new ApiException(
                    404,
                    "invalid_request_error",
                    "model",
                    "model_not_found",
                    "the model '" + clip(m) + "' does not exist; this server serves " + model.names()
                            + " (see GET /v1/models)",
                    null);
        }
        Sampling sampling = SamplingParser.sampling(root, chat);
        boundByContext(root, chat);
        int[] tokens = chat ? chatPrompt(root, salt) : completionPrompt(root);
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
        Integer n = JsonFields.optionalInt(root, "n");
        if (n != null && n != 1)
            throw ApiException.invalid(
                    "n", "n=" + n + " is not supported: this server returns one choice per request (n=1)");
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
        return new GenerationRequest(chat, m, tokens, max, sampling, stop, stream, includeUsage, requestId, salt);
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
            "tools",
            "tool_choice",
            "functions",
            "function_call",
            "parallel_tool_calls",
            "logit_bias",
            "audio",
            "modalities",
            "prediction",
            "web_search_options",
            "reasoning_effort",
            "suffix");

    private static void refuseUnsupported(JsonNode root, boolean chat) {
        for (String p : UNSUPPORTED) {
            if (root.has(p) && !root.get(p).isNull())
                throw ApiException.invalid(p, "unsupported_parameter", p + " is not supported by this server");
        }
        if (!chat && root.has("echo") && root.get("echo").asBoolean(false))
            throw ApiException.invalid("echo", "unsupported_parameter", "echo is not supported by this server");
        JsonNode bestOf = root.get("best_of");
        if (!chat && bestOf != null && !bestOf.isNull() && bestOf.asInt(1) != 1)
            throw ApiException.invalid("best_of", "unsupported_parameter", "best_of other than 1 is not supported");
    }

    private int[] chatPrompt(JsonNode root, String salt) {
        JsonNode msgs = root.get("messages");
        if (msgs == null || !msgs.isArray() || msgs.isEmpty())
            throw ApiException.invalid(
                    "messages", "messages must be a non-empty array of {\"role\", \"content\"} objects");
        List<ChatTemplate.Message> list = new ArrayList<>();
        List<int[]> spliced = new ArrayList<>();
        List<ChatTemplate.Message> plain = new ArrayList<>();
        for (int i = 0; i < msgs.size(); i++) {
            JsonNode msg = msgs.get(i);
            String p = "messages[" + i + "]";
            if (!msg.isObject()) throw ApiException.invalid(p, p + " must be an object with role and content");
            String role = role(msg, p);
            String content = content(msg.get("content"), p + ".content");
            plain.add(new ChatTemplate.Message(role, content));
            int[] ids = "assistant".equals(role) ? answers.lookup(salt, content) : null;
            // its place in the text gets the ids generated for it (an answer of this server's), or its
            // text encoded as text: special-token text a user writes never becomes a control token
            spliced.add(ids != null ? ids : model.tokenizer().encode(content));
            list.add(new ChatTemplate.Message(role, marker + (spliced.size() - 1) + "\uE000"));
        }
        int[] ids = encodeSpliced(render(list), spliced);
        if (ids == null) // the template did not keep the markers as they were: its whole text, specials escaped
        ids = model.tokenizer().encodeWithSpecials(render(escaped(plain)));
        return withBos(ids);
    }

    /** Messages whose special-token text is broken up, so the tokenizer reads it as text. */
    private List<ChatTemplate.Message> escaped(List<ChatTemplate.Message> msgs) {
        List<ChatTemplate.Message> out = new ArrayList<>(msgs.size());
        for (ChatTemplate.Message m : msgs) {
            String c = m.content();
            for (String special : model.specialTokenTexts())
                c = c.replace(special, special.charAt(0) + "\u200B" + special.substring(1));
            out.add(new ChatTemplate.Message(m.role(), c));
        }
        return out;
    }

    private String render(List<ChatTemplate.Message> list) {
        ChatTemplate tpl = model.chatTemplate();
        if (tpl == null) {
            StringBuilder sb = new StringBuilder();
            for (ChatTemplate.Message msg : list)
                sb.append(msg.role()).append(": ").append(msg.content()).append('\n');
            return sb.append("assistant: ").toString();
        }
        try {
            return tpl.render(list, true);
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
     * need content (tool also its tool_call_id); assistant needs content (its tool_calls belong to
     * tool calling, which this server does not serve).
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
        if (msg.has("tool_calls") && !msg.get("tool_calls").isNull())
            throw SamplingParser.unsupported(
                    p + ".tool_calls", p + ".tool_calls: tool calls are not supported by this server");
        JsonNode c = msg.get("content");
        if (c == null || c.isNull())
            throw ApiException.invalid(p + ".content", p + ".content is required for a " + role + " message");
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
                "prompt must be a string, an array with one string, or an array of token ids (batches of prompts are "
                        + "not supported)");
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
