package dev.mooncakej.kvtransfer.inproc;

import dev.mooncakej.kvtransfer.spi.Peer;
import dev.mooncakej.kvtransfer.spi.SegmentDescriptor;
import dev.mooncakej.kvtransfer.spi.Slice;
import dev.mooncakej.kvtransfer.spi.Transport;
import dev.mooncakej.kvtransfer.spi.TransportContext;
import dev.mooncakej.kvtransfer.spi.TransportProvider;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A transport that exists only in the tests, written the way a new transport is added: this package
 * and one line in the test class path's {@code META-INF/services} file, nothing in the engine. It
 * reaches segments of the same JVM that a test {@link #expose exposed}, and copies between them;
 * {@link #failing} makes every slice fail as a broken path does (the engine must retry and downgrade).
 */
public final class InProcProvider implements TransportProvider {
    public static final String NAME = "inproc";
    private static final Map<String, MemorySegment> EXPOSED = new ConcurrentHashMap<>();
    private static volatile boolean failing;

    /** Makes a segment reachable by this transport under its name. */
    public static void expose(String name, MemorySegment segment) {
        EXPOSED.put(name, segment);
    }

    public static void failing(boolean f) {
        failing = f;
    }

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public Transport open(TransportContext context) {
        context.status().append("in this JVM");
        return new InProc();
    }

    private static final class InProc implements Transport {
        private final AtomicLong copies = new AtomicLong();

        @Override
        public String name() {
            return NAME;
        }

        @Override
        public boolean canReach(SegmentDescriptor local, SegmentDescriptor peer) {
            return peer.transports().contains(NAME) && EXPOSED.containsKey(peer.name());
        }

        @Override
        public void submit(Peer peer, List<? extends Slice> slices, Completion completion) {
            MemorySegment remote = EXPOSED.get(peer.name());
            for (Slice s : slices) {
                if (failing || remote == null) {
                    completion.failed(s, "inproc path to '" + peer.name() + "' is down", true);
                    continue;
                }
                if (s.write) MemorySegment.copy(s.local, 0, remote, s.remoteOffset, s.length());
                else MemorySegment.copy(remote, s.remoteOffset, s.local, 0, s.length());
                copies.incrementAndGet();
                completion.done(s);
            }
        }

        @Override
        public long counter(String counter) {
            return counter.equals("copies") ? copies.get() : 0;
        }
    }
}
