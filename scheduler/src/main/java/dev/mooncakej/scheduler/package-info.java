/**
 * The scheduling core, plain Java on caller-given time: policies (FAST Algorithm 1 and its baselines), admission
 * (none, early, predictive), estimators, the global prefix index, and the live scheduler the conductor runs. The
 * simulator and the benchmarks drive the same classes.
 */
package dev.mooncakej.scheduler;
