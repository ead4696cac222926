package dev.mooncakej.kvtransfer.engine;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.InetAddress;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;

/** The shared-memory file behind an engine's segment, and the host it runs on. */
final class SegmentFile {
    private SegmentFile() {}

    /**
     * Creates the segment's file fresh (a link left at its path is removed, never followed), owner-only
     * (0600), and maps {@code bytes} of it in {@code arena}; on failure the arena is closed and the
     * error names the file and the key to check.
     */
    static MemorySegment create(Path file, long bytes, Arena arena) {
        try {
            Files.deleteIfExists(file); // never through a link left in its place: a fresh file, owner-only (0600)
            Files.createFile(file, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        } catch (IOException e) {
            arena.close();
            throw failed(file, e);
        }
        try (FileChannel ch =
                FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE, LinkOption.NOFOLLOW_LINKS)) {
            return ch.map(FileChannel.MapMode.READ_WRITE, 0, bytes, arena);
        } catch (IOException e) {
            arena.close();
            throw failed(file, e);
        }
    }

    private static UncheckedIOException failed(Path file, IOException e) {
        return new UncheckedIOException(
                "cannot create the segment file " + file + " (" + e.getMessage() + "): check transfer shm-dir", e);
    }

    /** This machine's identity (its boot id; peers with the same one may use shm), else its host name. */
    static String hostId() {
        try {
            return Files.readString(Path.of("/proc/sys/kernel/random/boot_id")).trim();
        } catch (IOException | RuntimeException e) {
            try {
                return InetAddress.getLocalHost().getHostName();
            } catch (IOException ex) {
                return "localhost";
            }
        }
    }

    /**
     * Unmaps the segment once no transport thread still holds it (a socket read into it in progress
     * ends when its channel closes, which takes a moment): tried for up to a second, then left to the
     * collector rather than failing the close.
     */
    static void closeArena(Arena arena) {
        for (int attempt = 0; ; attempt++) {
            try {
                arena.close();
                return;
            } catch (IllegalStateException busy) {
                if (attempt >= 100) return;
                try {
                    Thread.sleep(10);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
    }
}
