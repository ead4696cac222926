package dev.mooncakej.engine.gguf;

import java.nio.file.Path;

/** A GGUF file that cannot be used: the message names the file, the field and what was expected. */
public final class GgufFormatException extends RuntimeException {
    public GgufFormatException(Path file, String field, String problem) {
        super(file + ": " + field + ": " + problem);
    }
}
