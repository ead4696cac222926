/**
 * The shm transport: same-host peers' segment files mapped once, transfers as memory copies, large
 * batches split over copy threads ({@link dev.mooncakej.kvtransfer.shm.ShmTransport}).
 */
package dev.mooncakej.kvtransfer.shm;
