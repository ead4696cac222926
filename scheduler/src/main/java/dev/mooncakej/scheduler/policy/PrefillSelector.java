package dev.mooncakej.scheduler.policy;

/**
 * One prefill policy (docs/SCHEDULING.md): picks the instance a request is prefilled on. One class
 * per policy, created by name through {@link dev.mooncakej.scheduler.PrefillPolicy#create()}; an
 * instance may keep state across decisions (round-robin's turn) and is used under the scheduler's lock.
 */
public interface PrefillSelector {
    /** Chooses for the current request; {@code out} receives the choice. */
    void choose(PrefillView v, PrefillChoice out);
}
