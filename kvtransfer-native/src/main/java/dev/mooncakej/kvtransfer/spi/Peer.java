package dev.mooncakej.kvtransfer.spi;

/** A peer segment as transports see it: its published descriptor. The engine keeps its own state in a subclass. */
public class Peer {
    public final SegmentDescriptor descriptor;

    protected Peer(SegmentDescriptor descriptor) {
        this.descriptor = descriptor;
    }

    public String name() {
        return descriptor.name();
    }
}
