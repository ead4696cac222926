package dev.mooncakej.kvtransfer.engine;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.InetAddress;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The transfer engine (Mooncake's Transfer Engine in Java terms; issue 5, in progress): this process's
 * segment, memory registered in it, and batches of READ/WRITE against other segments. Transports so
 * far: {@code shm} (same host: the segment is a shared-memory file that peers map, so a transfer is
 * one memory copy). Every request is checked against the local segment and the target's registered
 * buffers first; one outside is {@code INVALID} and touches nothing.
 */
public final class TransferEngine implements AutoCloseable {
    private final String name;
    private final SegmentMetadata metadata;
    private final Arena arena = Arena.ofShared();
    private final Path shmFile;
    private final MemorySegment segment;
    private final List<SegmentDescriptor.Buffer> buffers = new ArrayList<>();
    private final Map<String, MemorySegment> peers = new ConcurrentHashMap<>();
    private long next;

    /**
     * @param name          unique in the cluster
     * @param segmentBytes  size of this process's segment (allocate from it with {@link #allocate})
     * @param shmDir        where the segment file lives ({@code /dev/shm} on Linux)
     */
    public TransferEngine(String name, SegmentMetadata metadata, long segmentBytes, Path shmDir) {
        if (name == null || !name.matches("[A-Za-z0-9._-]{1,64}")) throw new IllegalArgumentException("segment name '" + name + "': expected 1-64 of [A-Za-z0-9._-]");
        if (segmentBytes <= 0) throw new IllegalArgumentException("segment size must be positive, got " + segmentBytes);
        this.name = name;
        this.metadata = metadata;
        this.shmFile = shmDir.resolve("mooncakej-" + name + ".seg");
        try (FileChannel ch = FileChannel.open(shmFile, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
            this.segment = ch.map(FileChannel.MapMode.READ_WRITE, 0, segmentBytes, arena);
        } catch (IOException e) {
            arena.close();
            throw new UncheckedIOException("cannot create the segment file " + shmFile, e);
        }
        publish();
    }

    public String name() { return name; }
    public MemorySegment segment() { return segment; }

    /** Registers a range of this segment (64-byte aligned) at {@code location} and publishes it; returns it. */
    public synchronized MemorySegment allocate(long bytes, String location) {
        long off = (next + 63) & ~63L;
        if (bytes <= 0 || off + bytes > segment.byteSize()) {
            throw new IllegalArgumentException("cannot register " + bytes + " bytes: the segment has " + (segment.byteSize() - off) + " left");
        }
        next = off + bytes;
        buffers.add(new SegmentDescriptor.Buffer(off, bytes, location));
        publish();
        return segment.asSlice(off, bytes);
    }

    private void publish() {
        String host;
        try {
            host = InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            host = "localhost";
        }
        metadata.publish(new SegmentDescriptor(name, host, shmFile.toString(), segment.byteSize(), buffers));
    }

    /** Submits a batch; the returned batch's future completes when every request has its status. */
    public TransferBatch submit(List<TransferRequest> requests) {
        TransferBatch batch = new TransferBatch(requests.size());
        for (int i = 0; i < requests.size(); i++) {
            TransferRequest r = requests.get(i);
            SegmentDescriptor peer = metadata.lookup(r.target()).orElse(null);
            if (peer == null) {
                batch.set(i, TransferBatch.Status.FAILED, "segment '" + r.target() + "' is not published");
                continue;
            }
            if (r.length() <= 0 || r.localOffset() < 0 || r.localOffset() > segment.byteSize() - r.length()) {
                batch.set(i, TransferBatch.Status.INVALID, "local range [" + r.localOffset() + ", +" + r.length() + ") is outside this segment of " + segment.byteSize() + " bytes");
                continue;
            }
            if (!peer.registered(r.targetOffset(), r.length())) {
                batch.set(i, TransferBatch.Status.INVALID, "remote range [" + r.targetOffset() + ", +" + r.length() + ") is not inside a registered buffer of '" + r.target() + "'");
                continue;
            }
            try {
                MemorySegment remote = map(peer);
                MemorySegment local = segment.asSlice(r.localOffset(), r.length());
                MemorySegment far = remote.asSlice(r.targetOffset(), r.length());
                if (r.opcode() == TransferRequest.Opcode.WRITE) MemorySegment.copy(local, 0, far, 0, r.length());
                else MemorySegment.copy(far, 0, local, 0, r.length());
                batch.set(i, TransferBatch.Status.COMPLETED, null);
            } catch (RuntimeException e) {
                batch.set(i, TransferBatch.Status.FAILED, "shm transfer failed: " + e.getMessage());
            }
        }
        batch.complete();
        return batch;
    }

    private MemorySegment map(SegmentDescriptor peer) {
        return peers.computeIfAbsent(peer.name(), n -> {
            try (FileChannel ch = FileChannel.open(Path.of(peer.shmFile()), StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                return ch.map(FileChannel.MapMode.READ_WRITE, 0, peer.length(), arena);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot map the segment file " + peer.shmFile() + " of '" + n + "'", e);
            }
        });
    }

    @Override
    public void close() {
        metadata.remove(name);
        arena.close();
        try {
            Files.deleteIfExists(shmFile);
        } catch (IOException ignored) {
            // best effort
        }
    }
}
