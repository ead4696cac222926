package dev.mooncakej.scheduler.policy;

/** Uniformly at random among the live instances (the seeded generator: runs repeat). */
public final class RandomSelector implements PrefillSelector {
    @Override
    public void choose(PrefillView v, PrefillChoice out) {
        out.set(v.instance(v.nextInt(v.count())));
    }
}
