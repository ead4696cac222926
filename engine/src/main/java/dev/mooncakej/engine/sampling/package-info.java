/**
 * Sampling (greedy, temperature, top-p, top-k, seeded), log-probabilities, and text assembly with stop
 * sequences.
 */
package dev.mooncakej.engine.sampling;
