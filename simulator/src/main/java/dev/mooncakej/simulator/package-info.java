/**
 * The trace-driven discrete-event simulator: the real scheduler on virtual time over simulated prefill and
 * decode instances, and the colocated baseline.
 */
package dev.mooncakej.simulator;
