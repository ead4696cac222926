/**
 * The KV cache pool's master (the kvstore module's {@code StoreMaster}) hosted by the conductor leader:
 * its configuration, housekeeping, internal routes and meters.
 */
package dev.mooncakej.conductor.store;
