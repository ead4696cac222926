package dev.mooncakej.scheduler.policy;

/**
 * What a prefill policy sees of the cluster for one request (valid only during that decision): the
 * live prefill instances, their queues and the prefixes they hold, the longest prefix anywhere, and
 * the estimators' prices. Lengths are in blocks, already capped at what the request can reuse.
 */
public interface PrefillView {
    /** Live prefill instances. */
    int count();

    /** The slot of the {@code k}-th live instance (0 <= k < count()). */
    int instance(int k);

    /** Predicted seconds until instance {@code i}'s queue is drained. */
    double queueSeconds(int i);

    /** Prefix blocks instance {@code i} holds or will hold for this request. */
    int localBlocks(int i);

    /** Predicted compute seconds of this request's prefill with {@code cachedBlocks} reused. */
    double prefillSeconds(int cachedBlocks);

    /** The longest prefix anywhere (an instance or the pool), in blocks. */
    int bestBlocks();

    /** Where that prefix is: an instance's slot, or the pool's. */
    int bestHolder();

    /** Predicted seconds to fetch {@code blocks} from {@code from} to instance {@code to}. */
    double transferSeconds(int blocks, int from, int to);

    /** kvcache-centric: a longer prefix is considered only above this many times the local one. */
    double balancingThreshold();

    /** A uniform integer in [0, bound) from the scheduler's seeded generator. */
    int nextInt(int bound);
}
