package dev.mooncakej.engine.tokenizer;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import java.time.Clock;
import java.time.ZonedDateTime;
import java.time.format.TextStyle;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * A model's chat template ({@code tokenizer.chat_template}, Jinja), rendered with Jinjava the way
 * Hugging Face renders it: {@code messages}, {@code add_generation_prompt}, {@code bos_token},
 * {@code eos_token}, trim_blocks and lstrip_blocks on, and the helpers real templates call:
 * {@code raise_exception(message)} (the render fails with that message) and
 * {@code strftime_now(format)} (the date now, in UTC). Jinjava itself brings {@code tojson},
 * {@code namespace}, slicing and the loop controls; {@link #preprocess} maps the Python string
 * methods templates use onto Jinjava's filters.
 */
public final class ChatTemplate {
    public record Message(String role, String content) {}

    private static final String CLOCK_KEY = "__mooncakej_clock";
    private static final String RAISED_PREFIX = "raise_exception: ";

    private final String template;
    private final String prepared;
    private final String bosToken;
    private final String eosToken;
    private final Clock clock;
    private final Jinjava jinjava;

    public ChatTemplate(String template, String bosToken, String eosToken) {
        this(template, bosToken, eosToken, Clock.systemUTC());
    }

    /** With the clock {@code strftime_now} reads (tests pin it). */
    public ChatTemplate(String template, String bosToken, String eosToken, Clock clock) {
        this.template = template;
        this.prepared = PythonMethods.rewrite(template);
        this.bosToken = bosToken == null ? "" : bosToken;
        this.eosToken = eosToken == null ? "" : eosToken;
        this.clock = clock;
        this.jinjava = new Jinjava(JinjavaConfig.newBuilder()
                .withTrimBlocks(true)
                .withLstripBlocks(true)
                .withFailOnUnknownTokens(false)
                .withElResolver(PythonMethods.resolver())
                .withLegacyOverrides(LegacyOverrides.newBuilder() // Jinja's semantics where Jinjava's differ
                        .withUseTrimmingForNotesAndExpressions(true) // {{- x -}} trims as {%- -%} does
                        .withParseWhitespaceControlStrictly(true)
                        .withUseNaturalOperatorPrecedence(true) // x|length - 1 is (x|length) - 1
                        .withEvaluateMapKeys(true) // {key: 1} takes key's value, as in Python
                        .withKeepNullableLoopValues(true)
                        .build())
                .build());
        jinjava.getGlobalContext()
                .registerFunction(
                        new ELFunctionDefinition("", "raise_exception", ChatTemplate.class, "raise", Object.class));
        jinjava.getGlobalContext()
                .registerFunction(
                        new ELFunctionDefinition("", "strftime_now", ChatTemplate.class, "strftimeNow", String.class));
        jinjava.getGlobalContext().registerFilter(new PythonJson()); // json.dumps, as Hugging Face renders
    }

    public String template() {
        return template;
    }

    /** Renders the conversation; fails with a message naming the template problem (or what it raised). */
    public String render(List<Message> messages, boolean addGenerationPrompt) {
        List<Map<String, Object>> msgs = messages.stream()
                .map(m -> Map.<String, Object>of("role", m.role(), "content", m.content()))
                .toList();
        return render(msgs, null, addGenerationPrompt);
    }

    /**
     * Renders messages given as the template reads them (role, content, and for tool calling an
     * assistant's {@code tool_calls}, a tool message's {@code tool_call_id} and {@code name}), with the
     * {@code tools} the request offers (OpenAI's tool objects, as Hugging Face passes them), or null.
     */
    public String render(List<Map<String, Object>> msgs, List<Map<String, Object>> tools, boolean addGenerationPrompt) {
        Map<String, Object> ctx = new HashMap<>();
        ctx.put("messages", msgs);
        if (tools != null) ctx.put("tools", tools);
        ctx.put("add_generation_prompt", addGenerationPrompt);
        ctx.put("bos_token", bosToken);
        ctx.put("eos_token", eosToken);
        ctx.put(CLOCK_KEY, clock);
        RenderResult r = jinjava.renderForResult(prepared, ctx);
        List<TemplateError> fatal = r.getErrors().stream()
                .filter(e -> e.getSeverity() == TemplateError.ErrorType.FATAL)
                .toList();
        if (!fatal.isEmpty()) {
            String m = String.valueOf(fatal.get(0).getMessage());
            for (Throwable t = fatal.get(0).getException(); t != null; t = t.getCause()) {
                if (t instanceof TemplateRaised) m = t.getMessage();
            }
            int at = m.indexOf(RAISED_PREFIX);
            if (at >= 0) {
                throw new IllegalArgumentException(
                        "the chat template refused the conversation: " + m.substring(at + RAISED_PREFIX.length()));
            }
            throw new IllegalArgumentException("chat template failed to render: " + m);
        }
        return r.getOutput();
    }

    /** {@code raise_exception(message)}: Hugging Face's way for a template to refuse a conversation. */
    public static Object raise(Object message) {
        throw new TemplateRaised(RAISED_PREFIX + message);
    }

    /** {@code strftime_now(format)}: now, formatted with C's strftime directives (%d %m %Y %y %b %B %a %A %H %M %S). */
    public static String strftimeNow(String format) {
        JinjavaInterpreter in = JinjavaInterpreter.getCurrent();
        Object c = in == null ? null : in.getContext().get(CLOCK_KEY);
        Clock clock = c instanceof Clock k ? k : Clock.systemUTC();
        return strftime(format, ZonedDateTime.now(clock));
    }

    static String strftime(String format, ZonedDateTime t) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < format.length(); i++) {
            char ch = format.charAt(i);
            if (ch != '%' || i + 1 == format.length()) {
                sb.append(ch);
                continue;
            }
            char d = format.charAt(++i);
            switch (d) {
                case 'd' -> sb.append(String.format("%02d", t.getDayOfMonth()));
                case 'm' -> sb.append(String.format("%02d", t.getMonthValue()));
                case 'Y' -> sb.append(t.getYear());
                case 'y' -> sb.append(String.format("%02d", t.getYear() % 100));
                case 'b' -> sb.append(t.getMonth().getDisplayName(TextStyle.SHORT, Locale.ENGLISH));
                case 'B' -> sb.append(t.getMonth().getDisplayName(TextStyle.FULL, Locale.ENGLISH));
                case 'a' -> sb.append(t.getDayOfWeek().getDisplayName(TextStyle.SHORT, Locale.ENGLISH));
                case 'A' -> sb.append(t.getDayOfWeek().getDisplayName(TextStyle.FULL, Locale.ENGLISH));
                case 'H' -> sb.append(String.format("%02d", t.getHour()));
                case 'M' -> sb.append(String.format("%02d", t.getMinute()));
                case 'S' -> sb.append(String.format("%02d", t.getSecond()));
                case '%' -> sb.append('%');
                default ->
                    throw new TemplateRaised("strftime_now: directive %" + d
                            + " is not supported; expected one of %d %m %Y %y %b %B " + "%a %A %H %M %S %%");
            }
        }
        return sb.toString();
    }

    /** What {@code raise_exception} throws; Jinjava reports it as a fatal error carrying the message. */
    static final class TemplateRaised extends RuntimeException {
        TemplateRaised(String message) {
            super(message, null, false, false);
        }
    }
}
