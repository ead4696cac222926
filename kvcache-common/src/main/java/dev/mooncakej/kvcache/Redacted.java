package dev.mooncakej.kvcache;

import java.util.Arrays;
import java.util.Set;
import java.util.stream.Collectors;

/** A settings record's text with its secrets left out, for {@code toString}: a secret never reaches a log. */
public final class Redacted {
    private Redacted() {}

    /** {@code Name[a=1, secret=[redacted], ...]}, the named components hidden. */
    public static String toString(Record r, String... secretComponents) {
        Set<String> hidden = Set.of(secretComponents);
        String all = Arrays.stream(r.getClass().getRecordComponents())
                .map(c -> {
                    if (hidden.contains(c.getName())) return c.getName() + "=[redacted]";
                    try {
                        return c.getName() + "=" + c.getAccessor().invoke(r);
                    } catch (ReflectiveOperationException e) {
                        return c.getName() + "=?";
                    }
                })
                .collect(Collectors.joining(", "));
        return r.getClass().getSimpleName() + "[" + all + "]";
    }
}
