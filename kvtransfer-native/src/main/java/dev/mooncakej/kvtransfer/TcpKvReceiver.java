package dev.mooncakej.kvtransfer;

import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.concurrent.atomic.LongAdder;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Accepts KV transfer connections and, once the peer has answered the {@link PeerAuth} challenge,
 * reads DATA frames straight into the registry's off-heap targets (no heap copy), one virtual thread
 * per connection. See {@link KvFrame} for the format.
 */
public final class TcpKvReceiver implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(TcpKvReceiver.class.getName());

    private final ServerSocketChannel server;
    private final KvSinkRegistry registry;
    private final PeerAuth auth;
    private final Thread acceptor;
    private final LongAdder bytes = new LongAdder();
    private final LongAdder rejectedConnections = new LongAdder();
    private volatile boolean closed;

    public TcpKvReceiver(String bindHost, int port, KvSinkRegistry registry, PeerAuth auth) throws IOException {
        this.registry = registry;
        this.auth = auth;
        this.server = ServerSocketChannel.open();
        server.bind(new InetSocketAddress(bindHost, port));
        this.acceptor = Thread.ofVirtual().name("kv-accept").start(this::acceptLoop);
    }

    public int port() {
        try {
            return ((InetSocketAddress) server.getLocalAddress()).getPort();
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    public long bytesReceived() { return bytes.sum(); }
    public long rejectedConnections() { return rejectedConnections.sum(); }

    private void acceptLoop() {
        while (!closed) {
            try {
                SocketChannel ch = server.accept();
                ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
                Thread.ofVirtual().name("kv-recv").start(() -> serve(ch));
            } catch (IOException e) {
                if (!closed) LOG.log(Level.WARNING, "kv receiver accept failed: " + e.getMessage());
            }
        }
    }

    private void serve(SocketChannel ch) {
        ByteBuffer header = ByteBuffer.allocateDirect(KvFrame.HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer ack = ByteBuffer.allocateDirect(1);
        try (ch) {
            if (!auth.challenge(ch)) {
                reject("the peer did not prove it holds the cluster secret");
                return;
            }
            while (true) {
                header.clear();
                if (!readFully(ch, header, true)) return; // clean close between frames
                header.flip();
                int magic = header.getInt();
                int type = header.getInt();
                long requestId = header.getLong();
                int block = header.getInt();
                int layer = header.getInt();
                long length = header.getLong();
                if (magic != KvFrame.MAGIC) {
                    reject("bad magic " + Integer.toHexString(magic) + " (expected a KV transfer frame)");
                    return;
                }
                if (type == KvFrame.TYPE_DATA) {
                    MemorySegment target = registry.target(requestId, block, layer, length);
                    if (target == null) {
                        reject("request " + requestId + " block " + block + " layer " + layer + " length " + length + " is not a reserved target");
                        return;
                    }
                    readFully(ch, target.asByteBuffer(), false);
                    bytes.add(length);
                } else if (type == KvFrame.TYPE_COMMIT) {
                    ack.clear();
                    ack.put(registry.commit(requestId, length));
                    ack.flip();
                    while (ack.hasRemaining()) ch.write(ack);
                } else {
                    reject("unknown frame type " + type);
                    return;
                }
            }
        } catch (IOException e) {
            if (!closed) LOG.log(Level.FINE, "kv connection ended: " + e.getMessage());
        }
    }

    private void reject(String why) {
        rejectedConnections.increment();
        LOG.warning("closing a KV transfer connection: " + why);
    }

    /** Reads until buf is full; false on EOF before the first byte when {@code eofOk}. */
    private static boolean readFully(SocketChannel ch, ByteBuffer buf, boolean eofOk) throws IOException {
        boolean first = true;
        while (buf.hasRemaining()) {
            int n = ch.read(buf);
            if (n < 0) {
                if (first && eofOk) return false;
                throw new EOFException("connection closed mid-frame");
            }
            first = false;
        }
        return true;
    }

    @Override
    public void close() {
        closed = true;
        try {
            server.close();
        } catch (IOException ignored) {
            // closing
        }
        acceptor.interrupt();
    }
}
