package dev.mooncakej.kvtransfer.engine;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.kvtransfer.PeerAuth;
import dev.mooncakej.kvtransfer.tcp.Wire;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Where a worker may read and write: descriptors only from the host registry (by segment name, no
 * links, owner alive) or etcd; shm files only at the path a segment's name derives in the configured
 * directory, never through a link; tcp writes only where the receiver's guard permits.
 */
class SegmentTrustTest {
    @TempDir
    Path shm;

    @TempDir
    Path elsewhere;

    @Test
    void theHostRegistryReadsDescriptorsByNameOnlyAndOnlyOfLiveOwners() throws Exception {
        LocalSegmentRegistry reg = new LocalSegmentRegistry(shm);
        try (TransferEngine e = new TransferEngine(
                "decode-a", reg, 1 << 16, Engines.config("shm", shm).withTransports(List.of("shm", "tcp")))) {
            e.allocate(4096, "cpu:0");
            Path file = shm.resolve("mooncakej-decode-a.json");
            assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(file)))
                    .isEqualTo("rw-------");
            assertThat(PosixFilePermissions.toString(
                            Files.getPosixFilePermissions(shm.resolve("mooncakej-decode-a.seg"))))
                    .isEqualTo("rw-------");
            LocalSegmentRegistry other = new LocalSegmentRegistry(shm); // another process's view of the same host
            assertThat(other.lookup("decode-a"))
                    .hasValueSatisfying(d -> assertThat(d.buffers()).hasSize(1));
            assertThat(other.lookup("../decode-a")).isEmpty();
            assertThat(other.lookup("decode-a/../../x")).isEmpty();

