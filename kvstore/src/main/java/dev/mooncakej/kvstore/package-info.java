/**
 * The KV cache pool's master (Mooncake Store, REFERENCE section 6), plain Java on an injected clock:
 * which worker-contributed segment holds which block (replicas per tier), allocation in those
 * segments, two-phase puts, read leases, soft and hard pins, watermark eviction and client liveness.
 * The master holds metadata only; bytes move between workers through the transfer engine.
 */
package dev.mooncakej.kvstore;
