package dev.mooncakej.conductor.api;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.conductor.model.ServedModel;
import dev.mooncakej.conductor.request.AnswerTokens;
import dev.mooncakej.conductor.request.GenerationRequest;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.lifecycle.BeforeContainer;

/**
 * Fuzzing the OpenAI request parser (what every client body goes through): any body is either a
 * request within the model's context or a 4xx ApiException that names what is wrong, never another
 * exception. jqwik, a fixed number of tries (the CI budget).
 */
class RequestParserFuzzTest {
    private static RequestParser parser;
    private static ServedModel model;

    @BeforeContainer
    static void load() throws Exception {
        ConductorProperties props = ApiFixtures.props();
        model = new ServedModel(props);
        parser = new RequestParser(model, props, new AnswerTokens());
    }

    @Property(tries = 1500)
    void everyBodyIsARequestOrAClearClientError(@ForAll("bodies") String body, @ForAll boolean chat) {
        try {
            GenerationRequest g = parser.parse(body, chat, "fuzz");
            assertThat(g.promptTokens().length).isBetween(1, model.contextLength() - 1);
            assertThat(g.promptTokens().length + g.maxTokens()).isLessThanOrEqualTo(model.contextLength());
        } catch (ApiException e) {
            assertThat(e.status()).isBetween(400, 499);
            assertThat(e.getMessage()).isNotBlank();
        }
    }

    /** Bodies built from the API's own fields and values, valid and not, and plain noise. */
    @Provide
    Arbitrary<String> bodies() {
        Arbitrary<String> value = Arbitraries.of(
                "\"mooncakej-tiny\"",
                "\"other\"",
                "null",
                "true",
                "-1",
                "0",
                "1",
                "2.5",
                "1e309",
                "4096",
                "\"\"",
                "\"<|im_end|>\"",
                "[]",
                "{}",
                "[\"a\",\"b\"]",
                "[1,2,3]",
                "[{\"role\":\"user\",\"content\":\"hi\"}]",
                "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}]",
                "{\"type\":\"text\"}",
                "{\"include_usage\":true}",
                "\"\\ud800\"",
                "[" + "1,".repeat(50) + "1]",
                "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\"}}}]",
                "\"required\"",
                "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}",
                "[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\","
                        + "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\","
                        + "\"tool_call_id\":\"c\",\"content\":\"1\"}]");
        Arbitrary<String> key = Arbitraries.of(
                "model",
                "prompt",
                "messages",
                "max_tokens",
                "max_completion_tokens",
                "temperature",
                "top_p",
                "n",
                "stream",
                "stream_options",
                "stop",
                "seed",
                "logprobs",
                "tools",
                "tool_choice",
                "parallel_tool_calls",
                "response_format",
                "echo",
                "x");
        Arbitrary<String> member = net.jqwik.api.Combinators.combine(key, value).as((k, v) -> "\"" + k + "\":" + v);
        return Arbitraries.oneOf(
                member.list().ofMaxSize(8).map(l -> "{" + String.join(",", l) + "}"),
                member.list().ofMaxSize(8).map(l -> "{\"model\":\"mooncakej-tiny\"," + String.join(",", l) + "}"),
                Arbitraries.strings().ofMaxLength(120));
    }
}
