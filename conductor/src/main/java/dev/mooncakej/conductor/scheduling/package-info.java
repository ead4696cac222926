/**
 * The factory of the conductor's one live scheduler (the scheduler module on wall-clock time), built once from
 * configuration.
 */
package dev.mooncakej.conductor.scheduling;
