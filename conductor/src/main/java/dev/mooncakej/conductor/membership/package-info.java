/**
 * Which workers the scheduler uses: members less those whose circuit breaker is open, applied to the running
 * scheduler.
 */
package dev.mooncakej.conductor.membership;
