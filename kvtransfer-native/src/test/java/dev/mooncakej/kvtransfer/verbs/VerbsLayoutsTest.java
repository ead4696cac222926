package dev.mooncakej.kvtransfer.verbs;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Ground truth from the C compiler: a program compiled against rdma-core's {@code infiniband/verbs.h}
 * prints sizeof and offsetof of every struct and named field of {@link VerbsLayouts}; each must match.
 * (./mooncakej test installs libibverbs-dev when the header is missing.)
 */
@Timeout(value = 2, unit = TimeUnit.MINUTES)
class VerbsLayoutsTest {
    /** Java field names that differ from the C member path. */
    private static final Map<String, String> C_PATHS = Map.of("qp_type_xrc_remote_srqn", "qp_type.xrc.remote_srqn");

    @TempDir
    Path dir;

    @Test
    void everyLayoutMatchesTheCHeaders() throws Exception {
        Path header = Path.of("/usr/include/infiniband/verbs.h");
        assertThat(header)
                .as("rdma-core headers (apt-get install libibverbs-dev; ./mooncakej test installs them)")
                .exists();
        Map<String, Long> expected = new LinkedHashMap<>();
        StringBuilder c = new StringBuilder(
                "#include <infiniband/verbs.h>\n#include <stddef.h>\n#include <stdio.h>\nint main(void) {\n");
        for (StructLayout s : VerbsLayouts.ALL) {
            String struct = s.name().orElseThrow();
            expected.put(struct, s.byteSize());
            c.append("  printf(\"%s %zu\\n\", \"")
                    .append(struct)
                    .append("\", sizeof(struct ")
                    .append(struct)
                    .append("));\n");
            List<String[]> fields = new ArrayList<>();
            collect(s, "", 0, fields, expected, struct);
            for (String[] f : fields) {
                c.append("  printf(\"%s %zu\\n\", \"")
                        .append(struct)
                        .append('.')
                        .append(f[0])
                        .append("\", offsetof(struct ")
                        .append(struct)
                        .append(", ")
                        .append(f[1])
                        .append("));\n");
            }
        }
        c.append("  return 0;\n}\n");
        Path src = dir.resolve("layouts.c"), bin = dir.resolve("layouts");
        Files.writeString(src, c);
        Process cc = new ProcessBuilder("gcc", "-o", bin.toString(), src.toString())
                .redirectErrorStream(true)
                .start();
        String ccOut = new String(cc.getInputStream().readAllBytes());
        assertThat(cc.waitFor()).as("gcc: %s", ccOut).isZero();
        Process run = new ProcessBuilder(bin.toString()).start();
        Map<String, Long> actual = new HashMap<>();
        for (String line : new String(run.getInputStream().readAllBytes()).split("\n")) {
            String[] kv = line.trim().split(" ");
            if (kv.length == 2) actual.put(kv[0], Long.parseLong(kv[1]));
        }
        assertThat(run.waitFor()).isZero();
        int checked = 0;
        for (Map.Entry<String, Long> e : expected.entrySet()) {
            assertThat(actual.get(e.getKey()))
                    .as("C value of %s (Java layout says %d)", e.getKey(), e.getValue())
                    .isEqualTo(e.getValue());
            checked++;
        }
        System.out.println("verbs layouts: " + checked + " sizes and offsets match the C headers");
        assertThat(checked).isGreaterThan(100);
    }

    private static void collect(
            GroupLayout g, String prefix, long base, List<String[]> out, Map<String, Long> expected, String struct) {
        for (MemoryLayout m : g.memberLayouts()) {
            if (m.name().isEmpty()) continue; // padding
            String name = m.name().get();
            String javaPath = prefix + name;
            String cPath = C_PATHS.getOrDefault(name, javaPath);
            long offset = base + g.byteOffset(MemoryLayout.PathElement.groupElement(name));
            out.add(new String[] {javaPath, cPath});
            expected.put(struct + "." + javaPath, offset);
            if (m instanceof GroupLayout inner) collect(inner, javaPath + ".", offset, out, expected, struct);
        }
    }
}