            String json = Files.readString(file);
            // a descriptor that names a segment file outside the directory is refused
            Files.writeString(
                    shm.resolve("mooncakej-evil.json"),
                    json.replace("\"name\":\"decode-a\"", "\"name\":\"evil\"")
                            .replace(
                                    shm.resolve("mooncakej-decode-a.seg").toString(),
                                    elsewhere.resolve("victim").toString()));
            assertThat(other.lookup("evil")).isEmpty();
            // a descriptor file that is a link is refused, even to a valid descriptor
            Path real = elsewhere.resolve("d.json");
            Files.writeString(
                    real,
                    json.replace("\"name\":\"decode-a\"", "\"name\":\"linked\"")
                            .replace("mooncakej-decode-a.seg", "mooncakej-linked.seg"));
            Files.createSymbolicLink(shm.resolve("mooncakej-linked.json"), real);
            assertThat(other.lookup("linked")).isEmpty();
            // a descriptor that says it is another segment is refused
            Files.writeString(shm.resolve("mooncakej-liar.json"), json);
            assertThat(other.lookup("liar")).isEmpty();
            // an owner that is gone: absent, and the entry is removed
            long dead = 4_000_000;
            while (ProcessHandle.of(dead).isPresent()) dead++;
            Files.writeString(
                    shm.resolve("mooncakej-gone.json"),
                    json.replaceFirst("\"pid\":\\d+", "\"pid\":" + dead)
                            .replace("\"name\":\"decode-a\"", "\"name\":\"gone\"")
                            .replace("mooncakej-decode-a.seg", "mooncakej-gone.seg"));
            assertThat(other.lookup("gone")).isEmpty();
            assertThat(shm.resolve("mooncakej-gone.json")).doesNotExist();
        }
        assertThat(shm.resolve("mooncakej-decode-a.json"))
                .as("removed on close")
                .doesNotExist();
    }

    @Test
    void shmNeverWritesThroughALinkOrOutsideTheDirectory() throws Exception {
        LocalSegmentRegistry reg = new LocalSegmentRegistry(shm);
        Path victim = Files.writeString(elsewhere.resolve("victim"), "x".repeat(1 << 16));
        byte[] before = Files.readAllBytes(victim);
        try (TransferEngine writer = new TransferEngine(
                        "writer", reg, 1 << 16, Engines.config("shm", shm).withTransports(List.of("shm", "tcp")));
                TransferEngine target = new TransferEngine(
                        "target", reg, 1 << 16, Engines.config("shm", shm).withTransports(List.of("shm", "tcp")))) {
            MemorySegment src = writer.allocate(4096, "cpu:0");
            target.allocate(1 << 15, "cpu:0");
            Engines.fillRandom(src, 1);
            // a legitimate write works over shm
            writer.transfer(List.of(
                    new TransferRequest(TransferRequest.Opcode.WRITE, writer.offsetOf(src), "target", 64, 4096)));
            assertThat(writer.transportFor("target")).isEqualTo("shm");
            // the target's segment file replaced by a link to the victim: a fresh engine refuses to map it over shm
            Path seg = shm.resolve("mooncakej-target.seg");
            Path moved = shm.resolve("moved.seg");
            Files.move(seg, moved);
            Files.createSymbolicLink(seg, victim);
            try (TransferEngine fresh = new TransferEngine(
                    "fresh", reg, 1 << 16, Engines.config("shm", shm).withTransports(List.of("shm", "tcp")))) {
                MemorySegment s2 = fresh.allocate(4096, "cpu:0");
                Engines.fillRandom(s2, 2);
                fresh.transfer(List.of(
                        new TransferRequest(TransferRequest.Opcode.WRITE, fresh.offsetOf(s2), "target", 64, 4096)));
                assertThat(fresh.transportFor("target"))
                        .as("no shm through a link: tcp instead")
                        .isEqualTo("tcp");
            }
            Files.delete(seg);
            Files.move(moved, seg);
        }
        assertThat(Files.readAllBytes(victim))
                .as("the file the link pointed at")
                .isEqualTo(before);
    }

    @Test
    void tcpWritesLandOnlyWhereTheReceiversGuardPermits() throws Exception {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        try (TransferEngine d = new TransferEngine("d", md, 1 << 16, Engines.config("tcp", shm));
                TransferEngine p = new TransferEngine("p", md, 1 << 16, Engines.config("tcp", shm))) {
            MemorySegment dst = d.allocate(1 << 15, "cpu:0");
            MemorySegment src = p.allocate(8192, "cpu:0");
            Engines.fillRandom(src, 3);
            long base = d.offsetOf(dst);
            d.guardWrites((writer, off, len) -> off >= base + 4096); // the first 4 KiB is fenced
            long accepted = d.writeGroupsAccepted();
            TransferBatch refused = p.submit(List.of(
                            new TransferRequest(TransferRequest.Opcode.WRITE, p.offsetOf(src), "d", base, 4096)))
                    .done()
                    .join();
            assertThat(refused.status(0)).isEqualTo(TransferBatch.Status.INVALID);
            assertThat(dst.asSlice(0, 4096).toArray(ValueLayout.JAVA_BYTE)).containsOnly((byte) 0);
            p.transfer(List.of(
                    new TransferRequest(TransferRequest.Opcode.WRITE, p.offsetOf(src), "d", base + 4096, 4096)));
            assertThat(Engines.crc(dst.asSlice(4096, 4096))).isEqualTo(Engines.crc(src.asSlice(0, 4096)));
            assertThat(d.writeGroupsAccepted()).isGreaterThan(accepted);
            assertThat(d.writesLandedThrough(d.writeGroupsAccepted()))
                    .as("nothing is landing once both replies are in")
                    .isTrue();
        }
    }

    /**
     * A writer stalled mid-group (a stopped process: its group's data never finishes arriving) holds
     * only its own fences: another writer's groups land and are counted landed, a guard permits a
     * range to its claimant only, and closing the stalled writer's connections drops its group.
     */
    @Test
    @Timeout(60)
    void aStalledWriterHoldsOnlyItsOwnFence() throws Exception {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        try (TransferEngine d = new TransferEngine("d", md, 1 << 16, Engines.config("tcp", shm));
                TransferEngine p = new TransferEngine("p", md, 1 << 16, Engines.config("tcp", shm))) {
            MemorySegment dst = d.allocate(1 << 15, "cpu:0");
            MemorySegment src = p.allocate(8192, "cpu:0");
            Engines.fillRandom(src, 5);
            long base = d.offsetOf(dst);
            // the first 8 KiB are "stuck"'s claim, the next 8 KiB p's
            d.guardWrites((writer, off, len) -> writer.equals("stuck")
                    ? off >= base && off + len <= base + 8192
                    : writer.equals("p") && off >= base + 8192 && off + len <= base + 16384);
            try (SocketChannel stuck = SocketChannel.open(new InetSocketAddress("127.0.0.1", d.port()))) {
                new PeerAuth(Engines.SECRET).connect(stuck, "stuck", "d");
                ByteBuffer ok = ByteBuffer.allocate(1);
                while (ok.hasRemaining()) stuck.read(ok);
                assertThat(ok.get(0)).isEqualTo(Wire.AUTH_OK);
                ByteBuffer group =
                        ByteBuffer.allocate(Wire.HEADER + Wire.ENTRY + 1000).order(ByteOrder.LITTLE_ENDIAN);
                Wire.putHeader(group, Wire.WRITE, 1, 1);
                group.putLong(0).putLong(base).putLong(4096); // 4096 bytes announced, 1000 sent: then it stops
                group.put(new byte[1000]).flip();
                while (group.hasRemaining()) stuck.write(group);
                long until = System.nanoTime() + 10_000_000_000L;
                while (d.writesLandedThrough(d.writeGroupsAccepted()) && System.nanoTime() < until) Thread.sleep(5);
                long stuckSeq = d.writeGroupsAccepted();
                assertThat(d.writesLandedThrough(stuckSeq))
                        .as("the stuck group is landing")
                        .isFalse();
                assertThat(d.writesLandedThrough("stuck", stuckSeq)).isFalse();

                p.transfer(List.of(
                        new TransferRequest(TransferRequest.Opcode.WRITE, p.offsetOf(src), "d", base + 8192, 8192)));
                long after = d.writeGroupsAccepted();
                assertThat(Engines.crc(dst.asSlice(8192, 8192))).isEqualTo(Engines.crc(src));
                assertThat(d.writesLandedThrough("p", after))
                        .as("p's groups have landed although stuck's has not")
                        .isTrue();
                assertThat(d.writesLandedThrough(after))
                        .as("the barrier over every writer still waits for stuck's group")
                        .isFalse();
                TransferBatch intoOthers = p.submit(List.of(
                                new TransferRequest(TransferRequest.Opcode.WRITE, p.offsetOf(src), "d", base, 4096)))
                        .done()
                        .join();
                assertThat(intoOthers.status(0))
                        .as("p writing into stuck's claim")
                        .isEqualTo(TransferBatch.Status.INVALID);

                assertThat(d.disconnectWriter("stuck"))
                        .as("stuck's connections closed")
                        .isEqualTo(1);
                until = System.nanoTime() + 10_000_000_000L;
                while (!d.writesLandedThrough("stuck", stuckSeq) && System.nanoTime() < until) Thread.sleep(5);
                assertThat(d.writesLandedThrough("stuck", stuckSeq))
                        .as("its group dropped")
                        .isTrue();
                assertThat(d.writesLandedThrough(d.writeGroupsAccepted())).isTrue();
            }
        }
    }

    @Test
    void theGroupHeaderHasItsPublishedBytes() {
        ByteBuffer b = ByteBuffer.allocate(Wire.HEADER).order(ByteOrder.LITTLE_ENDIAN);
        Wire.putHeader(b, Wire.WRITE, 3, 7);
        assertThat(HexFormat.of().formatHex(b.array())).isEqualTo("4d54453101000000" + "0300000007000000");
        assertThat(Wire.wellFormed(b)).isTrue();
        assertThat(Wire.op(b)).isEqualTo(Wire.WRITE);
        assertThat(Wire.count(b)).isEqualTo(3);
        assertThat(Wire.group(b)).isEqualTo(7);
        b.put(6, (byte) 1);
        assertThat(Wire.wellFormed(b)).as("padding must be zero").isFalse();
    }
}
