/**
 * The {@code ./mooncakej} commands (picocli): model generation and runs, simulation, trace statistics and the
 * whole-path benchmarks, each measuring its anchor in the same run.
 */
package dev.mooncakej.cli;
