/**
 * JMH microbenchmarks of the hot paths: the engine's decode step and the scheduler's decision (run with {@code
 * ./mooncakej jmh}).
 */
package dev.mooncakej.bench;
