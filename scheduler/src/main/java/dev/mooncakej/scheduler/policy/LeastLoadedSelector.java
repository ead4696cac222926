package dev.mooncakej.scheduler.policy;

/** The shortest predicted queue; the first such instance on ties. */
public final class LeastLoadedSelector implements PrefillSelector {
    @Override
    public void choose(PrefillView v, PrefillChoice out) {
        int p = -1;
        double best = Double.POSITIVE_INFINITY;
        for (int k = 0; k < v.count(); k++) {
            int i = v.instance(k);
            double q = v.queueSeconds(i);
            if (p < 0 || q < best) {
                best = q;
                p = i;
            }
        }
        out.set(p);
    }
}
