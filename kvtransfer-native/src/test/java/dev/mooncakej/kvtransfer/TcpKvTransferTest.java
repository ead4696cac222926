package dev.mooncakej.kvtransfer;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.Socket;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** KV over real loopback sockets: bytes land intact in the reserved targets; bad frames close only their connection. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TcpKvTransferTest {
    private static final int BLOCKS = 6, LAYERS = 3, LAYER_BYTES = 64 * 1024;

    private Arena arena;
    private MemorySegment sinkSlab;
    private final ConcurrentHashMap<Long, Long> committed = new ConcurrentHashMap<>();
    private TcpKvReceiver receiver;
    private static final PeerAuth AUTH = new PeerAuth("test-cluster-secret-0123456789");

    @BeforeEach
    void start() throws Exception {
        arena = Arena.ofShared();
        sinkSlab = arena.allocate((long) BLOCKS * LAYERS * LAYER_BYTES);
        receiver = new TcpKvReceiver("127.0.0.1", 0, new KvSinkRegistry() {
            @Override
            public MemorySegment target(long requestId, int blockIndex, int layer, long length) {
                if (requestId != 7 || blockIndex < 0 || blockIndex >= BLOCKS || layer < 0 || layer >= LAYERS || length != LAYER_BYTES) return null;
                return sinkSlab.asSlice(((long) blockIndex * LAYERS + layer) * LAYER_BYTES, LAYER_BYTES);
            }

            @Override
            public byte commit(long requestId, long tokens) {
                if (requestId != 7) return KvFrame.UNKNOWN_REQUEST;
                committed.put(requestId, tokens);
                return KvFrame.OK;
            }
        }, AUTH);
    }

    @AfterEach
    void stop() {
        receiver.close();
        arena.close();
    }

    @Test
    void layersArriveIntactInTheirReservedBlocksAndCommitIsAcknowledged() throws Exception {
        MemorySegment src = arena.allocate((long) BLOCKS * LAYERS * LAYER_BYTES);
        Random rnd = new Random(1);
        for (long i = 0; i < src.byteSize(); i += 8) src.set(ValueLayout.JAVA_LONG_UNALIGNED, i, rnd.nextLong());
        try (AsyncKvStream stream = new AsyncKvStream(TcpKvSender.connect("127.0.0.1", receiver.port(), 5000, AUTH), 7)) {
            for (int l = 0; l < LAYERS; l++) { // layer-major, as a prefill produces them
                for (int b = 0; b < BLOCKS; b++) stream.enqueue(b, l, src.asSlice(((long) b * LAYERS + l) * LAYER_BYTES, LAYER_BYTES));
            }
            assertThat(stream.finish(123, 10_000)).isEqualTo(KvFrame.OK);
            assertThat(stream.bytesSent()).isEqualTo(src.byteSize());
        }
        assertThat(sinkSlab.mismatch(src)).isEqualTo(-1);
        assertThat(committed).containsEntry(7L, 123L);
        assertThat(receiver.bytesReceived()).isEqualTo(src.byteSize());
    }

    @Test
    void aSecretShorterThanSixteenBytesIsRefused() {
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> new PeerAuth("short")).hasMessageContaining("at least 16 bytes");
    }

    @Test
    void aFrameOutsideTheReservationOrAPeerWithoutTheSecretClosesThatConnectionOnlyAndWritesNothing() throws Exception {
        MemorySegment src = arena.allocate(LAYER_BYTES);
        src.fill((byte) 9);
        try (TcpKvSender bad = TcpKvSender.connect("127.0.0.1", receiver.port(), 5000, AUTH)) {
            bad.send(7, BLOCKS, 0, src); // one block past the reservation
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> bad.commit(7, 1)).isInstanceOf(java.io.IOException.class);
        }
        try (Socket s = new Socket("127.0.0.1", receiver.port())) { // garbage bytes
            OutputStream o = s.getOutputStream();
            o.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n          ".getBytes());
            o.flush();
            s.setSoTimeout(5000);
            int read = 0;
            try {
                while (s.getInputStream().read() >= 0) read++; // the challenge, then the end
            } catch (java.net.SocketException reset) { // closed with our bytes unread: a reset is a close too
                // closed
            }
            assertThat(read).as("bytes before the receiver closed the connection: only its challenge").isLessThanOrEqualTo(PeerAuth.CHALLENGE_BYTES);
        }
        assertThat(receiver.rejectedConnections()).isEqualTo(2);
        try (TcpKvSender stranger = TcpKvSender.connect("127.0.0.1", receiver.port(), 5000, new PeerAuth("some-other-secret-abcdefgh"))) {
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> { // the receiver closes the connection after the wrong answer
                stranger.send(7, 0, 0, src);
                stranger.commit(7, 1);
            }).isInstanceOf(java.io.IOException.class);
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (receiver.rejectedConnections() < 3 && System.nanoTime() < deadline) Thread.sleep(10);
        assertThat(receiver.rejectedConnections()).as("a peer without the secret").isEqualTo(3);
        assertThat(sinkSlab.toArray(ValueLayout.JAVA_BYTE)).containsOnly((byte) 0);
        try (TcpKvSender good = TcpKvSender.connect("127.0.0.1", receiver.port(), 5000, AUTH)) {
            good.send(7, 0, 0, src);
            assertThat(good.commit(7, 32)).isEqualTo(KvFrame.OK);
            assertThat(good.commit(8, 32)).as("unknown request").isEqualTo(KvFrame.UNKNOWN_REQUEST);
        }
        assertThat(sinkSlab.asSlice(0, LAYER_BYTES).mismatch(src)).isEqualTo(-1);
    }
}
