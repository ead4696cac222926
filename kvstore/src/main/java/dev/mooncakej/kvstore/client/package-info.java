/**
 * The workers' side of the KV pool: {@link dev.mooncakej.kvstore.client.StoreClient} (the master's
 * internal API, typed), {@link dev.mooncakej.kvstore.client.PoolSegment} (the DRAM a worker contributes
 * for the master to allocate in), {@link dev.mooncakej.kvstore.client.SsdTier} (cold blocks in files)
 * and {@link dev.mooncakej.kvstore.client.WorkerStoreSettings} ({@code mooncakej.store.*} on a worker).
 */
package dev.mooncakej.kvstore.client;
