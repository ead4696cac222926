package dev.mooncakej.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.engine.tokenizer.ChatTemplate;
import java.nio.file.Files;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import tools.jackson.databind.json.JsonMapper;

/**
 * Chat templates rendered by the engine (Jinjava with Hugging Face's helpers) equal what
 * {@code @huggingface/jinja} renders for the same conversations: the real Llama 3 and Qwen3 templates
 * (from their tokenizer_config.json, installed with the llama.cpp reference), the generated models'
 * ChatML, and two written here in the style of Mistral's and Llama 3.1's that call
 * {@code raise_exception}, {@code strftime_now}, slicing, {@code namespace} and loop controls. A
 * template that raises fails here with the same message.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class ChatTemplateAgreementTest {
    static final Instant NOW = Instant.parse("2026-07-26T10:15:00Z");

    /** Mistral-style: [INST] turns, roles must alternate (raise_exception otherwise). */
    static final String MISTRAL_STYLE = "{{ bos_token }}{% for message in messages %}"
            + "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
            + "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
            + "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
            + "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
            + "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

    /** Llama 3.1-style: a dated system header (strftime_now), the system message sliced off. */
    static final String LLAMA31_STYLE = "{{- bos_token }}\n"
            + "{%- if messages[0]['role'] == 'system' %}\n"
            + "    {%- set system_message = messages[0]['content']|trim %}\n"
            + "    {%- set messages = messages[1:] %}\n"
            + "{%- else %}\n"
            + "    {%- set system_message = \"\" %}\n"
            + "{%- endif %}\n"
            + "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n"
            + "{{- \"Today Date: \" + strftime_now(\"%d %b %Y\") + \"\\n\\n\" }}\n"
            + "{{- system_message }}\n"
            + "{{- \"<|eot_id|>\" }}\n"
            + "{%- for message in messages %}\n"
            + "    {%- if message['content'] == '' %}{% continue %}{% endif %}\n"
            + "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
            + " + message['content'] | trim + '<|eot_id|>' }}\n"
            + "    {%- if loop.index > 8 %}{% break %}{% endif %}\n"
            + "{%- endfor %}\n"
            + "{%- if add_generation_prompt %}\n"
            + "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
            + "{%- endif %}\n";

    static List<TemplateReference.Case> cases() {
        Map<String, Object> sys = msg("system", "You are a helpful assistant.  ");
        Map<String, Object> u1 = msg("user", "Hello! How are you?");
        Map<String, Object> a1 = msg("assistant", "<think>\nThe user greets me.\n</think>\n\nI'm fine, thanks.");
        Map<String, Object> u2 = msg("user", "  Write 日本語 and code:\n```x = 1```\n");
        Map<String, Object> empty = msg("user", "");
        List<TemplateReference.Case> cs = new ArrayList<>();
        for (boolean gen : new boolean[] {true, false}) {
            cs.add(new TemplateReference.Case(List.of(u1), gen));
            cs.add(new TemplateReference.Case(List.of(sys, u1), gen));
            cs.add(new TemplateReference.Case(List.of(sys, u1, a1, u2), gen));
            cs.add(new TemplateReference.Case(List.of(u1, a1, u2), gen));
        }
        cs.add(new TemplateReference.Case(List.of(a1, u1), true)); // Mistral-style raises
        cs.add(new TemplateReference.Case(List.of(u1, a1, empty), true));
        return cs;
    }

    static Map<String, Object> msg(String role, String content) {
        return Map.of("role", role, "content", content);
    }

    static String packaged(String vocab) throws Exception {
        return JsonMapper.builder()
                .build()
                .readTree(Files.readString(RealVocabularyTest.vocab(vocab).resolveSibling("tokenizer_config.json")))
                .get("chat_template")
                .asString();
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama3", "qwen3", "chatml", "mistral-style", "llama31-style"})
    void renderingEqualsHuggingFaceJinja(String name) throws Exception {
        String template = switch (name) {
            case "llama3", "qwen3" -> packaged(name);
            case "chatml" -> ModelGenerator.CHAT_TEMPLATE;
            case "mistral-style" -> MISTRAL_STYLE;
            default -> LLAMA31_STYLE;
        };
        String bos = name.startsWith("llama") ? "<|begin_of_text|>" : "<s>";
        String eos = name.startsWith("llama") ? "<|eot_id|>" : "</s>";
        List<TemplateReference.Case> cases = cases();
        List<TemplateReference.Rendered> ref = TemplateReference.render(template, bos, eos, NOW, cases);
        ChatTemplate ours = new ChatTemplate(template, bos, eos, Clock.fixed(NOW, ZoneOffset.UTC));
        int raised = 0;
        for (int i = 0; i < cases.size(); i++) {
            List<ChatTemplate.Message> messages = cases.get(i).messages().stream()
                    .map(m -> new ChatTemplate.Message((String) m.get("role"), (String) m.get("content")))
                    .toList();
            boolean gen = cases.get(i).addGenerationPrompt();
            TemplateReference.Rendered r = ref.get(i);
            if (r.error() != null) {
                raised++;
                assertThatThrownBy(() -> ours.render(messages, gen))
                        .as("%s, case %d: the reference raised '%s'", name, i, r.error())
                        .isInstanceOf(IllegalArgumentException.class)
                        .hasMessageContaining(r.error());
            } else {
                assertThat(ours.render(messages, gen))
                        .as("%s, case %d (%s)", name, i, cases.get(i))
                        .isEqualTo(r.text());
            }
        }
        if (name.equals("mistral-style"))
            assertThat(raised).as("cases the template refuses").isPositive();
        else assertThat(raised).as("%s raised on %d cases", name, raised).isZero();
    }

    /** Two function tools, as an OpenAI request offers them. */
    static List<Map<String, Object>> tools() {
        Map<String, Object> weather = Map.of(
                "type",
                "function",
                "function",
                Map.of(
                        "name",
                        "get_weather",
                        "description",
                        "The weather now in a city",
                        "parameters",
                        Map.of(
                                "type",
                                "object",
                                "properties",
                                Map.of(
                                        "location", Map.of("type", "string"),
                                        "unit", Map.of("type", "string", "enum", List.of("celsius", "fahrenheit"))),
                                "required",
                                List.of("location"))));
        Map<String, Object> add = Map.of(
                "type",
                "function",
                "function",
                Map.of(
                        "name",
                        "add",
                        "description",
                        "Adds two numbers",
                        "parameters",
                        Map.of(
                                "type",
                                "object",
                                "properties",
                                Map.of("a", Map.of("type", "number"), "b", Map.of("type", "number")),
                                "required",
                                List.of("a", "b"))));
        return List.of(weather, add);
    }

    static Map<String, Object> toolCall(String id, String name, Map<String, Object> arguments) {
        return Map.of("id", id, "type", "function", "function", Map.of("name", name, "arguments", arguments));
    }

    /**
     * An assistant turn that only calls tools: clients send its content as null, the conductor gives
     * the template an empty string (as vLLM does; Qwen's template fails on null in @huggingface/jinja).
     */
    @SafeVarargs
    static Map<String, Object> calling(Map<String, Object>... calls) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("role", "assistant");
        m.put("content", "");
        m.put("tool_calls", List.of(calls));
        return m;
    }

    static Map<String, Object> toolResult(String id, String name, String content) {
        return Map.of("role", "tool", "tool_call_id", id, "name", name, "content", content);
    }

    /**
     * Tool calling through the model's own template: the tools offered, an assistant's tool calls (one,
     * then two in parallel) and the tool results render as Hugging Face renders them.
     */
    @ParameterizedTest
    @ValueSource(strings = {"qwen3"})
    void toolConversationsRenderAsHuggingFaceJinjaRendersThem(String name) throws Exception {
        String template = packaged(name);
        assertThat(template).contains("tools");
        Map<String, Object> sys = msg("system", "You are a helpful assistant.");
        Map<String, Object> u1 = msg("user", "What is the weather in Paris, and 2 + 3?");
        Map<String, Object> one = calling(toolCall("call_1", "get_weather", Map.of("location", "Paris")));
        Map<String, Object> two = calling(
                toolCall("call_2", "get_weather", Map.of("location", "Paris", "unit", "celsius")),
                toolCall("call_3", "add", Map.of("a", 2, "b", 3)));
        Map<String, Object> r1 = toolResult("call_1", "get_weather", "18 C, sunny");
        Map<String, Object> r2 = toolResult("call_2", "get_weather", "{\"temp\": 18}");
        Map<String, Object> r3 = toolResult("call_3", "add", "5");
        Map<String, Object> extra = Map.of("tools", tools());
        List<TemplateReference.Case> cases = List.of(
                new TemplateReference.Case(List.of(u1), true, extra),
                new TemplateReference.Case(List.of(sys, u1), true, extra),
                new TemplateReference.Case(List.of(sys, u1, one, r1), true, extra),
                new TemplateReference.Case(List.of(u1, two, r2, r3), true, extra),
                new TemplateReference.Case(
                        List.of(u1, two, r2, r3, msg("assistant", "It is 18 C; 2 + 3 = 5.")), false, extra));
        List<TemplateReference.Rendered> ref = TemplateReference.render(template, "<s>", "</s>", NOW, cases);
        ChatTemplate ours = new ChatTemplate(template, "<s>", "</s>", Clock.fixed(NOW, ZoneOffset.UTC));
        for (int i = 0; i < cases.size(); i++) {
            assertThat(ref.get(i).error()).as("reference, case %d", i).isNull();
            assertThat(ours.render(
                            cases.get(i).messages(), tools(), cases.get(i).addGenerationPrompt()))
                    .as("%s, tool case %d", name, i)
                    .isEqualTo(ref.get(i).text());
        }
        assertThat(ours.render(List.of(u1), tools(), true))
                .contains("get_weather")
                .contains("\"location\"");
    }
}
