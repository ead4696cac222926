package dev.mooncakej.scheduler.policy;

/**
 * FAST Algorithm 1: over the instances, the least of queue plus prefill of the local prefix, or, where
 * the longest prefix anywhere is more than the balancing threshold times the local one, transfer of
 * the missing blocks plus queue plus prefill of that longer prefix when that is cheaper (section 4.2).
 */
public final class KvCacheCentricSelector implements PrefillSelector {
    @Override
    public void choose(PrefillView v, PrefillChoice out) {
        int bestLen = v.bestBlocks(), bestInst = v.bestHolder();
        double ttft = Double.POSITIVE_INFINITY;
        for (int k = 0; k < v.count(); k++) {
            int i = v.instance(k);
            int local = v.localBlocks(i);
            int len = local;
            double queue = v.queueSeconds(i);
            double t = queue + v.prefillSeconds(local);
            if (i != bestInst && bestLen > local && (local == 0 || (double) bestLen / local > v.balancingThreshold())) {
                double fetched = v.transferSeconds(bestLen - local, bestInst, i) + queue + v.prefillSeconds(bestLen);
                if (fetched < t) {
                    t = fetched;
                    len = bestLen;
                }
            }
            if (t < ttft) {
                ttft = t;
                out.set(i, len - local, bestInst);
            }
        }
    }
}
