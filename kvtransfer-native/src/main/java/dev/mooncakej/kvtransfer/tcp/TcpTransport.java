package dev.mooncakej.kvtransfer.tcp;

import dev.mooncakej.kvtransfer.PeerAuth;
import dev.mooncakej.kvtransfer.spi.Peer;
import dev.mooncakej.kvtransfer.spi.SegmentDescriptor;
import dev.mooncakej.kvtransfer.spi.SievePool;
import dev.mooncakej.kvtransfer.spi.Slice;
import dev.mooncakej.kvtransfer.spi.TransferConfig;
import dev.mooncakej.kvtransfer.spi.Transport;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.SocketChannel;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The tcp transport: several connections per peer (made lazily, on first use, in a capped endpoint
 * pool with SIEVE eviction), slices striped over them, and on each connection the queued slices
 * coalesced into groups sent with one gathering write straight from registered off-heap memory
 * (READ replies are scattered straight into it). A connection that breaks fails its slices back to
 * the engine, which retries them on another connection.
 */
public final class TcpTransport implements Transport {
    static final int MAX_GROUP_SLICES = 256;
    static final long MAX_GROUP_BYTES = 16L << 20;
    static final int MAX_INFLIGHT_GROUPS = 4;
    static final long SEND_NOW_BYTES = 512L << 10;

    private final TransferConfig config;
    private final PeerAuth auth;
    private final SievePool<String, Endpoint> pool;
    private final AtomicInteger stripe = new AtomicInteger();
    private final AtomicLong connects = new AtomicLong();

    /** This engine's segment name, which its handshakes prove. */
    private final String self;

    TcpTransport(String self, TransferConfig config, PeerAuth auth) {
        this.self = self;
        this.config = config;
        this.auth = auth;
        this.pool = new SievePool<>(config.maxEndpoints(), Endpoint::retire);
    }

    @Override
    public String name() {
        return "tcp";
    }

    @Override
    public boolean canReach(SegmentDescriptor local, SegmentDescriptor peer) {
        return peer.transports().contains("tcp") && peer.rpcPort() > 0;
    }

    /**
     * {@code connects}: connections opened so far (lazy connection and retry tests); {@code endpoints}:
     * connections pooled now; {@code evictions}: connections the pool's cap closed.
     */
    @Override
    public long counter(String counter) {
        return switch (counter) {
            case "connects" -> connects.get();
            case "endpoints" -> pool.size();
            case "evictions" -> pool.evictions();
            default -> 0;
        };
    }

    @Override
    public void submit(Peer peer, List<? extends Slice> slices, Completion completion) {
        int n = config.connectionsPerPeer();
        int base = stripe.getAndIncrement();
        for (int i = 0; i < slices.size(); i++) {
            Slice s = slices.get(i);
            if (s.attempt == 0) s.path = Math.floorMod(base + i, n);
            int path = Math.floorMod(s.path + s.attempt, n);
            String key = peer.name() + "#" + path;
            while (true) {
                Endpoint ep = pool.get(key, k -> new Endpoint(k, peer.descriptor, completion));
                if (ep.offer(s)) break;
                pool.remove(key, ep); // broken or retired meanwhile: make a fresh one
            }
        }
    }

    @Override
    public void forget(String peer) {
        for (Endpoint ep : pool.values()) {
            if (ep.peer.name().equals(peer)) {
                pool.remove(ep.key, ep);
                ep.retire();
            }
        }
    }

    @Override
    public void close() {
        for (Endpoint ep : pool.values()) ep.fail("transfer engine closed");
    }

    /** One connection to a peer: a sender thread coalescing queued slices, a reader thread for replies. */
    final class Endpoint {
        final String key;
        final SegmentDescriptor peer;
        final Completion completion;
        private final ArrayDeque<Slice> queue = new ArrayDeque<>();
        private final ArrayDeque<Group> inflight = new ArrayDeque<>();
        private SocketChannel ch;
        private boolean broken;
        private boolean retired;
        private boolean senderWaiting;
        private long queuedBytes;
        private int nextGroup;

        Endpoint(String key, SegmentDescriptor peer, Completion completion) {
            this.key = key;
            this.peer = peer;
            this.completion = completion;
            Thread.ofPlatform().daemon().name("transfer-send-" + key).start(this::sendLoop);
        }

        synchronized boolean offer(Slice s) {
            if (broken || retired) return false;
            queue.add(s);
            queuedBytes += s.length();
            if (senderWaiting && sendable()) notifyAll();
            return true;
        }

        /**
         * Ack-clocked coalescing: a group goes out at once while fewer than {@link #MAX_INFLIGHT_GROUPS}
         * are unanswered; otherwise slices accumulate until a reply arrives or {@link #SEND_NOW_BYTES} are
         * waiting, so small slices leave in large gathering writes instead of one write each.
         */
        private boolean sendable() {
            return !queue.isEmpty() && (inflight.size() < MAX_INFLIGHT_GROUPS || queuedBytes >= SEND_NOW_BYTES);
        }

        /** Leaves the pool: finishes what it has, then closes. */
        synchronized void retire() {
            retired = true;
            notifyAll();
        }

