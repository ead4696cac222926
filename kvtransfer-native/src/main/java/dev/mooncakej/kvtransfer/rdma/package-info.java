/**
 * The rdma transport over libibverbs: devices, memory regions, RC queue pairs connected by a handshake
 * over the engine's control channel, one-sided READ/WRITE chains and their completions ({@link
 * dev.mooncakej.kvtransfer.rdma.RdmaTransport} and its parts).
 */
package dev.mooncakej.kvtransfer.rdma;
