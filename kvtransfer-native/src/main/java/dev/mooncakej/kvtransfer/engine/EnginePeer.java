package dev.mooncakej.kvtransfer.engine;

import dev.mooncakej.kvtransfer.spi.Peer;
import dev.mooncakej.kvtransfer.spi.SegmentDescriptor;
import dev.mooncakej.kvtransfer.spi.Transport;
import java.util.concurrent.atomic.AtomicInteger;

/** A peer as the engine tracks it: the transport negotiated for it now and its errors in a row. */
final class EnginePeer extends Peer {
    volatile Transport transport;
    final AtomicInteger consecutiveErrors = new AtomicInteger();

    EnginePeer(SegmentDescriptor descriptor, Transport transport) {
        super(descriptor);
        this.transport = transport;
    }
}
