package dev.mooncakej.engine.tokenizer;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A model's chat template ({@code tokenizer.chat_template}, Jinja), rendered with Jinjava with the
 * Hugging Face conventions: {@code messages}, {@code add_generation_prompt}, {@code bos_token},
 * {@code eos_token}, trim_blocks and lstrip_blocks on.
 */
public final class ChatTemplate {
    public record Message(String role, String content) {}

    private final String template;
    private final String bosToken;
    private final String eosToken;
    private final Jinjava jinjava;

    public ChatTemplate(String template, String bosToken, String eosToken) {
        this.template = template;
        this.bosToken = bosToken == null ? "" : bosToken;
        this.eosToken = eosToken == null ? "" : eosToken;
        this.jinjava = new Jinjava(JinjavaConfig.newBuilder()
                .withTrimBlocks(true)
                .withLstripBlocks(true)
                .withFailOnUnknownTokens(false)
                .build());
    }

    public String template() {
        return template;
    }

    /** Renders the conversation; fails with a message naming the template problem. */
    public String render(List<Message> messages, boolean addGenerationPrompt) {
        List<Map<String, Object>> msgs = messages.stream()
                .map(m -> Map.<String, Object>of("role", m.role(), "content", m.content()))
                .toList();
        Map<String, Object> ctx = new HashMap<>();
        ctx.put("messages", msgs);
        ctx.put("add_generation_prompt", addGenerationPrompt);
        ctx.put("bos_token", bosToken);
        ctx.put("eos_token", eosToken);
        RenderResult r = jinjava.renderForResult(template, ctx);
        List<TemplateError> fatal = r.getErrors().stream()
                .filter(e -> e.getSeverity() == TemplateError.ErrorType.FATAL)
                .toList();
        if (!fatal.isEmpty()) {
            throw new IllegalArgumentException(
                    "chat template failed to render: " + fatal.get(0).getMessage());
        }
        return r.getOutput();
    }
}
