package dev.mooncakej.kvtransfer.spi;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.regex.Pattern;

/**
 * Where a segment's files live on one host, derived from the configured shm directory and the
 * segment's name only: {@code <dir>/mooncakej-<name>.seg} (the shared memory) and
 * {@code <dir>/mooncakej-<name>.json} (its descriptor, in the host-local registry). A path named in a
 * message or a descriptor is never opened: it must equal the derived one, be a regular file and not
 * a symbolic link.
 */
public final class SegmentFiles {
    public static final Pattern NAME = Pattern.compile("[A-Za-z0-9._-]{1,64}");

    private SegmentFiles() {}

    public static boolean isName(String name) {
        return name != null && NAME.matcher(name).matches() && !name.equals(".") && !name.equals("..");
    }

    public static String checkName(String name) {
        if (!isName(name))
            throw new IllegalArgumentException("segment name '" + name + "': expected 1-64 of [A-Za-z0-9._-]");
        return name;
    }

    public static Path segmentFile(Path dir, String name) {
        return dir.resolve("mooncakej-" + checkName(name) + ".seg");
    }

    public static Path descriptorFile(Path dir, String name) {
        return dir.resolve("mooncakej-" + checkName(name) + ".json");
    }

    /**
     * The segment file of {@code name} in {@code dir}, checked: {@code claimed} (what a descriptor
     * says) must be that very path, and it must be a regular file, not a symbolic link.
     */
    public static Path trustedSegmentFile(Path dir, String name, String claimed) throws IOException {
        Path p = segmentFile(dir, name);
        if (claimed != null && !Path.of(claimed).normalize().equals(p.normalize())) {
            throw new IOException("segment '" + name + "' names the file " + claimed + ": only " + p
                    + " (the shm directory, by segment name) is opened");
        }
        requireRegular(p);
        return p;
    }

    /** Throws unless {@code p} is a regular file that is not a symbolic link. */
    public static void requireRegular(Path p) throws IOException {
        BasicFileAttributes a = Files.readAttributes(p, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        if (a.isSymbolicLink()) throw new IOException(p + " is a symbolic link: refused");
        if (!a.isRegularFile()) throw new IOException(p + " is not a regular file: refused");
    }
}
