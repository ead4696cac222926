package dev.mooncakej.kvtransfer.engine;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.kvtransfer.PeerAuth;
import dev.mooncakej.kvtransfer.spi.TransferConfig;
import dev.mooncakej.kvtransfer.tcp.TransferServer;
import dev.mooncakej.kvtransfer.tcp.Wire;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.assertj.core.api.Assertions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The passive side against hostile or broken clients speaking the wire format by hand: a peer without
 * the secret is closed before it can write; an authenticated peer's entry past a registered buffer is
 * answered invalid and its bytes dropped; a malformed group closes that connection only, and the
 * engine keeps serving everyone else. Memory outside what was legitimately written stays unchanged.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TransferServerSecurityTest {
    @TempDir
    Path shm;

    private static SocketChannel connect(TransferEngine e, String secret) throws Exception {
        SocketChannel ch = SocketChannel.open(new InetSocketAddress("127.0.0.1", e.port()));
        try {
            new PeerAuth(secret).connect(ch, "client-" + ProcessHandle.current().pid(), e.name());
        } catch (IOException refused) {
            // the server closed it: what follows shows it takes nothing from this peer
        }
        return ch;
    }

    private static ByteBuffer group(byte op, int groupId, long[][] entries, byte[] data) {
        ByteBuffer b = ByteBuffer.allocate(Wire.HEADER + Wire.ENTRY * entries.length + (data == null ? 0 : data.length))
                .order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(Wire.MAGIC)
                .put(op)
                .put((byte) 0)
                .put((byte) 0)
                .put((byte) 0)
                .putInt(entries.length)
                .putInt(groupId);
        for (long[] e : entries) b.putLong(0).putLong(e[0]).putLong(e[1]);
        if (data != null) b.put(data);
        return b.flip();
    }

    @Test
    void aPeerWithoutTheSecretIsClosedAndWritesNothing() throws Exception {
        try (TransferEngine e =
                new TransferEngine("d", new SegmentMetadata.Embedded(), 1 << 20, Engines.config("tcp", shm))) {
            e.allocate(1 << 20, "cpu:0");
            try (SocketChannel ch = connect(e, "some-other-secret-0123456789")) {
                try {
                    ch.write(group(Wire.WRITE, 0, new long[][] {{0, 4}}, new byte[] {1, 2, 3, 4}));
                } catch (IOException closed) {
                    // already closed
                }
                ByteBuffer in = ByteBuffer.allocate(64);
                int n = 0;
                try {
                    n = ch.read(in);
                } catch (IOException reset) {
                    n = -1;
                }
                assertThat(n).as("closed without AUTH_OK").isEqualTo(-1);
            }
            Thread.sleep(100);
            assertThat(e.segment().toArray(ValueLayout.JAVA_BYTE)).containsOnly((byte) 0);
            assertThat(e.refusedConnections()).isEqualTo(1);
        }
    }

    @Test
    void anEntryPastABufferIsInvalidAndAMalformedGroupClosesOnlyItsConnection() throws Exception {
        try (TransferEngine e =
                new TransferEngine("d", new SegmentMetadata.Embedded(), 1 << 20, Engines.config("tcp", shm))) {
            MemorySegment buf = e.allocate(4096, "cpu:0");
            try (SocketChannel good = connect(e, Engines.SECRET);
                    SocketChannel bad = connect(e, Engines.SECRET)) {
                ByteBuffer ok = ByteBuffer.allocate(1);
                Wire.readFully(good, ok);
                Wire.readFully(bad, ok.clear());
                // entry 0 inside, entry 1 crosses the buffer's end, entry 2 past everything registered
                byte[] data = new byte[16 + 200 + 8];
                Arrays.fill(data, (byte) 9);
                good.write(group(Wire.WRITE, 7, new long[][] {{0, 16}, {4000, 200}, {1 << 19, 8}}, data));
                ByteBuffer reply = ByteBuffer.allocate(Wire.HEADER + 3).order(ByteOrder.LITTLE_ENDIAN);
                Wire.readFully(good, reply);
                assertThat(reply.getInt(12)).isEqualTo(7);
                assertThat(new byte[] {reply.get(16), reply.get(17), reply.get(18)})
                        .containsExactly(Wire.OK, Wire.INVALID, Wire.INVALID);
                // a malformed group on the other connection: count 5000
                ByteBuffer junk = group(Wire.READ, 1, new long[][] {{0, 16}}, null);
                junk.putInt(8, 5000);
                bad.write(junk);
                int got;
                try {
                    got = bad.read(ByteBuffer.allocate(8));
                } catch (IOException reset) {
                    got = -1;
                }
                assertThat(got).as("malformed: connection closed").isEqualTo(-1);
                // the good connection still works: read back what it wrote
                good.write(group(Wire.READ, 8, new long[][] {{0, 16}}, null));
                ByteBuffer back = ByteBuffer.allocate(Wire.HEADER + 1 + 16).order(ByteOrder.LITTLE_ENDIAN);
                Wire.readFully(good, back);
                assertThat(back.get(16)).isEqualTo(Wire.OK);
                for (int i = 17; i < 33; i++) assertThat(back.get(i)).isEqualTo((byte) 9);
            }
            assertThat(buf.asSlice(16, 4096 - 16).toArray(ValueLayout.JAVA_BYTE))
                    .as("the invalid entry wrote nothing")
                    .containsOnly((byte) 0);
            assertThat(e.segment().asSlice(4096, (1 << 20) - 4096).toArray(ValueLayout.JAVA_BYTE))
                    .containsOnly((byte) 0);
            assertThat(e.refusedConnections()).isEqualTo(1);
        }
    }

    @Test
    void aPeerThatNeverAnswersTheChallengeIsClosedAfterTheAuthTimeout() throws Exception {
        try (TransferEngine e =
                        new TransferEngine("d", new SegmentMetadata.Embedded(), 4096, Engines.config("tcp", shm));
                SocketChannel silent = SocketChannel.open(new InetSocketAddress("127.0.0.1", e.port()))) {
            ByteBuffer challenge = ByteBuffer.allocate(PeerAuth.CHALLENGE_BYTES);
            Wire.readFully(silent, challenge); // then say nothing
            long t0 = System.nanoTime();
            int got;
            try {
                got = silent.read(ByteBuffer.allocate(8));
            } catch (IOException reset) {
                got = -1;
            }
            double s = (System.nanoTime() - t0) / 1e9;
            assertThat(got).as("closed").isEqualTo(-1);
            assertThat(s)
                    .as("after the auth timeout")
                    .isBetween(
                            TransferServer.AUTH_TIMEOUT_MILLIS / 1000.0 - 0.5,
                            TransferServer.AUTH_TIMEOUT_MILLIS / 1000.0 + 5);
        }
    }

    @Test
    void notificationsReachTheHandlerOnlyWithTheSecret() throws Exception {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        try (TransferEngine d = new TransferEngine("d", md, 4096, Engines.config("tcp", shm));
                TransferEngine p = new TransferEngine("p", md, 4096, Engines.config("tcp", shm))) {
            d.onNotify(payload -> (byte) (payload.length == 3 && payload[0] == 'k' ? 0 : 2));
            assertThat(p.notify("d", new byte[] {'k', 'v', '!'}, Duration.ofSeconds(5)))
                    .isEqualTo((byte) 0);
            assertThat(p.notify("d", new byte[] {'x'}, Duration.ofSeconds(5))).isEqualTo((byte) 2);
        }
        TransferConfig other =
                TransferConfig.defaults("another-secret-abcdefghijkl", shm).withTransports(List.of("tcp"));
        try (TransferEngine d = new TransferEngine("d", md, 4096, Engines.config("tcp", shm));
                TransferEngine p = new TransferEngine("p", md, 4096, other)) {
            Assertions.assertThatThrownBy(() -> p.notify("d", new byte[] {'k'}, Duration.ofSeconds(5)))
                    .hasMessageContaining("notification to 'd'");
        }
    }

    @Test
    void anUnprovenPeerSeesOnlyANonceAndUnprovenConnectionsAreCapped() throws Exception {
        try (TransferEngine e =
                new TransferEngine("d", new SegmentMetadata.Embedded(), 1 << 20, Engines.config("tcp", shm))) {
            e.allocate(1 << 20, "cpu:0");
            // a peer that sends garbage instead of proving the secret: 32 random bytes, then the end
            try (SocketChannel ch = SocketChannel.open(new InetSocketAddress("127.0.0.1", e.port()))) {
                ch.write(ByteBuffer.wrap(new byte[100]));
                ByteBuffer in = ByteBuffer.allocate(4096);
                int total = 0, n;
                ch.socket().setSoTimeout(5000);
                try {
                    while ((n = ch.read(in)) > 0) total += n;
                } catch (IOException reset) {
                    // closed
                }
                assertThat(total).as("bytes an unproven peer saw").isEqualTo(PeerAuth.CHALLENGE_BYTES);
            }
            // connections that never finish the handshake: beyond the cap, closed at once
            List<SocketChannel> stalled = new ArrayList<>();
            try {
                for (int i = 0; i < TransferServer.MAX_HANDSHAKING; i++)
                    stalled.add(SocketChannel.open(new InetSocketAddress("127.0.0.1", e.port())));
                Thread.sleep(300);
                long refusedBefore = e.refusedConnections();
                try (SocketChannel over = SocketChannel.open(new InetSocketAddress("127.0.0.1", e.port()))) {
                    ByteBuffer one = ByteBuffer.allocate(64);
                    int n;
                    try {
                        n = over.read(one);
                    } catch (IOException reset) {
                        n = -1;
                    }
                    assertThat(n)
                            .as("the connection over the cap gets not even a nonce")
                            .isEqualTo(-1);
                }
                assertThat(e.refusedConnections()).isGreaterThan(refusedBefore);
            } finally {
                for (SocketChannel s : stalled) s.close();
            }
        }
    }

    @Test
    void aFakeServerWithoutTheSecretGetsNothingItCouldAnswerAnotherServerWith() throws Exception {
        try (TransferEngine real = new TransferEngine(
                        "real", new SegmentMetadata.Embedded(), 1 << 20, Engines.config("tcp", shm));
                ServerSocketChannel fake = ServerSocketChannel.open()) {
            real.allocate(1 << 20, "cpu:0");
            fake.bind(new InetSocketAddress("127.0.0.1", 0));
            // a client of the cluster's that connects to the fake (say its descriptor was forged)
            CompletableFuture<byte[]> captured = new CompletableFuture<>();
            Thread.ofVirtual().start(() -> {
                try (SocketChannel victim = fake.accept();
                        SocketChannel toReal = SocketChannel.open(new InetSocketAddress("127.0.0.1", real.port()))) {
                    // relay the real server's nonce, so the client's proof is over it
                    ByteBuffer ns = ByteBuffer.allocate(PeerAuth.CHALLENGE_BYTES);
                    while (ns.hasRemaining()) toReal.read(ns);
                    victim.write(ns.flip());
                    ByteBuffer proof = ByteBuffer.allocate(512);
                    victim.socket().setSoTimeout(3000);
                    victim.read(proof);
                    byte[] got = Arrays.copyOf(proof.array(), proof.position());
                    toReal.write(ByteBuffer.wrap(got)); // and replay it to the real server
                    ByteBuffer answer = ByteBuffer.allocate(64);
                    toReal.socket().setSoTimeout(3000);
                    int n;
                    try {
                        n = toReal.read(answer);
                    } catch (IOException closed) {
                        n = -1;
                    }
                    captured.complete(n > 0 ? Arrays.copyOf(answer.array(), n) : new byte[0]);
                } catch (Exception ex) {
                    captured.completeExceptionally(ex);
                }
            });
            try (SocketChannel c = SocketChannel.open(
                    new InetSocketAddress("127.0.0.1", fake.socket().getLocalPort()))) {
                Assertions.assertThatThrownBy(() -> new PeerAuth(Engines.SECRET).connect(c, "client", "fake"))
                        .as("the client gets no proof from the fake, and stops")
                        .isInstanceOf(IOException.class);
            }
            assertThat(captured.get(10, TimeUnit.SECONDS))
                    .as("what the real server answered the relayed proof (meant for 'fake')")
                    .isEmpty();
        }
    }
}
