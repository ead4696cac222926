package dev.mooncakej.scheduler.policy;

/** The naive cache-aware policy: the longest local prefix, ties by the shorter queue. */
public final class LongestPrefixSelector implements PrefillSelector {
    @Override
    public void choose(PrefillView v, PrefillChoice out) {
        int p = -1, best = -1;
        for (int k = 0; k < v.count(); k++) {
            int i = v.instance(k);
            int l = v.localBlocks(i);
            if (l > best || (l == best && v.queueSeconds(i) < v.queueSeconds(p))) {
                best = l;
                p = i;
            }
        }
        out.set(p);
    }
}
