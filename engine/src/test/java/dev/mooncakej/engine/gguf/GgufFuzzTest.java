package dev.mooncakej.engine.gguf;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.generate.ModelGenerator;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.lifecycle.BeforeContainer;

/**
 * Fuzzing the GGUF reader (a model file is external input): a real model file with its header
 * region damaged at random, or cut short, either opens or fails with a GgufFormatException naming
 * what is wrong, never another exception and never a hang. jqwik, a fixed number of tries.
 */
class GgufFuzzTest {
    private static byte[] model;
    private static Path dir;

    @BeforeContainer
    static void make() throws Exception {
        dir = Files.createTempDirectory("mooncakej-gguf-fuzz");
        Path m = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, m);
        model = Files.readAllBytes(m);
    }

    private static void opensOrNamesTheProblem(byte[] bytes) throws Exception {
        Path f = Files.createTempFile(dir, "fuzz", ".gguf");
        try {
            Files.write(f, bytes);
            try (GgufFile g = GgufFile.open(f)) {
                assertThat(g.fileSize()).isEqualTo(bytes.length);
            } catch (GgufFormatException e) {
                assertThat(e.getMessage()).isNotBlank();
            }
        } finally {
            Files.deleteIfExists(f);
        }
    }

    @Property(tries = 400)
    void aDamagedHeaderOpensOrIsNamed(
            @ForAll @IntRange(min = 0, max = 4095) int position,
            @ForAll byte value,
            @ForAll @IntRange(min = 1, max = 8) int bytes)
            throws Exception {
        byte[] b = model.clone();
        for (int i = 0; i < bytes; i++) b[Math.min(b.length - 1, position + i)] ^= (byte) (value | 1);
        opensOrNamesTheProblem(b);
    }

    @Property(tries = 150)
    void aTruncatedFileIsNamed(@ForAll @IntRange(min = 0, max = 20000) int length) throws Exception {
        opensOrNamesTheProblem(Arrays.copyOf(model, Math.min(length, model.length - 1)));
    }
}
