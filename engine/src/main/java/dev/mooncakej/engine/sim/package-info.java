/**
 * The simulated engine: the time a cost profile gives, deterministic tokens and a checkable KV pattern, behind
 * the same SPI.
 */
package dev.mooncakej.engine.sim;
