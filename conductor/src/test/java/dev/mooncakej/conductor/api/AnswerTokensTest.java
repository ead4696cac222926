package dev.mooncakej.conductor.api;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.conductor.model.ServedModel;
import dev.mooncakej.conductor.request.AnswerTokens;
import java.util.Arrays;
import java.util.Collections;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Turn 2 of a conversation is tokenized with the ids generated for turn 1's answer, so its prefix is
 * turn 1's prompt followed by exactly the tokens whose KV the decode worker put into the pool.
 */
class AnswerTokensTest {
    private static ServedModel model;
    private static ConductorProperties props;

    @BeforeAll
    static void load() throws Exception {
        props = ApiFixtures.props();
        model = new ServedModel(props);
    }

    private static String chat(String... turns) {
        StringBuilder sb = new StringBuilder("{\"model\":\"mooncakej-tiny\",\"messages\":[");
        for (int i = 0; i < turns.length; i++) {
            if (i > 0) sb.append(',');
            sb.append("{\"role\":\"")
                    .append(i % 2 == 0 ? "user" : "assistant")
                    .append("\",\"content\":\"")
                    .append(turns[i])
                    .append("\"}");
        }
        return sb.append("]}").toString();
    }

    @Test
    void anAnswerGeneratedHereComesBackAsItsOwnIds() {
        AnswerTokens answers = new AnswerTokens();
        RequestParser parser = new RequestParser(model, props, answers);
        int[] turn1 = parser.parse(chat("tell me a story"), true, "r1").promptTokens();
        // ids a model may choose that a tokenizer would not produce for their text (not its own encoding)
        String answer = "once upon a time";
        int[] generated = {7, 7, 7, 9, 11, 13};
        assertThat(model.tokenizer().encode(answer)).isNotEqualTo(generated);
        answers.remember(answer, generated);
        int[] turn2 = parser.parse(chat("tell me a story", answer, "and then?"), true, "r2")
                .promptTokens();
        assertThat(Arrays.copyOf(turn2, turn1.length)).as("turn 1's prompt").isEqualTo(turn1);
        assertThat(Arrays.copyOfRange(turn2, turn1.length, turn1.length + generated.length))
                .as("then turn 1's answer, as generated")
                .isEqualTo(generated);
        // an answer this server did not generate is tokenized from its text
        int[] other = parser.parse(chat("tell me a story", "something else", "and then?"), true, "r3")
                .promptTokens();
        assertThat(Arrays.copyOfRange(other, turn1.length, turn1.length + generated.length))
                .isNotEqualTo(generated);
        // user text cannot claim a remembered answer's ids: only an assistant message's exact text does
        int[] asUser = parser.parse(chat(answer), true, "r4").promptTokens();
        assertThat(Collections.indexOfSubList(
                        Arrays.stream(asUser).boxed().toList(),
                        Arrays.stream(generated).boxed().toList()))
                .isEqualTo(-1);
    }

    @Test
    void itIsBoundedLeastRecentlyUsedFirst() {
        AnswerTokens answers = new AnswerTokens();
        for (int i = 0; i < AnswerTokens.MAX_ANSWERS + 10; i++) answers.remember("answer " + i, new int[] {i});
        assertThat(answers.size()).isEqualTo(AnswerTokens.MAX_ANSWERS);
        assertThat(answers.lookup("answer 0")).isNull();
        assertThat(answers.lookup("answer " + (AnswerTokens.MAX_ANSWERS + 9)))
                .containsExactly(AnswerTokens.MAX_ANSWERS + 9);
    }

    @Test
    void saltedEntriesAreCountedWithTheirSaltSoTheCharacterBoundHolds() {
        AnswerTokens answers = new AnswerTokens();
        String salt = "tenant:" + "0123456789abcdef".repeat(4);
        String text = "x".repeat(1000);
        for (int i = 0; i < AnswerTokens.MAX_ANSWERS * 3; i++) answers.remember(salt, text + i, new int[] {i});
        long held = 0;
        for (int i = AnswerTokens.MAX_ANSWERS * 3 - answers.size(); i < AnswerTokens.MAX_ANSWERS * 3; i++)
            held += salt.length() + 1 + (text + i).length();
        assertThat(answers.chars())
                .as("the count the bound uses")
                .isEqualTo(held)
                .isPositive();
        assertThat(answers.chars()).isLessThanOrEqualTo(AnswerTokens.MAX_CHARS);
    }
}
