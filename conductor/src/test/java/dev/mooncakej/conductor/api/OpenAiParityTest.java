package dev.mooncakej.conductor.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.mooncakej.conductor.model.ServedModel;
import dev.mooncakej.conductor.request.AnswerTokens;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The OpenAI edge answers as OpenAI does (issue 23, item 8): an unknown model is 404
 * {@code model_not_found}; roles are the five OpenAI names with their required fields; every numeric
 * parameter is range-checked, and a value the sampler does not implement is refused by name, never
 * ignored; {@code top_k} (a vLLM extension) reaches the sampler.
 */
class OpenAiParityTest {
    private static RequestParser parser;

    @BeforeAll
    static void load() throws Exception {
        var props = ApiFixtures.props();
        parser = new RequestParser(new ServedModel(props), props, new AnswerTokens());
    }

    private static ApiException refused(String body, boolean chat) {
        ApiException e = catchThrowableOfType(ApiException.class, () -> parser.parse(body, chat, "t"));
        assertThat(e).as("refused: %s", body).isNotNull();
        return e;
    }

    private static String chat(String extra) {
        return "{\"model\":\"mooncakej-tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":2"
                + extra + "}";
    }

    @Test
    void anUnknownModelIs404ModelNotFound() {
        ApiException e = refused("{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", true);
        assertThat(e.status()).isEqualTo(404);
        assertThat(e.body().toString()).contains("model_not_found").contains("gpt-4o");
    }

    @Test
    void rolesAreOpenAisWithTheirRequiredFields() {
        String p = "{\"model\":\"mooncakej-tiny\",\"messages\":[%s]}";
        assertThat(refused(p.formatted("{\"role\":\"wizard\",\"content\":\"hi\"}"), true)
                        .getMessage())
                .contains("messages[0].role")
                .contains("wizard");
        assertThat(refused(p.formatted("{\"role\":\"user\"}"), true).getMessage())
                .contains("messages[0].content is required");
        assertThat(refused(p.formatted("{\"role\":\"system\",\"content\":null}"), true)
                        .getMessage())
                .contains("messages[0].content is required");
        assertThat(refused(p.formatted("{\"role\":\"tool\",\"content\":\"42\"}"), true)
                        .getMessage())
                .contains("tool_call_id");
        assertThat(refused(
                                p.formatted(
                                        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c\"}]}"),
                                true)
                        .getMessage())
                .as("a malformed tool call is named")
                .contains("messages[0].tool_calls[0]");
        for (String ok : new String[] {
            "{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{"
                    + "\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\","
                    + "\"arguments\":\"{\\\"x\\\":1}\"}}]},"
                    + "{\"role\":\"tool\",\"content\":\"42\",\"tool_call_id\":\"c1\"}",
            "{\"role\":\"developer\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"hi\"}",
            "{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"yo\"},"
                    + "{\"role\":\"tool\",\"content\":\"42\",\"tool_call_id\":\"c1\"}"
        }) assertThat(parser.parse(p.formatted(ok), true, "t").promptTokens()).isNotEmpty();
    }

    @Test
    void numericParametersAreRangeCheckedAndUnimplementedValuesRefusedByName() {
        String[][] outOfRange = {
            {"temperature", "2.5"},
            {"top_p", "0"},
            {"presence_penalty", "9"},
            {"frequency_penalty", "-3"},
            {"repetition_penalty", "0"},
            {"min_p", "1.5"},
            {"top_k", "-2"}
        };
        for (String[] p : outOfRange) {
            ApiException e = refused(chat(",\"" + p[0] + "\":" + p[1]), true);
            assertThat(e.body().toString()).as(p[0]).contains("param=" + p[0]).contains("out of range");
        }
        ApiException top = refused(chat(",\"logprobs\":true,\"top_logprobs\":99"), true);
        assertThat(top.getMessage()).contains("top_logprobs=99").contains("0..20");
        assertThat(refused(chat(",\"top_logprobs\":2"), true).getMessage()).contains("needs logprobs");
        String[][] unimplemented = {
            {"presence_penalty", "0.5"}, {"frequency_penalty", "1"}, {"repetition_penalty", "1.2"}, {"min_p", "0.1"}
        };
        for (String[] p : unimplemented) {
            ApiException e = refused(chat(",\"" + p[0] + "\":" + p[1]), true);
            assertThat(e.body().toString())
                    .as(p[0])
                    .contains("unsupported_parameter")
                    .contains("param=" + p[0]);
        }
        assertThat(refused(chat(",\"logprobs\":true,\"top_logprobs\":3"), true)
                        .body()
                        .toString())
                .contains("unsupported_parameter");
        assertThat(refused("{\"model\":\"mooncakej-tiny\",\"prompt\":\"hi\",\"max_tokens\":2,\"logprobs\":3}", false)
                        .body()
                        .toString())
                .contains("unsupported_parameter");
        // neutral values are accepted, and top_k reaches the sampler
        var g = parser.parse(
                chat(",\"presence_penalty\":0,\"frequency_penalty\":0,\"repetition_penalty\":1,\"min_p\":0"
                        + ",\"top_k\":7,\"logprobs\":true,\"top_logprobs\":0"),
                true,
                "t");
        assertThat(g.sampling().topK()).isEqualTo(7);
        assertThat(g.sampling().logprobs()).isTrue();
        assertThat(parser.parse(chat(",\"top_k\":-1"), true, "t").sampling().topK())
                .isZero();
    }

    @Test
    void aPromptThatCannotFitIsRefusedBeforeTokenizing() {
        String huge = "x".repeat(3_000_000);
        ApiException e = refused("{\"model\":\"mooncakej-tiny\",\"prompt\":\"" + huge + "\",\"max_tokens\":1}", false);
        assertThat(e.body().toString()).contains("context_length_exceeded").contains("at least");
        assertThat(e.getMessage()).contains("3000000 bytes");
    }
}
