/**
 * Calls to the workers' internal API through the shared codecs, guarded by Resilience4j (a breaker per worker,
 * time limits, retries only where idempotent).
 */
package dev.mooncakej.conductor.workers;
