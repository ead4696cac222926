package dev.mooncakej.engine.constrain;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.JsonNode;

/** The JSON-schema automaton: valid texts accepted whole, invalid ones refused at the first wrong byte. */
class JsonMatcherTest {
    static final String PERSON = """
            {"type": "object", "properties": {
               "name": {"type": "string", "maxLength": 8},
               "age": {"type": "integer"},
               "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
               "score": {"anyOf": [{"type": "number"}, {"type": "null"}]}},
             "required": ["name", "age"], "additionalProperties": false}""";

    static JsonMatcher matcher(String schema) {
        return JsonMatcher.of(JsonSchemas.compile(RandomSchemas.JSON.readTree(schema), true));
    }

    static boolean accepts(JsonMatcher m, String text) {
        return m.accept(text.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void acceptsValidTextsWhole() {
        for (String ok : new String[] {
            "{\"name\":\"x\",\"age\":3,\"tags\":[\"a\",\"b\"]}",
            "{ \"age\" : -30 ,\n  \"name\": \"\\u00e9\\\"日本\", \"score\": 1.5e-3 }",
            "{\"name\":\"\",\"age\":0,\"score\":null}"
        }) {
            JsonMatcher m = matcher(PERSON);
            assertThat(accepts(m, ok)).as(ok).isTrue();
            assertThat(m.isComplete()).as("%s is complete", ok).isTrue();
        }
    }

    @Test
    void refusesAtTheFirstWrongByte() {
        String[][] cases = {
            {"{\"name\":\"x\"", "}"}, // age is required
            {"{\"name\":", "1"}, // a string, not a number
            {"{\"age\":3", ".5"}, // an integer
            {"{", "\"other\""}, // not declared
            {"{\"tags\":[\"a\",\"b\"", ",\"a\""}, // maxItems 2
            {"", "["},
            {"{\"name\":\"a", "\n"}, // control characters must be escaped
            {"{\"name\":\"\\", "x"}, // not an escape
        };
        for (String[] c : cases) {
            JsonMatcher m = matcher(PERSON);
            assertThat(c[0].isEmpty() || accepts(m, c[0]))
                    .as("the valid prefix %s", c[0])
                    .isTrue();
            assertThat(accepts(m, c[1])).as("%s then %s", c[0], c[1]).isFalse();
        }
        JsonMatcher m = matcher(PERSON);
        assertThat(accepts(m, "{\"name\":\"123456789"))
                .as("nine characters with maxLength 8")
                .isFalse();
        m = matcher(PERSON);
        assertThat(accepts(m, "{\"name\":\"x\",\"name")).as("a property twice").isFalse();
        m = matcher(PERSON);
        assertThat(accepts(m, "{\"name\":\"x\",\"age\":3}")).isTrue();
        assertThat(accepts(m, " ")).as("nothing after the value").isFalse();
    }

    @Test
    void hundredRandomSchemasAcceptTheirValuesCompactAndPretty() {
        SplittableRandom r = new SplittableRandom(2026);
        for (int i = 0; i < 100; i++) {
            JsonNode schema = RandomSchemas.schema(r, 3);
            for (int k = 0; k < 5; k++) {
                JsonNode v = RandomSchemas.value(schema, r);
                assertThat(RandomSchemas.violation(schema, v, "#"))
                        .as("the generator's own value")
                        .isNull();
                String text = k % 2 == 0
                        ? RandomSchemas.JSON.writeValueAsString(v)
                        : RandomSchemas.JSON.writerWithDefaultPrettyPrinter().writeValueAsString(v);
                JsonMatcher m = matcher(schema.toString());
                assertThat(accepts(m, text))
                        .as("schema %s accepts %s", schema, text)
                        .isTrue();
                assertThat(m.isComplete())
                        .as("schema %s: %s is complete", schema, text)
                        .isTrue();
            }
        }
    }

    @Test
    void unsupportedKeywordsAreRefusedByName() {
        assertThatThrownBy(() -> matcher("{\"type\":\"string\",\"pattern\":\"^a\"}"))
                .hasMessageContaining("keyword 'pattern' is not supported")
                .hasMessageContaining("#");
        assertThatThrownBy(() -> matcher(
                        "{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\"," + "\"minimum\":3}}}"))
                .hasMessageContaining("#/properties/x")
                .hasMessageContaining("'minimum'");
        assertThatThrownBy(() -> matcher("{\"type\":\"object\",\"properties\":{},\"required\":[\"y\"]}"))
                .hasMessageContaining("'y', which is not in properties");
    }
}
