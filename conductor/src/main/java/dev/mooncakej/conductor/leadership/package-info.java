/**
 * Whether this conductor leads: a standby answers 503 and reports out of service on readiness.
 */
package dev.mooncakej.conductor.leadership;
