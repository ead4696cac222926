/**
 * Which engine a worker runs ({@code llama} or {@code simulated}), from validated settings, with its KV slab
 * supplied by the worker.
 */
package dev.mooncakej.engine.select;
