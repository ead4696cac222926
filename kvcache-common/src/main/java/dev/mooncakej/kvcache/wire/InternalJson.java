package dev.mooncakej.kvcache.wire;

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
                    type.getSimpleName() + " has an unknown field '" + e.getPropertyName() + "' (at "
                            + e.getPathReference() + "); expected only " + e.getKnownPropertyIds(),
                    e);
        } catch (JacksonException e) {
            throw new IllegalArgumentException(
                    "malformed " + type.getSimpleName() + ": " + e.getOriginalMessage() + " (at " + e.getPathReference()
                            + ")",
                    e);
        }
    }
}
