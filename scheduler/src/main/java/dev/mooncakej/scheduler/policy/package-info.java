/**
 * Prefill policies, one class each ({@link dev.mooncakej.scheduler.PrefillPolicy#create()} makes them
 * by name), each choosing over a {@link PrefillView} of the cluster: random, round-robin,
 * least-loaded, longest-prefix, cache-aware and kvcache-centric (FAST Algorithm 1). The decision loop
 * around them (prefix lookup, decode selection, admission) is {@code ClusterScheduler.decide}.
 */
package dev.mooncakej.scheduler.policy;
