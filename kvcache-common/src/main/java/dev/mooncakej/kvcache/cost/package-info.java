/**
 * Cost profiles: the time a model takes on some hardware, which the simulated engine sleeps and the scheduler's
 * estimators start from.
 */
package dev.mooncakej.kvcache.cost;
