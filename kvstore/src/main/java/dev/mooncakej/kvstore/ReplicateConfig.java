package dev.mooncakej.kvstore;

import java.util.List;

/**
 * How a put is replicated and kept.
 *
 * @param replicas   copies wanted, each on a different segment (at least one is made; more are best effort)
 * @param tier       the tier to allocate in
 * @param softPin    evicted only after every unpinned block (until the soft-pin TTL passes)
 * @param hardPin    never evicted
 * @param preferred  segments to try first (e.g. the writer's own, so a computed block stays local)
 * @param avoided    segments not to allocate in (e.g. the writer's own, so the copy outlives the writer)
 */
public record ReplicateConfig(
        int replicas, Tier tier, boolean softPin, boolean hardPin, List<String> preferred, List<String> avoided) {
    public static final ReplicateConfig DEFAULT = new ReplicateConfig(1, Tier.DRAM, false, false, List.of());

    public ReplicateConfig {
        if (replicas < 1 || replicas > 16)
            throw new IllegalArgumentException("replicas " + replicas + ": expected 1..16");
        if (tier == null) throw new IllegalArgumentException("replicate config without a tier");
        preferred = preferred == null ? List.of() : List.copyOf(preferred);
        avoided = avoided == null ? List.of() : List.copyOf(avoided);
    }

    public ReplicateConfig(int replicas, Tier tier, boolean softPin, boolean hardPin, List<String> preferred) {
        this(replicas, tier, softPin, hardPin, preferred, List.of());
    }

    /** One DRAM replica anywhere but in {@code segment}. */
    public static ReplicateConfig avoiding(String segment) {
        return new ReplicateConfig(1, Tier.DRAM, false, false, List.of(), List.of(segment));
    }

    public static ReplicateConfig preferring(String segment) {
        return new ReplicateConfig(1, Tier.DRAM, false, false, List.of(segment));
    }

    public ReplicateConfig inTier(Tier t) {
        return new ReplicateConfig(replicas, t, softPin, hardPin, preferred, avoided);
    }

    public ReplicateConfig pinnedSoft() {
        return new ReplicateConfig(replicas, tier, true, hardPin, preferred, avoided);
    }

    public ReplicateConfig pinnedHard() {
        return new ReplicateConfig(replicas, tier, softPin, true, preferred, avoided);
    }
}
