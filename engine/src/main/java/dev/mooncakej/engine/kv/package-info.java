/**
 * The paged KV cache: one off-heap slab of fixed-size blocks addressed by int ids, reference counted, with its
 * byte layout.
 */
package dev.mooncakej.engine.kv;
