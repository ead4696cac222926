package dev.mooncakej.scheduler;

import java.util.concurrent.atomic.AtomicInteger;

/** A worker the conductor calls: its URL and its requests in flight. */
public final class WorkerEndpoint {
    private final String url;
    private final AtomicInteger inFlight = new AtomicInteger();

    public WorkerEndpoint(String url) {
        this.url = url;
    }

    public String url() {
        return url;
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
