package dev.mooncakej.kvcache.wire;

import java.util.regex.Pattern;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.DeserializationFeature;
import tools.jackson.databind.exc.UnrecognizedPropertyException;
import tools.jackson.databind.json.JsonMapper;

/**
 * The codec of the internal JSON messages ({@link WorkerMessages}): the one both sides use, so what
 * the conductor writes is what the worker reads. Unknown fields and nulls for numbers are refused;
 * a malformed message becomes an {@link IllegalArgumentException} whose message names the field.
 */
public final class InternalJson {
    private static final JsonMapper JSON = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .build();

    private InternalJson() {}

    public static String encode(Object message) {
        return JSON.writeValueAsString(message);
    }

    /** Decodes {@code text} as a {@code type}; throws naming the bad or unknown field. */
    public static <T> T decode(String text, Class<T> type) {
        if (text == null || text.isBlank())
            throw new IllegalArgumentException("empty " + type.getSimpleName() + ": expected a JSON object");
        try {
            T v = JSON.readValue(text, type);
            if (v == null)
                throw new IllegalArgumentException("null " + type.getSimpleName() + ": expected a JSON object");
            return v;
        } catch (UnrecognizedPropertyException e) {
            throw new IllegalArgumentException(
                    type.getSimpleName() + " has an unknown field '" + e.getPropertyName() + "' (at " + jsonPath(e)
                            + "); expected only " + e.getKnownPropertyIds(),
                    e);
        } catch (JacksonException e) {
            throw new IllegalArgumentException(
                    "malformed " + type.getSimpleName() + ": " + withoutPackages(e.getOriginalMessage()) + " (at "
                            + jsonPath(e) + ")",
                    e);
        }
    }

    /** Where in the document the problem is, as a JSON path ({@code $.kv.descriptor}, {@code $.keys[3]}). */
    static String jsonPath(JacksonException e) {
        StringBuilder sb = new StringBuilder("$");
        for (JacksonException.Reference r : e.getPath()) {
            if (r.getPropertyName() != null) sb.append('.').append(r.getPropertyName());
            else if (r.getIndex() >= 0) sb.append('[').append(r.getIndex()).append(']');
        }
        return sb.toString();
    }

    private static final Pattern QUALIFIED =
            Pattern.compile("\\b(?:[a-z][a-z0-9_]*\\.)+([A-Z][\\w]*)(?:\\$([A-Z][\\w]*))?");

    /**
     * A parser's message with class names reduced to their simple names: an answer names the field and
     * the expected form, never the code's packages (they would reach a peer's log, or a client).
     */
    static String withoutPackages(String message) {
        if (message == null) return "parse error";
        return QUALIFIED.matcher(message).replaceAll(m -> m.group(2) != null ? m.group(2) : m.group(1));
    }
}
