package dev.mooncakej.conductor.api;

import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.engine.generate.ModelGenerator;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** What the api package's tests share: one generated tiny model, and conductor settings over it. */
final class ApiFixtures {
    private static Path model;

    private ApiFixtures() {}

    static synchronized Path model() throws IOException {
        if (model == null) {
            model = Files.createTempDirectory("mooncakej-api").resolve("tiny.gguf");
            ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        }
        return model;
    }

    /** Defaults everywhere but the API-key settings (null: the default). */
    static ConductorProperties props(String apiKeysFile, Integer maxConcurrent, Long tokensPerMinute)
            throws IOException {
        return new ConductorProperties(
                model().toString(),
                null,
                List.of(),
                List.of(),
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                apiKeysFile,
                maxConcurrent,
                null,
                tokensPerMinute,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null);
    }

    static ConductorProperties props() throws IOException {
        return props(null, null, null);
    }
}
