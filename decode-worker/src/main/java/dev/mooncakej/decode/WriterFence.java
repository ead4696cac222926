package dev.mooncakej.decode;

import dev.mooncakej.decode.Reservation.State;
import dev.mooncakej.kvcache.wire.KvControl;
import dev.mooncakej.kvtransfer.engine.TransferEngine;
import dev.mooncakej.kvtransfer.engine.WorkerSegment;
import java.io.IOException;
import java.time.Duration;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The fence around a dropped reservation's blocks while its prefill worker may still be writing
 * them: the writer asked to stop (ABORT, again until it confirms), and cut off past the fence
 * deadline where its transport allows. Out of {@link DecodeService}, which frees the blocks once the
 * writer stopped and what it sent before the fence has landed.
 */
final class WriterFence {
    private static final Logger LOG = LoggerFactory.getLogger(WriterFence.class);

    private final TransferEngine transfer;
    private final WorkerSegment segment;
    private final long kvTimeoutMillis;
    private final long fenceDeadlineMillis;
    /** Frees a fenced reservation whose writer stopped once its accepted writes landed (called under its lock). */
    private final Consumer<Reservation> releaseIfLanded;

    WriterFence(
            TransferEngine transfer,
            WorkerSegment segment,
            long kvTimeoutMillis,
            long fenceDeadlineMillis,
            Consumer<Reservation> releaseIfLanded) {
        this.transfer = transfer;
        this.segment = segment;
        this.kvTimeoutMillis = kvTimeoutMillis;
        this.fenceDeadlineMillis = fenceDeadlineMillis;
        this.releaseIfLanded = releaseIfLanded;
    }

    /**
     * Asks a fenced reservation's writer to stop; frees the blocks once it says nothing of it is writing, or is gone.
     */
    void abortWriter(Reservation r) {
        String writer;
        synchronized (r) {
            writer = r.writer;
        }
        byte status;
        try {
            status = transfer.notify(
                    writer, KvControl.abort(r.id).encode(), Duration.ofMillis(Math.min(5000, kvTimeoutMillis)));
        } catch (IOException | RuntimeException e) {
            boolean gone = segment.metadata().lookup(writer).isEmpty();
            status = gone ? KvControl.OK : -1; // a process that is gone writes nothing
            if (!gone)
                LOG.info(
                        "fenced reservation {}: its writer {} did not answer ({}); asking again",
                        r.id,
                        writer,
                        e.getMessage());
        }
        synchronized (r) {
            r.abortInFlight = false;
            r.nextAbortAt = System.nanoTime() + DecodeService.ABORT_RETRY_NANOS;
            if (r.state == State.FENCED && (status == KvControl.OK || status == KvControl.UNKNOWN_RESERVATION)) {
                r.writerStopped = true;
                releaseIfLanded.accept(r);
            }
        }
    }

    /**
     * A fenced reservation's writer did not confirm it stopped within {@code fence-deadline-millis}
     * (stalled, or cut off from this worker): a tcp writer's connections to this worker are closed,
     * which drops its group in flight, and with no group of it landing the blocks are free (nothing it
     * sends later can reach them: the guard permits its writes into its own claimed blocks only). A
     * writer over shm or rdma writes without passing through here and cannot be cut off: its blocks
     * stay fenced until it confirms or leaves the metadata, and the log says so.
     */
    void cutOff(Reservation r) {
        String writer;
        synchronized (r) {
            if (r.state != State.FENCED || r.writerStopped) return;
            writer = r.writer;
        }
        String transport;
        try {
            transport = transfer.openSegment(writer);
        } catch (RuntimeException e) {
            transport = "gone"; // no longer published: nothing of it can write
        }
        if (!transport.equals("tcp") && !transport.equals("gone")) {
            LOG.warn(
                    "fenced reservation {}: its writer {} (over {}) has not confirmed it stopped in {} ms and cannot"
                            + " be cut off; its {} blocks stay fenced until it confirms or leaves",
                    r.id,
                    writer,
                    transport,
                    fenceDeadlineMillis,
                    r.seq.blockCount());
            return;
        }
        int closed = transfer.disconnectWriter(writer);
        synchronized (r) {
            if (r.state != State.FENCED) return;
            LOG.warn(
                    "fenced reservation {}: its writer {} did not confirm it stopped in {} ms: {} of its connections"
                            + " closed, {} blocks freed",
                    r.id,
                    writer,
                    fenceDeadlineMillis,
                    closed,
                    r.seq.blockCount());
            r.writerStopped = true;
            releaseIfLanded.accept(r);
        }
    }
}
