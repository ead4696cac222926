package dev.mooncakej.kvtransfer.engine;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * A submitted batch: a future that completes when every request has a final status, and the statuses.
 * Each request is cut into slices; it is COMPLETED when all of them are, FAILED (with the first
 * reason) when one failed past its retries, TIMEOUT when the batch's deadline passed first. The first
 * final status of a request wins; later slice completions do not change it.
 */
public final class TransferBatch {
    /** State of one request: WAITING until final. */
    public enum Status {
        WAITING,
        COMPLETED,
        FAILED,
        INVALID,
        TIMEOUT
    }

    private static final Status[] STATUSES = Status.values();

    private final AtomicIntegerArray status;
    private final AtomicIntegerArray slicesLeft;
    private final String[] reason;
    private final AtomicLongArray bytes;
    private final AtomicInteger open;
    private final CompletableFuture<TransferBatch> done = new CompletableFuture<>();
    volatile long deadlineNanos;

    TransferBatch(int n) {
        status = new AtomicIntegerArray(n);
        slicesLeft = new AtomicIntegerArray(n);
        reason = new String[n];
        bytes = new AtomicLongArray(n);
        open = new AtomicInteger(n);
        if (n == 0) done.complete(this);
    }

    public int size() {
        return status.length();
    }

    public Status status(int i) {
        return STATUSES[status.get(i)];
    }
    /** Why a request did not complete (null when it did or is still waiting). */
    public String reason(int i) {
        return reason[i];
    }
    /** Bytes of request i moved so far. */
    public long transferredBytes(int i) {
        return bytes.get(i);
    }

    public CompletableFuture<TransferBatch> done() {
        return done;
    }

    public boolean allCompleted() {
        for (int i = 0; i < size(); i++) if (status.get(i) != Status.COMPLETED.ordinal()) return false;
        return true;
    }

    /** A summary naming the first request that did not complete, for error messages. */
    public String firstProblem() {
        for (int i = 0; i < size(); i++) {
            if (status.get(i) != Status.COMPLETED.ordinal()) return "request " + i + " " + status(i) + ": " + reason(i);
        }
        return "all " + size() + " requests completed";
    }

    void expectSlices(int i, int n) {
        slicesLeft.set(i, n);
    }

    /** One slice of request i finished well; completes the request when it was the last. */
    void sliceDone(int i, long n) {
        bytes.addAndGet(i, n);
        if (slicesLeft.decrementAndGet(i) == 0) finish(i, Status.COMPLETED, null);
    }

    /** Sets a final status unless the request already has one; true when this call set it. */
    boolean finish(int i, Status s, String why) {
        if (!status.compareAndSet(i, Status.WAITING.ordinal(), s.ordinal())) return false;
        reason[i] = why;
        if (open.decrementAndGet() == 0) done.complete(this);
        return true;
    }

    boolean isFinal(int i) {
        return status.get(i) != Status.WAITING.ordinal();
    }

    /** The deadline passed: every request still waiting times out. */
    void expire(String why) {
        for (int i = 0; i < size(); i++) finish(i, Status.TIMEOUT, why);
    }
}
