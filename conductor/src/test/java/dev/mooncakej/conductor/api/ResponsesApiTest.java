package dev.mooncakej.conductor.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.json.JsonMapper;

/**
 * The Responses API's stored conversations: a turn continues only a conversation of its own key, and
 * the store stays within its bounds (count and characters), however long the conversations.
 */
class ResponsesApiTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private static String body(String input, String previous) {
        return JSON.writeValueAsString(
                previous == null
                        ? Map.of("model", "m", "input", input)
                        : Map.of("model", "m", "input", input, "previous_response_id", previous));
    }

    @Test
    void aConversationContinuesOnlyForTheKeyThatMadeIt() {
        ResponsesApi api = new ResponsesApi();
        ResponsesApi.Turn t = api.translate(body("hello", null), "alice");
        api.remember("resp_1", "alice", t, Map.of("role", "assistant", "content", "hi"));
        ResponsesApi.Turn next = api.translate(body("and then?", "resp_1"), "alice");
        assertThat(next.messages()).hasSize(3);
        assertThat(next.chatBody()).contains("hello").contains("hi").contains("and then?");
        assertThatThrownBy(() -> api.translate(body("and then?", "resp_1"), "mallory"))
                .isInstanceOf(ApiException.class)
                .satisfies(e -> assertThat(((ApiException) e).status()).isEqualTo(404))
                .hasMessageContaining("previous_response_id");
    }

    @Test
    void theStoreStaysWithinItsBoundsHoweverLongTheConversations() {
        ResponsesApi api = new ResponsesApi();
        String longText = "x".repeat(1 << 20); // 1 MiB of text per turn
        for (int i = 0; i < 100; i++) {
            ResponsesApi.Turn t = api.translate(body(longText, null), null);
            api.remember("resp_" + i, null, t, Map.of("role", "assistant", "content", "ok"));
        }
        long[] held = api.held();
        assertThat(held[1]).as("characters held").isLessThanOrEqualTo(ResponsesApi.MAX_CHARS);
        assertThat(held[0]).as("conversations held").isLessThan(100).isPositive();
        assertThatThrownBy(() -> api.translate(body("more", "resp_0"), null))
                .as("the oldest went first")
                .isInstanceOf(ApiException.class);
        assertThat(api.translate(body("more", "resp_99"), null).messages()).hasSize(3);
        // one conversation larger than a quarter of the store is not kept at all
        ResponsesApi.Turn huge = api.translate(body("y".repeat((int) (ResponsesApi.MAX_CHARS / 3)), null), null);
        api.remember("resp_huge", null, huge, Map.of("role", "assistant", "content", "ok"));
        assertThatThrownBy(() -> api.translate(body("more", "resp_huge"), null)).isInstanceOf(ApiException.class);
        assertThat(api.held()[1]).isLessThanOrEqualTo(ResponsesApi.MAX_CHARS);
    }
}
