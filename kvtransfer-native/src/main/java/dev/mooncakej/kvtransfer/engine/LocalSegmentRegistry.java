package dev.mooncakej.kvtransfer.engine;

import dev.mooncakej.kvtransfer.spi.SegmentDescriptor;
import dev.mooncakej.kvtransfer.spi.SegmentFiles;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.BiConsumer;
import java.util.logging.Logger;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The embedded segment registry of one host (what {@code ./mooncakej up} uses): each process writes
 * its descriptor to {@code <shm dir>/mooncakej-<name>.json} (mode 0600, replaced atomically) with its
 * pid, and peers look descriptors up there by segment name. That directory is the trust anchor on one
 * host, as it already holds the segments themselves: a descriptor is read only from the file its name
 * derives, never through a symbolic link, must name itself and its own segment file, and counts only
 * while its owner process lives (a killed worker's entry reads as absent and is removed).
 */
public final class LocalSegmentRegistry implements SegmentMetadata {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private record Cached(long modified, long size, SegmentDescriptor descriptor, long pid) {}

    private final Path dir;
    private final ConcurrentHashMap<String, Cached> cache = new ConcurrentHashMap<>();
    private final List<BiConsumer<String, SegmentDescriptor>> listeners = new CopyOnWriteArrayList<>();

    public LocalSegmentRegistry(Path dir) {
        if (!Files.isDirectory(dir))
            throw new IllegalArgumentException("segment registry directory " + dir + " does not exist");
        this.dir = dir;
    }

    public Path directory() {
        return dir;
    }

    @Override
    public void publish(SegmentDescriptor d) {
        Path target = SegmentFiles.descriptorFile(dir, d.name());
        Path tmp =
                dir.resolve(target.getFileName() + "." + ProcessHandle.current().pid() + ".tmp");
        String body = "{\"pid\":" + ProcessHandle.current().pid() + ",\"descriptor\":" + DescriptorJson.write(d) + "}";
        try {
            Files.deleteIfExists(tmp);
            Files.createFile(tmp, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            Files.writeString(tmp, body, StandardCharsets.UTF_8);
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new UncheckedIOException(
                    "cannot publish segment '" + d.name() + "' in " + dir + ": " + e.getMessage(), e);
        }
        cache.remove(d.name());
        listeners.forEach(l -> l.accept(d.name(), d));
    }

    @Override
    public Optional<SegmentDescriptor> lookup(String name) {
        if (!SegmentFiles.isName(name)) return Optional.empty();
        Path f = SegmentFiles.descriptorFile(dir, name);
        try {
            SegmentFiles.requireRegular(f);
            long
                    modified =
                            Files.getLastModifiedTime(f, LinkOption.NOFOLLOW_LINKS)
                                    .toMillis(),
                    size = Files.size(f);
            Cached c = cache.get(name);
            if (c == null || c.modified != modified || c.size != size) {
                c = read(f, name, modified, size);
                cache.put(name, c);
            }
            if (ProcessHandle.of(c.pid).map(ProcessHandle::isAlive).orElse(false)) return Optional.of(c.descriptor);
            cache.remove(name);
            Files.deleteIfExists(f); // its owner is gone
            return Optional.empty();
        } catch (NoSuchFileException e) {
            return Optional.empty();
        } catch (IOException | RuntimeException e) {
            Logger.getLogger(LocalSegmentRegistry.class.getName())
                    .warning("segment '" + name + "' refused: " + e.getMessage());
            return Optional.empty();
        }
    }

    private Cached read(Path f, String name, long modified, long size) throws IOException {
        if (size > 1 << 20) throw new IOException(f + " has " + size + " bytes: expected a descriptor under 1 MiB");
        JsonNode root = JSON.readTree(Files.readString(f, StandardCharsets.UTF_8));
        if (!root.path("pid").canConvertToLong() || !root.has("descriptor"))
            throw new IOException(f + ": expected {\"pid\":..., \"descriptor\":{...}}");
        SegmentDescriptor d = DescriptorJson.read(root.get("descriptor").toString(), f.toString());
        if (!d.name().equals(name))
            throw new IOException(f + " describes segment '" + d.name() + "', not '" + name + "'");
        if (d.shmFile() != null
                && !Path.of(d.shmFile())
                        .normalize()
                        .equals(SegmentFiles.segmentFile(dir, name).normalize())) {
            throw new IOException(
                    f + " names the segment file " + d.shmFile() + ": expected " + SegmentFiles.segmentFile(dir, name));
        }
        return new Cached(modified, size, d, root.get("pid").asLong());
    }

    @Override
    public void remove(String name) {
        try {
            if (Files.deleteIfExists(SegmentFiles.descriptorFile(dir, name)))
                listeners.forEach(l -> l.accept(name, null));
        } catch (IOException | RuntimeException ignored) {
            // best effort: a stale entry reads as absent once its owner is gone
        }
        cache.remove(name);
    }

    /** Changes published by this process (other processes' entries are read when looked up). */
    @Override
    public AutoCloseable watch(BiConsumer<String, SegmentDescriptor> listener) {
        listeners.add(listener);
        return () -> listeners.remove(listener);
    }
}
