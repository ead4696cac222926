package dev.mooncakej.scheduler.policy;

/** The live instances in turn. */
public final class RoundRobinSelector implements PrefillSelector {
    private int turn;

    @Override
    public void choose(PrefillView v, PrefillChoice out) {
        out.set(v.instance(Math.floorMod(turn++, v.count())));
    }
}
