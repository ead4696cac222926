package dev.mooncakej.scheduler;

import dev.mooncakej.scheduler.policy.CacheAwareSelector;
import dev.mooncakej.scheduler.policy.KvCacheCentricSelector;
import dev.mooncakej.scheduler.policy.LeastLoadedSelector;
import dev.mooncakej.scheduler.policy.LongestPrefixSelector;
import dev.mooncakej.scheduler.policy.PrefillSelector;
import dev.mooncakej.scheduler.policy.RandomSelector;
import dev.mooncakej.scheduler.policy.RoundRobinSelector;
import java.util.Arrays;
import java.util.Locale;

/** How the prefill instance is chosen (docs/SCHEDULING.md). */
public enum PrefillPolicy {
    /** Uniformly at random. */
    RANDOM,
    /** In turn. */
    ROUND_ROBIN,
    /** The shortest predicted queue. */
    LEAST_LOADED,
    /** The longest local prefix match, ties by load (the naive cache-aware policy). */
    LONGEST_PREFIX,
    /** Algorithm 1 restricted to each instance's own cache: min over instances of queue + prefill(local prefix). */
    CACHE_AWARE,
    /** Algorithm 1: global prefix index; per instance min of transfer(missing prefix) + queue + prefill. */
    KVCACHE_CENTRIC;

    /** A new instance of this policy's class (one per scheduler: a policy may keep state). */
    public PrefillSelector create() {
        return switch (this) {
            case RANDOM -> new RandomSelector();
            case ROUND_ROBIN -> new RoundRobinSelector();
            case LEAST_LOADED -> new LeastLoadedSelector();
            case LONGEST_PREFIX -> new LongestPrefixSelector();
            case CACHE_AWARE -> new CacheAwareSelector();
            case KVCACHE_CENTRIC -> new KvCacheCentricSelector();
        };
    }

    public String cliName() {
        return name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

    public static PrefillPolicy parse(String s) {
        for (PrefillPolicy p : values()) if (p.cliName().equals(s)) return p;
        throw new IllegalArgumentException("prefill policy '" + s + "' is not known; expected one of "
                + Arrays.stream(values()).map(PrefillPolicy::cliName).toList());
    }
}
