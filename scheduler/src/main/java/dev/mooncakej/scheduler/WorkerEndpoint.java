package dev.mooncakej.scheduler;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * A worker the conductor calls: its URL (internal: logs and calls only), its stable id (what clients
 * may see, e.g. {@code prefill-0}) and its requests in flight.
 */
public final class WorkerEndpoint {
    private final String url;
    private final String id;
    private final AtomicInteger inFlight = new AtomicInteger();

    public WorkerEndpoint(String url) {
        this(url, "worker");
    }

    public WorkerEndpoint(String url, String id) {
        this.url = url;
        this.id = id;
    }

    public String url() {
        return url;
    }

    /** The worker's stable id, never an address: {@code prefill-0}, {@code decode-1}. */
    public String id() {
        return id;
    }

    public int inFlight() {
        return inFlight.get();
    }

    public void started() {
        inFlight.incrementAndGet();
    }

    public void ended() {
        inFlight.decrementAndGet();
    }
}
