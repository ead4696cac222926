package dev.mooncakej.kvtransfer;

import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.SocketChannel;

/**
 * One KV transfer connection to a receiver: DATA frames written straight from off-heap memory with a
 * gathering write (header + payload view, no heap copy), then COMMIT and its status. Not thread-safe:
 * one sender per request stream ({@link AsyncKvStream} gives it its own thread).
 */
public final class TcpKvSender implements AutoCloseable {
    private final SocketChannel ch;
    private final ByteBuffer header = ByteBuffer.allocateDirect(KvFrame.HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
    private final ByteBuffer[] gather = new ByteBuffer[2];
    private long bytesSent;

    private TcpKvSender(SocketChannel ch) {
        this.ch = ch;
    }

    public static TcpKvSender connect(String host, int port, int timeoutMillis, PeerAuth auth) throws IOException {
        SocketChannel ch = SocketChannel.open();
        try {
            Socket s = ch.socket();
            s.connect(new InetSocketAddress(host, port), timeoutMillis);
            s.setSoTimeout(timeoutMillis);
            ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
            ch.setOption(StandardSocketOptions.SO_SNDBUF, 4 << 20);
            auth.answer(ch);
            return new TcpKvSender(ch);
        } catch (IOException e) {
            ch.close();
            throw new IOException("cannot connect to the KV receiver at " + host + ":" + port + ": " + e.getMessage(), e);
        }
    }

    public long bytesSent() { return bytesSent; }

    /** Sends one layer of one block. */
    public void send(long requestId, int blockIndex, int layer, MemorySegment data) throws IOException {
        header.clear();
        header.putInt(KvFrame.MAGIC).putInt(KvFrame.TYPE_DATA).putLong(requestId).putInt(blockIndex).putInt(layer).putLong(data.byteSize());
        header.flip();
        gather[0] = header;
        gather[1] = data.asByteBuffer();
        long total = KvFrame.HEADER_BYTES + data.byteSize();
        long written = 0;
        while (written < total) written += ch.write(gather);
        gather[1] = null;
        bytesSent += data.byteSize();
    }

    /** Tells the receiver the first {@code tokens} tokens are complete; returns its status byte. */
    public byte commit(long requestId, long tokens) throws IOException {
        header.clear();
        header.putInt(KvFrame.MAGIC).putInt(KvFrame.TYPE_COMMIT).putLong(requestId).putInt(0).putInt(0).putLong(tokens);
        header.flip();
        while (header.hasRemaining()) ch.write(header);
        // blocking read with the socket timeout
        int n = ch.socket().getInputStream().read();
        if (n < 0) throw new EOFException("KV receiver closed the connection before acknowledging the commit");
        return (byte) n;
    }

    @Override
    public void close() {
        try {
            ch.close();
        } catch (IOException ignored) {
            // closing
        }
    }
}
