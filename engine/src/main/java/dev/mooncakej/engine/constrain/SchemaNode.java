package dev.mooncakej.engine.constrain;

import java.util.List;
import java.util.Set;

/**
 * A JSON schema compiled to what constrained decoding enforces ({@link JsonSchemas#compile}): each
 * node is the set of JSON texts one value may take.
 */
public sealed interface SchemaNode {
    /** Any JSON value ({@code response_format: json_object}, or a schema without constraints). */
    record Any() implements SchemaNode {}

    /**
     * An object. {@code names}/{@code values}: the declared properties; {@code required}: names that
     * must appear before it closes; {@code additional}: the schema of undeclared properties, or null
     * when none are allowed. Each property appears at most once, in any order.
     */
    record Obj(List<String> names, List<SchemaNode> values, Set<String> required, SchemaNode additional)
            implements SchemaNode {}

    /** An array of {@code items}, with {@code min} to {@code max} elements. */
    record Arr(SchemaNode items, int min, int max) implements SchemaNode {}

    /** A string of {@code minLength} to {@code maxLength} characters (code points). */
    record Str(int minLength, int maxLength) implements SchemaNode {}

    /** A number; {@code integer}: no fraction or exponent. */
    record Num(boolean integer) implements SchemaNode {}

    record Bool() implements SchemaNode {}

    record Null() implements SchemaNode {}

    /** One of the given JSON texts exactly ({@code enum}, {@code const}), as UTF-8. */
    record Literal(List<byte[]> texts) implements SchemaNode {}

    /** Any of the alternatives ({@code anyOf}, {@code type: [a, b]}). */
    record Union(List<SchemaNode> alternatives) implements SchemaNode {}
}
