package dev.mooncakej.engine;

import dev.mooncakej.engine.generate.ModelGenerator;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Generated models shared by tests of one JVM (written once into a temp folder). */
public final class TestModels {
    private static Path tiny;

    private TestModels() {}

    public static synchronized Path tiny() {
        if (tiny == null) {
            try {
                Path dir = Files.createTempDirectory("mooncakej-models");
                dir.toFile().deleteOnExit();
                tiny = dir.resolve("tiny.gguf");
                ModelGenerator.generate(ModelGenerator.Preset.TINY, tiny);
                tiny.toFile().deleteOnExit();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return tiny;
    }
}
