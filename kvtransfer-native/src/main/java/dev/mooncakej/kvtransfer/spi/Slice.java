package dev.mooncakej.kvtransfer.spi;

import java.lang.foreign.MemorySegment;

/**
 * One piece of a request as a transport moves it: {@code local} is this process's memory, the remote
 * side is {@code remoteOffset} in the peer's segment. The engine makes slices (a subclass that knows
 * its batch); a transport reads them and reports each back through its {@link Transport.Completion}.
 * A slice that fails is retried on another path ({@link #attempt} counts them) until the engine's
 * retry limit.
 */
public class Slice {
    public final boolean write;
    public final MemorySegment local;
    public final long remoteOffset;
    /** Where {@link #local} lives ({@code cpu:0}, ...): a transport picks its device near it. */
    public final String location;

    public final Peer peer;
    /** Which try this is (0: the first); written by the engine, read by transports to pick another path. */
    public int attempt;
    /** The path a transport chose on the first attempt (its own bookkeeping, e.g. tcp's connection). */
    public int path;

    protected Slice(boolean write, MemorySegment local, long remoteOffset, String location, Peer peer) {
        this.write = write;
        this.local = local;
        this.remoteOffset = remoteOffset;
        this.location = location;
        this.peer = peer;
    }

    public long length() {
        return local.byteSize();
    }
}
