package dev.mooncakej.kvtransfer.engine;

import java.util.concurrent.atomic.AtomicInteger;

/** What this engine knows about one remote segment: its descriptor and the transport negotiated for it. */
final class Peer {
    final SegmentDescriptor descriptor;
    volatile Transport transport;
    final AtomicInteger consecutiveErrors = new AtomicInteger();

    Peer(SegmentDescriptor descriptor, Transport transport) {
        this.descriptor = descriptor;
        this.transport = transport;
    }

    String name() {
        return descriptor.name();
    }
}
