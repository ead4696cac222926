package dev.mooncakej.kvstore;

import java.util.Arrays;
import java.util.Locale;

/** How the master picks segments for a new replica (after Mooncake's {@code --allocation_strategy}). */
public enum AllocationStrategy {
    /** Preferred segments first, then consecutive segments from a random start. */
    RANDOM,
    /** A sample of candidates ordered by free ratio, most free first; random when none fits. */
    FREE_RATIO_FIRST;

    public String keyName() {
        return name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

    public static AllocationStrategy parse(String s) {
        for (AllocationStrategy a : values()) if (a.keyName().equals(s)) return a;
        throw new IllegalArgumentException("mooncakej.store.allocation=" + s + ": expected one of "
                + Arrays.stream(values()).map(AllocationStrategy::keyName).toList());
    }
}
