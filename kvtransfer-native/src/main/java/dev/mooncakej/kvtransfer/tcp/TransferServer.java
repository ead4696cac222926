package dev.mooncakej.kvtransfer.tcp;

import dev.mooncakej.kvtransfer.PeerAuth;
import dev.mooncakej.kvtransfer.spi.SegmentDescriptor;
import dev.mooncakej.kvtransfer.spi.WriteGuard;
import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;
import java.util.function.Supplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The passive side of the tcp transport and the control channel: accepts peers that prove the cluster
 * secret, then serves WRITE, READ and NOTIFY groups ({@link Wire}) straight from and into this
 * process's segment. Every entry is checked against the registered buffers; one outside is answered
 * {@code invalid} (a WRITE's bytes are read and dropped) and nothing outside is touched. A malformed
 * group closes its connection only.
 */
public final class TransferServer implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(TransferServer.class.getName());

    private final ServerSocketChannel server;
    private final PeerAuth auth;
    private final MemorySegment segment;
    private final Supplier<SegmentDescriptor> self;
    private final Function<byte[], Byte> notify;
    private volatile WriteGuard writeGuard = (writer, off, len) -> true;
    private volatile Function<byte[], byte[]> handshake = p -> {
        throw new IllegalStateException("rdma is not enabled here");
    };
    /** Open connections, with the segment name each peer proved (null until it has). */
    private final Map<SocketChannel, String> open = new ConcurrentHashMap<>();

    private final AtomicLong bytesIn = new AtomicLong();
    private final AtomicLong bytesOut = new AtomicLong();
    private final AtomicLong refused = new AtomicLong();
    /** WRITE groups get a number before their fence check; those whose data is still landing are listed. */
    private final AtomicLong writeGroups = new AtomicLong();

    /** WRITE groups whose data is still landing, by number, with the writer that sent each. */
    private final ConcurrentSkipListMap<Long, String> writesLanding = new ConcurrentSkipListMap<>();

    private volatile boolean closed;
    /** Closes connections that have not answered the challenge in time (a silent peer holds no thread for long). */
    private final ScheduledExecutorService authTimer = Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().daemon().name("transfer-auth-timeout").unstarted(r));

    public static final long AUTH_TIMEOUT_MILLIS = 5000;

    public TransferServer(
            String host,
            int port,
            PeerAuth auth,
            MemorySegment segment,
            Supplier<SegmentDescriptor> self,
            Function<byte[], Byte> notify) {
        this.auth = auth;
        this.segment = segment;
        this.self = self;
        this.notify = notify;
        try {
            server = ServerSocketChannel.open();
            server.bind(new InetSocketAddress(host, port), 128);
        } catch (IOException e) {
            throw new IllegalStateException(
                    "transfer engine cannot listen on " + host + ":" + port + " (" + e.getMessage()
                            + "): pick a free port",
                    e);
        }
        Thread.ofPlatform().daemon().name("transfer-accept-" + port()).start(this::acceptLoop);
    }

    public int port() {
        return server.socket().getLocalPort();
    }

    public void onHandshake(Function<byte[], byte[]> h) {
        handshake = h;
    }

    public void guardWrites(WriteGuard g) {
        writeGuard = g;
    }

    /** The number of the last WRITE group accepted so far (read after fencing a range: later groups see the fence). */
    public long writeGroupsAccepted() {
        return writeGroups.get();
    }

    /** True when every WRITE group numbered up to {@code seq} has finished landing (or was dropped). */
    public boolean writesLandedThrough(long seq) {
        return writesLanding.headMap(seq, true).isEmpty();
    }

    /** True when every WRITE group of {@code writer} numbered up to {@code seq} has landed (or was dropped). */
    public boolean writesLandedThrough(String writer, long seq) {
        return !writesLanding.headMap(seq, true).containsValue(writer);
    }

    /**
     * Closes every connection of {@code writer}: a group it has in flight is dropped (its reader fails
     * at once) and lands nothing more. Returns how many were closed.
     */
    public int disconnect(String writer) {
        int n = 0;
        for (var e : open.entrySet()) {
            if (!writer.equals(e.getValue())) continue;
            try {
                e.getKey().close();
                n++;
            } catch (IOException ignored) {
                // closing
            }
        }
        return n;
    }

    public long bytesIn() {
        return bytesIn.get();
    }

    public long bytesOut() {
        return bytesOut.get();
    }
    /** Connections closed for a failed challenge or a malformed group. */
    public long refused() {
        return refused.get();
    }

    /** Connections that have not finished the handshake, at most {@link #MAX_HANDSHAKING} at a time. */
    private final AtomicInteger handshaking = new AtomicInteger();

    public static final int MAX_HANDSHAKING = 64;

    private void acceptLoop() {
        while (!closed) {
            try {
                SocketChannel ch = server.accept();
                if (handshaking.incrementAndGet() > MAX_HANDSHAKING) { // unproven connections are capped
                    handshaking.decrementAndGet();
                    refused.incrementAndGet();
                    ch.close();
                    continue;
                }
                open.put(ch, "");
                Thread.ofPlatform().daemon().name("transfer-serve").start(() -> serve(ch));
            } catch (IOException e) {
                if (!closed) LOG.log(Level.WARNING, "transfer accept failed", e);
            }
        }
    }

    private void serve(SocketChannel ch) {
        try (ch) {
            ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
            var deadline = authTimer.schedule(
                    () -> {
                        try {
                            ch.close();
                        } catch (IOException ignored) {
                            // closing
                        }
                    },
                    AUTH_TIMEOUT_MILLIS,
                    TimeUnit.MILLISECONDS);
            String peer;
            try {
                peer = auth.accept(ch, self.get().name());
            } finally {
                deadline.cancel(false);
                handshaking.decrementAndGet();
            }
            if (peer == null) {
                refused.incrementAndGet();
                LOG.warning("transfer peer " + ch.getRemoteAddress()
                        + " failed the cluster-secret challenge: connection closed");
                return;
            }
            open.replace(ch, peer);
            ch.write(ByteBuffer.wrap(new byte[] {Wire.AUTH_OK}));
            Conn c = new Conn(ch, peer);
            while (!closed && serveGroup(c)) {
                // one method call per group: compiled early by its invocation count (see TcpTransport.sendGroup)
            }
        } catch (IOException e) {
            if (!closed) LOG.fine("transfer connection ended: " + e);
        } finally {
            open.remove(ch);
        }
    }

    /** Per-connection buffers, reused for every group. */
    private static final class Conn {
        final SocketChannel ch;
        final ByteBuffer header = ByteBuffer.allocateDirect(Wire.HEADER).order(ByteOrder.LITTLE_ENDIAN);
        final ByteBuffer entries =
                ByteBuffer.allocateDirect(Wire.ENTRY * Wire.MAX_ENTRIES).order(ByteOrder.LITTLE_ENDIAN);
        final ByteBuffer reply =
                ByteBuffer.allocateDirect(Wire.HEADER + Wire.MAX_ENTRIES).order(ByteOrder.LITTLE_ENDIAN);
        final ByteBuffer scratch = ByteBuffer.allocateDirect(64 * 1024);
        final ByteBuffer[] data = new ByteBuffer[Wire.MAX_ENTRIES + 1];
        final long[] off = new long[Wire.MAX_ENTRIES];
        final long[] len = new long[Wire.MAX_ENTRIES];
        final boolean[] ok = new boolean[Wire.MAX_ENTRIES];
        /** The segment name the peer proved in its handshake. */
        final String peer;

        Conn(SocketChannel ch, String peer) {
            this.ch = ch;
            this.peer = peer;
        }
    }

    /** Serves one group; false when the connection is done (peer hung up, or malformed and closed). */
    private boolean serveGroup(Conn c) throws IOException {
        SocketChannel ch = c.ch;
        ByteBuffer header = c.header, entries = c.entries;
        header.clear();
        try {
            Wire.readFully(ch, header);
        } catch (EOFException eof) {
            return false; // the peer hung up between groups
        }
        header.flip();
        int magic = Wire.magic(header);
        byte op = Wire.op(header);
        int count = Wire.count(header);
        int group = Wire.group(header);
        boolean control = op == Wire.NOTIFY || op == Wire.HANDSHAKE;
        if (!Wire.wellFormed(header)
                || op < Wire.WRITE
                || op > Wire.HANDSHAKE
                || count < 1
                || count > Wire.MAX_ENTRIES
                || (control && count != 1)) {
            malformed(
                    ch,
                    "group header magic 0x" + Integer.toHexString(magic) + " op " + op + " count " + count
                            + ": expected magic 0x" + Integer.toHexString(Wire.MAGIC) + ", op 1-4, count 1-"
                            + Wire.MAX_ENTRIES);
            return false;
        }
        entries.clear().limit(count * Wire.ENTRY);
        Wire.readFully(ch, entries);
        long seq = 0;
        if (op == Wire.WRITE) {
            seq = writeGroups.incrementAndGet(); // numbered before the fence check below
            writesLanding.put(seq, c.peer);
        }
        try {
            return serveEntries(c, op, count, group, seq);
        } finally {
            if (seq != 0) writesLanding.remove(seq);
        }
    }

    private boolean serveEntries(Conn c, byte op, int count, int group, long seq) throws IOException {
        SocketChannel ch = c.ch;
        ByteBuffer entries = c.entries, reply = c.reply, scratch = c.scratch;
        ByteBuffer[] data = c.data;
        long[] off = c.off, len = c.len;
        boolean[] ok = c.ok;
        boolean control = op == Wire.NOTIFY || op == Wire.HANDSHAKE;
        SegmentDescriptor me = self.get();
        for (int i = 0; i < count; i++) {
            off[i] = entries.getLong(i * Wire.ENTRY + 8);
            len[i] = entries.getLong(i * Wire.ENTRY + 16);
            long max = control ? Wire.MAX_NOTIFY : Wire.MAX_LENGTH;
            if (len[i] < 1 || len[i] > max) {
                malformed(ch, "entry length " + len[i] + ": expected 1.." + max);
                return false;
            }
            ok[i] = control
                    || me.registered(off[i], len[i])
                            && (op != Wire.WRITE || writeGuard.permits(c.peer, off[i], len[i]));
        }
        reply.clear();
        Wire.putHeader(reply, op, count, group);
        if (op == Wire.NOTIFY) {
            ByteBuffer payload = ByteBuffer.allocate((int) len[0]);
            Wire.readFully(ch, payload);
            reply.put(notify.apply(payload.array()));
            reply.flip();
            Wire.writeFully(ch, new ByteBuffer[] {reply}, 1);
            return true;
        }
        if (op == Wire.HANDSHAKE) {
            ByteBuffer payload = ByteBuffer.allocate((int) len[0]);
            Wire.readFully(ch, payload);
            byte[] answer;
            byte status = Wire.OK;
            try {
                answer = handshake.apply(payload.array());
            } catch (RuntimeException e) {
                status = Wire.INVALID;
                answer = String.valueOf(e.getMessage()).getBytes(StandardCharsets.UTF_8);
            }
            reply.put(status).putInt(answer.length).flip();
            Wire.writeFully(ch, new ByteBuffer[] {reply, ByteBuffer.wrap(answer)}, 2);
            return true;
        }
        for (int i = 0; i < count; i++) reply.put(ok[i] ? Wire.OK : Wire.INVALID);
        reply.flip();
        if (op == Wire.WRITE) {
            receive(ch, count, off, len, ok, data, scratch);
            // landed before the writer hears so: once its reply is in, writesLandedThrough counts this group
            writesLanding.remove(seq);
            Wire.writeFully(ch, new ByteBuffer[] {reply}, 1);
        } else {
            data[0] = reply;
            int n = 1;
            long total = 0;
            for (int i = 0; i < count; i++) {
                if (ok[i]) {
                    data[n++] = segment.asSlice(off[i], len[i]).asByteBuffer();
                    total += len[i];
                }
            }
            Wire.writeFully(ch, data, n);
            bytesOut.addAndGet(total);
        }
        return true;
    }

    /**
     * Reads a WRITE group's data: runs of valid entries scatter straight into the segment, invalid ones are dropped.
     */
    private void receive(
            SocketChannel ch, int count, long[] off, long[] len, boolean[] ok, ByteBuffer[] data, ByteBuffer scratch)
            throws IOException {
        int i = 0;
        while (i < count) {
            if (!ok[i]) {
                long left = len[i];
                while (left > 0) {
                    scratch.clear().limit((int) Math.min(scratch.capacity(), left));
                    Wire.readFully(ch, scratch);
                    left -= scratch.limit();
                }
                i++;
                continue;
            }
            int n = 0;
            long total = 0;
            while (i < count && ok[i]) {
                data[n++] = segment.asSlice(off[i], len[i]).asByteBuffer();
                total += len[i];
                i++;
            }
            Wire.readFully(ch, data, 0, n);
            bytesIn.addAndGet(total);
        }
    }

    private void malformed(SocketChannel ch, String what) {
        refused.incrementAndGet();
        String from;
        try {
            from = String.valueOf(ch.getRemoteAddress());
        } catch (IOException e) {
            from = "?";
        }
        LOG.warning("malformed transfer group from " + from + ": " + what + "; connection closed");
    }

    @Override
    public void close() {
        closed = true;
        authTimer.shutdownNow();
        try {
            server.close();
        } catch (IOException ignored) {
            // closing
        }
        for (SocketChannel ch : open.keySet()) {
            try {
                ch.close();
            } catch (IOException ignored) {
                // closing
            }
        }
    }
}
