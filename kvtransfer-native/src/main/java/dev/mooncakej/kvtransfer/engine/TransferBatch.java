package dev.mooncakej.kvtransfer.engine;

import java.util.concurrent.CompletableFuture;

/** A submitted batch: a future that completes when every request has a final status, and the statuses. */
public final class TransferBatch {
    /** Final state of one request. */
    public enum Status { WAITING, COMPLETED, FAILED, INVALID, TIMEOUT }

    private final Status[] status;
    private final String[] reason;
    private final CompletableFuture<TransferBatch> done = new CompletableFuture<>();

    TransferBatch(int n) {
        status = new Status[n];
        reason = new String[n];
        java.util.Arrays.fill(status, Status.WAITING);
    }

    public int size() { return status.length; }
    public Status status(int i) { return status[i]; }
    /** Why a request did not complete (null when it did). */
    public String reason(int i) { return reason[i]; }
    public CompletableFuture<TransferBatch> done() { return done; }

    public boolean allCompleted() {
        for (Status s : status) if (s != Status.COMPLETED) return false;
        return true;
    }

    void set(int i, Status s, String why) {
        status[i] = s;
        reason[i] = why;
    }

    void complete() { done.complete(this); }
}