        private void sendLoop() {
            try {
                SocketChannel c = SocketChannel.open();
                c.socket().connect(new InetSocketAddress(peer.rpcHost(), peer.rpcPort()), (int)
                        Math.min(Integer.MAX_VALUE, config.timeout().toMillis()));
                c.setOption(StandardSocketOptions.TCP_NODELAY, true);
                auth.connect(c, self, peer.name());
                ByteBuffer ok = ByteBuffer.allocate(1);
                Wire.readFully(c, ok);
                if (ok.get(0) != Wire.AUTH_OK) throw new IOException("peer refused the cluster secret");
                connects.incrementAndGet();
                synchronized (this) {
                    if (broken) {
                        c.close();
                        return;
                    }
                    ch = c;
                }
                Thread.ofPlatform().daemon().name("transfer-recv-" + key).start(this::readLoop);
                ByteBuffer header = ByteBuffer.allocateDirect(Wire.HEADER + Wire.ENTRY * MAX_GROUP_SLICES)
                        .order(ByteOrder.LITTLE_ENDIAN);
                ByteBuffer[] bufs = new ByteBuffer[MAX_GROUP_SLICES + 1];
                List<Slice> batch = new ArrayList<>(MAX_GROUP_SLICES);
                // one method call per group: compiled by its invocation count, early, instead of this
                // long-lived loop waiting for on-stack replacement after tens of thousands of groups
                while (sendGroup(header, bufs, batch)) {
                    // next group
                }
            } catch (IOException e) {
                fail("tcp connection to " + peer.name() + " at " + peer.rpcHost() + ":" + peer.rpcPort() + " failed: "
                        + describe(e));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                fail("interrupted");
            }
        }

        /** Waits for sendable slices, sends them as one group; false when the endpoint is done. */
        private boolean sendGroup(ByteBuffer header, ByteBuffer[] bufs, List<Slice> batch)
                throws IOException, InterruptedException {
            batch.clear();
            Group g;
            synchronized (this) {
                while (!sendable() && !(retired && queue.isEmpty()) && !broken) {
                    senderWaiting = true;
                    wait();
                    senderWaiting = false;
                }
                if (broken) return false;
                if (queue.isEmpty()) { // retired and drained: close once the replies are in
                    while (!inflight.isEmpty() && !broken) wait();
                    closeQuietly();
                    return false;
                }
                boolean write = queue.peek().write;
                long bytes = 0;
                while (!queue.isEmpty()
                        && batch.size() < MAX_GROUP_SLICES
                        && queue.peek().write == write
                        && (batch.isEmpty() || bytes + queue.peek().length() <= MAX_GROUP_BYTES)) {
                    Slice s = queue.poll();
                    bytes += s.length();
                    queuedBytes -= s.length();
                    batch.add(s);
                }
                g = new Group(nextGroup++, write, batch.toArray(new Slice[0]));
                inflight.add(g);
            }
            header.clear();
            Wire.putHeader(header, g.write ? Wire.WRITE : Wire.READ, g.slices.length, g.id);
            for (Slice s : g.slices) header.putLong(0).putLong(s.remoteOffset).putLong(s.length());
            header.flip();
            bufs[0] = header;
            int n = 1;
            if (g.write) for (Slice s : g.slices) bufs[n++] = s.local.asByteBuffer();
            Wire.writeFully(ch, bufs, n);
            Arrays.fill(bufs, 1, n, null);
            return true;
        }

        private void readLoop() {
            ByteBuffer header =
                    ByteBuffer.allocateDirect(Wire.HEADER + MAX_GROUP_SLICES).order(ByteOrder.LITTLE_ENDIAN);
            ByteBuffer[] bufs = new ByteBuffer[MAX_GROUP_SLICES];
            try {
                while (true) readReply(header, bufs); // one call per reply (see sendGroup)
            } catch (IOException e) {
                fail("tcp connection to " + peer.name() + " broke: " + describe(e));
            }
        }

        /** Reads one group's reply (statuses, READ data straight into local memory) and reports its slices. */
        private void readReply(ByteBuffer header, ByteBuffer[] bufs) throws IOException {
            header.clear().limit(Wire.HEADER);
            Wire.readFully(ch, header);
            Group g;
            synchronized (this) {
                g = inflight.peek();
            }
            if (g == null
                    || !Wire.wellFormed(header)
                    || Wire.group(header) != g.id
                    || Wire.count(header) != g.slices.length) {
                throw new IOException("unexpected reply (group " + Wire.group(header) + ", expected "
                        + (g == null ? "none" : g.id) + ")");
            }
            header.clear().limit(g.slices.length);
            Wire.readFully(ch, header);
            if (!g.write) {
                int n = 0;
                for (int i = 0; i < g.slices.length; i++)
                    if (header.get(i) == Wire.OK) bufs[n++] = g.slices[i].local.asByteBuffer();
                Wire.readFully(ch, bufs, 0, n);
                Arrays.fill(bufs, 0, n, null);
            }
            synchronized (this) {
                inflight.poll();
                if (senderWaiting) notifyAll();
            }
            for (int i = 0; i < g.slices.length; i++) {
                Slice s = g.slices[i];
                if (header.get(i) == Wire.OK) completion.done(s);
                else
                    completion.failed(
                            s,
                            "remote range [" + s.remoteOffset + ", +" + s.length()
                                    + ") is not inside a registered buffer of '" + peer.name() + "'",
                            false);
            }
        }

        /** Breaks the endpoint: every queued and unanswered slice goes back to the engine as a transport error. */
        void fail(String why) {
            List<Slice> lost = new ArrayList<>();
            synchronized (this) {
                if (broken) return;
                broken = true;
                for (Group g : inflight) lost.addAll(List.of(g.slices));
                inflight.clear();
                lost.addAll(queue);
                queue.clear();
                queuedBytes = 0;
                closeQuietly();
                notifyAll();
            }
            pool.remove(key, this);
            for (Slice s : lost) completion.failed(s, why, true);
        }

        private void closeQuietly() {
            if (ch == null) return;
            try {
                ch.close();
            } catch (IOException ignored) {
                // already broken
            }
        }
    }

    private record Group(int id, boolean write, Slice[] slices) {}

    private static String describe(IOException e) {
        return e.getClass().getSimpleName() + (e.getMessage() == null ? "" : " (" + e.getMessage() + ")");
    }
}
