package dev.mooncakej.conductor.tools;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.json.JsonMapper;

/**
 * Each family's tool-call syntax parsed out of an answer, whole and streamed in random pieces (the
 * same calls, ids aside, and the same content either way; a call's id and name before its arguments).
 */
class ToolCallStreamTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    /** What a parse released, joined: the content, and per call its name and arguments. */
    record Result(String content, List<String> names, List<String> args) {}

    static Result run(ToolCallFormat f, String named, List<String> pieces) {
        ToolCallStream s = new ToolCallStream(f, named);
        List<ToolCallStream.Out> outs = new ArrayList<>();
        for (String p : pieces) outs.addAll(s.feed(p));
        outs.addAll(s.finish());
        StringBuilder content = new StringBuilder();
        List<String> names = new ArrayList<>();
        List<StringBuilder> args = new ArrayList<>();
        for (ToolCallStream.Out o : outs) {
            switch (o) {
                case ToolCallStream.Text t -> content.append(t.text());
                case ToolCallStream.Start st -> {
                    assertThat(st.index()).isEqualTo(names.size());
                    assertThat(st.id()).matches("call_[A-Za-z0-9]{24}");
                    names.add(st.name());
                    args.add(new StringBuilder());
                }
                case ToolCallStream.Args a -> {
                    assertThat(a.index())
                            .as("arguments after their call's start")
                            .isLessThan(names.size());
                    args.get(a.index()).append(a.fragment());
                }
            }
        }
        return new Result(
                content.toString(),
                names,
                args.stream().map(StringBuilder::toString).toList());
    }

    /** The answer whole, then in random pieces (several splits): the same result each time. */
    static Result parse(ToolCallFormat f, String named, String answer) {
        Result whole = run(f, named, List.of(answer));
        SplittableRandom r = new SplittableRandom(answer.hashCode());
        for (int k = 0; k < 20; k++) {
            List<String> pieces = new ArrayList<>();
            for (int i = 0; i < answer.length(); ) {
                int n = 1 + r.nextInt(6);
                pieces.add(answer.substring(i, Math.min(answer.length(), i + n)));
                i += n;
            }
            assertThat(run(f, named, pieces))
                    .as("streamed in pieces %s", pieces)
                    .isEqualTo(whole);
        }
        return whole;
    }

    @Test
    void hermesBlocksAfterText() {
        Result r = parse(
                ToolCallFormat.HERMES,
                null,
                "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\","
                        + " \"unit\": \"c\\\"}\"}}\n</tool_call>\n<tool_call>\n{\"arguments\": {\"a\": 2, \"b\": 3},"
                        + " \"name\": \"add\"}\n</tool_call>");
        assertThat(r.content()).isEqualTo("Let me check.\n\n");
        assertThat(r.names()).containsExactly("get_weather", "add");
        assertThat(r.args()).containsExactly("{\"location\": \"Paris\", \"unit\": \"c\\\"}\"}", "{\"a\": 2, \"b\": 3}");
        for (String a : r.args()) assertThat(JSON.readTree(a).isObject()).isTrue();
    }

    @Test
    void llamaJsonCallsWithAndWithoutThePythonTag() {
        Result r = parse(
                ToolCallFormat.LLAMA3_JSON,
                null,
                "{\"name\": \"add\", \"parameters\": {\"a\": 2, \"b\": 3}}; {\"name\": \"get_weather\","
                        + " \"parameters\": {\"location\": \"Oslo\"}}");
        assertThat(r.names()).containsExactly("add", "get_weather");
        assertThat(r.args()).containsExactly("{\"a\": 2, \"b\": 3}", "{\"location\": \"Oslo\"}");
        assertThat(r.content()).isEmpty();
        Result tagged =
                parse(ToolCallFormat.LLAMA3_JSON, null, "<|python_tag|>{\"name\": \"add\", \"parameters\": {}}");
        assertThat(tagged.names()).containsExactly("add");
        assertThat(tagged.args()).containsExactly("{}");
    }

    @Test
    void mistralArrayVersion11AndBareArray() {
        Result r = parse(
                ToolCallFormat.MISTRAL,
                null,
                "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": [1, {\"c\": \"]\"}]}},"
                        + " {\"name\": \"get_weather\", \"arguments\": {\"location\": \"Rome\"}}]");
        assertThat(r.names()).containsExactly("add", "get_weather");
        assertThat(r.args()).containsExactly("{\"a\": 1, \"b\": [1, {\"c\": \"]\"}]}", "{\"location\": \"Rome\"}");
        Result v11 = parse(ToolCallFormat.MISTRAL, null, "[TOOL_CALLS]add[ARGS]{\"a\": 1}[TOOL_CALLS]noop[ARGS]{}");
        assertThat(v11.names()).containsExactly("add", "noop");
        assertThat(v11.args()).containsExactly("{\"a\": 1}", "{}");
        Result bare = parse(ToolCallFormat.MISTRAL, null, "[{\"name\": \"add\", \"arguments\": {\"a\": 1}}]");
        assertThat(bare.names()).containsExactly("add");
    }

    @Test
    void plainAnswersAreContentInEveryFamily() {
        for (ToolCallFormat f : List.of(ToolCallFormat.HERMES, ToolCallFormat.LLAMA3_JSON, ToolCallFormat.MISTRAL)) {
            for (String text : List.of(
                    "The weather in Paris is sunny <tool_ and 18 C.",
                    "{\"answer\": 42}",
                    "[1] a citation, [2] another",
                    "  ")) {
                Result r = parse(f, null, text);
                assertThat(r.names()).as("%s: %s", f, text).isEmpty();
                assertThat(r.content()).as("%s: %s", f, text).isEqualTo(text);
            }
        }
    }

    @Test
    void aBrokenBlockIsGivenBackAsText() {
        Result r = parse(ToolCallFormat.HERMES, null, "Hi <tool_call>\n{\"nam\": 1}\n</tool_call>");
        assertThat(r.names()).isEmpty();
        assertThat(r.content()).isEqualTo("Hi <tool_call>\n{\"nam\": 1}\n</tool_call>");
    }

    @Test
    void forcedFormatsCallArrayAndNamedArguments() {
        Result req = parse(
                ToolCallFormat.CALL_ARRAY,
                null,
                "[{\"name\":\"add\",\"arguments\":{\"a\":1,\"b\":2}},{\"name\":\"get_weather\",\"arguments\":{"
                        + "\"location\":\"x\"}}]");
        assertThat(req.names()).containsExactly("add", "get_weather");
        assertThat(req.args()).containsExactly("{\"a\":1,\"b\":2}", "{\"location\":\"x\"}");
        Result named = parse(ToolCallFormat.ARGUMENTS, "add", " {\"a\": 1, \"b\": 2}");
        assertThat(named.names()).containsExactly("add");
        assertThat(named.args()).containsExactly("{\"a\": 1, \"b\": 2}");
        assertThat(named.content()).isEmpty();
    }

    @Test
    void theNameComesBeforeAnyArgumentFragment() {
        ToolCallStream s = new ToolCallStream(ToolCallFormat.HERMES, null);
        List<ToolCallStream.Out> first = s.feed("<tool_call>{\"name\": \"get_wea");
        assertThat(first).isEmpty();
        List<ToolCallStream.Out> next = s.feed("ther\", \"arguments\": {\"loc");
        assertThat(next).hasSize(2);
        assertThat(next.get(0)).isInstanceOf(ToolCallStream.Start.class);
        assertThat(((ToolCallStream.Start) next.get(0)).name()).isEqualTo("get_weather");
        assertThat(((ToolCallStream.Args) next.get(1)).fragment()).isEqualTo("{\"loc");
    }
}
