/**
 * The transfer engine: segments, batched READ/WRITE with per-request status, slicing and retries, the tcp, shm
 * and rdma transports, and segment metadata (the host registry or etcd).
 */
package dev.mooncakej.kvtransfer.engine;
