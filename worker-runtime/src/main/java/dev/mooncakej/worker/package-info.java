/**
 * What the prefill and decode workers share below their web edge: the keys both take ({@link
 * dev.mooncakej.worker.WorkerKeys}, checked into {@link dev.mooncakej.worker.WorkerSettings}), the
 * transfer segment with the engine over its memory ({@link dev.mooncakej.worker.WorkerRuntime}), and
 * the worker's place in the cluster ({@link dev.mooncakej.worker.WorkerLink}). Plain Java: each app
 * binds the keys and ties these to its Spring lifecycle.
 */
package dev.mooncakej.worker;
