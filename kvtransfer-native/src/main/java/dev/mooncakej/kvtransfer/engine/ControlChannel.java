package dev.mooncakej.kvtransfer.engine;

import dev.mooncakej.kvtransfer.PeerAuth;
import dev.mooncakej.kvtransfer.spi.SegmentDescriptor;
import dev.mooncakej.kvtransfer.tcp.Wire;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * The engine's control channel: one authenticated connection per peer to its transfer server, kept
 * and reused (a stale one is replaced once), for notifications after writes ({@code NOTIFY}, answered
 * by one status byte) and transports' handshakes ({@code HANDSHAKE}, answered by a status and a
 * payload). Every call has a deadline: a watchdog closes the connection when the answer is late.
 */
final class ControlChannel {
    private final String self;
    private final SegmentMetadata metadata;
    private final PeerAuth auth;
    private final ScheduledExecutorService timer;
    private final Map<String, Control> connections = new ConcurrentHashMap<>();

    ControlChannel(String self, SegmentMetadata metadata, PeerAuth auth, ScheduledExecutorService timer) {
        this.self = self;
        this.metadata = metadata;
        this.auth = auth;
        this.timer = timer;
    }

    /**
     * Sends a small message to a peer's notification handler over the control channel and returns its
     * status byte; used after a batch of writes completed ("the KV of request r is there").
     */
    byte notify(String segmentName, byte[] payload, Duration timeout) throws IOException {
        if (payload.length < 1 || payload.length > Wire.MAX_NOTIFY)
            throw new IllegalArgumentException(
                    "notification of " + payload.length + " bytes: expected 1.." + Wire.MAX_NOTIFY);
        SegmentDescriptor d = metadata.lookup(segmentName)
                .orElseThrow(() -> new IOException("segment '" + segmentName + "' is not published"));
        Control c = connections.computeIfAbsent(segmentName, k -> new Control());
        synchronized (c) {
            IOException last = null;
            for (int attempt = 0; attempt < 2; attempt++) { // a pooled connection may have gone stale: one fresh retry
                try {
                    if (c.ch == null
                            || !c.ch.isOpen()
                            || c.port != d.rpcPort()
                            || !d.rpcHost().equals(c.host)) c.open(d, timeout);
                    return c.call(Wire.NOTIFY, payload, timeout)[0];
                } catch (IOException e) {
                    last = e;
                    c.close();
                }
            }
            throw new IOException(
                    "notification to '" + segmentName + "' at " + d.rpcHost() + ":" + d.rpcPort() + " failed: "
                            + last.getMessage(),
                    last);
        }
    }

    /** A transport's handshake with a peer (the rdma queue pairs'): the answer's payload, or an exception. */
    byte[] handshake(String segmentName, byte[] request, Duration timeout) {
        try {
            SegmentDescriptor d = metadata.lookup(segmentName)
                    .orElseThrow(() -> new IOException("segment '" + segmentName + "' is not published"));
            Control c = connections.computeIfAbsent(segmentName, k -> new Control());
            synchronized (c) {
                if (c.ch == null
                        || !c.ch.isOpen()
                        || c.port != d.rpcPort()
                        || !d.rpcHost().equals(c.host)) c.open(d, timeout);
                byte[] r;
                try {
                    r = c.call(Wire.HANDSHAKE, request, timeout);
                } catch (IOException e) {
                    c.close();
                    throw e;
                }
                String body = new String(r, 1, r.length - 1, StandardCharsets.UTF_8);
                if (r[0] != Wire.OK) throw new IllegalStateException("peer refused the rdma handshake: " + body);
                return Arrays.copyOfRange(r, 1, r.length);
            }
        } catch (IOException e) {
            throw new IllegalStateException("rdma handshake with '" + segmentName + "' failed: " + e.getMessage(), e);
        }
    }

    /** One authenticated control connection to a peer, reused for notifications. */
    private final class Control {
        SocketChannel ch;
        String host;
        int port;

        void open(SegmentDescriptor d, Duration timeout) throws IOException {
            close();
            SocketChannel c = SocketChannel.open();
            try {
                c.socket().connect(new InetSocketAddress(d.rpcHost(), d.rpcPort()), (int) timeout.toMillis());
                c.setOption(StandardSocketOptions.TCP_NODELAY, true);
                auth.connect(c, self, d.name());
                ByteBuffer one = ByteBuffer.allocate(1);
                Wire.readFully(c, one);
                if (one.get(0) != Wire.AUTH_OK) throw new IOException("peer refused the cluster secret");
            } catch (IOException e) {
                c.close();
                throw e;
            }
            ch = c;
            host = d.rpcHost();
            port = d.rpcPort();
        }

        /**
         * Sends a control message; NOTIFY answers one status byte, HANDSHAKE a status and a payload (returned after
         * it).
         */
        byte[] call(byte op, byte[] payload, Duration timeout) throws IOException {
            ByteBuffer out = ByteBuffer.allocate(Wire.HEADER + Wire.ENTRY + payload.length)
                    .order(ByteOrder.LITTLE_ENDIAN);
            Wire.putHeader(out, op, 1, 0)
                    .putLong(0)
                    .putLong(0)
                    .putLong(payload.length)
                    .put(payload)
                    .flip();
            SocketChannel c = ch;
            var watchdog = timer.schedule(
                    () -> {
                        try {
                            c.close();
                        } catch (IOException ignored) {
                            // closing
                        }
                    },
                    timeout.toMillis(),
                    TimeUnit.MILLISECONDS);
            try {
                Wire.writeFully(c, new ByteBuffer[] {out}, 1);
                ByteBuffer reply = ByteBuffer.allocate(Wire.HEADER + 1).order(ByteOrder.LITTLE_ENDIAN);
                Wire.readFully(c, reply);
                if (!Wire.wellFormed(reply) || Wire.op(reply) != op) throw new IOException("malformed control reply");
                if (op == Wire.NOTIFY) return new byte[] {reply.get(Wire.HEADER)};
                ByteBuffer len = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
                Wire.readFully(c, len);
                int n = len.getInt(0);
                if (n < 0 || n > Wire.MAX_NOTIFY) throw new IOException("control reply of " + n + " bytes");
                ByteBuffer body = ByteBuffer.allocate(n);
                Wire.readFully(c, body);
                byte[] out2 = new byte[n + 1];
                out2[0] = reply.get(Wire.HEADER);
                System.arraycopy(body.array(), 0, out2, 1, n);
                return out2;
            } finally {
                watchdog.cancel(false);
            }
        }

        void close() {
            if (ch != null) {
                try {
                    ch.close();
                } catch (IOException ignored) {
                    // closing
                }
                ch = null;
            }
        }
    }

    void close() {
        connections.values().forEach(c -> {
            synchronized (c) {
                c.close();
            }
        });
    }
}
