package dev.mooncakej.scheduler.policy;

/**
 * Algorithm 1 restricted to each instance's own cache: the least queue plus prefill of what its local
 * prefix leaves to compute. Nothing is fetched.
 */
public final class CacheAwareSelector implements PrefillSelector {
    @Override
    public void choose(PrefillView v, PrefillChoice out) {
        int p = -1;
        double ttft = Double.POSITIVE_INFINITY;
        for (int k = 0; k < v.count(); k++) {
            int i = v.instance(k);
            double t = v.queueSeconds(i) + v.prefillSeconds(v.localBlocks(i));
            if (t < ttft) {
                ttft = t;
                p = i;
            }
        }
        out.set(p);
    }
}
