/**
 * The conductor's meters: client-side TTFT/TBT/e2e, tokens, KV moved, rejections by reason, requests by outcome.
 */
package dev.mooncakej.conductor.metrics;
