package dev.mooncakej.engine.gguf;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mooncakej.engine.TestModels;
import dev.mooncakej.engine.llama.LlamaEngine;
import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The GGUF reader: valid files read in place; every kind of bad file fails with a message naming the
 *  file, the field and what was expected, and never crashes the JVM. */
class GgufFileTest {
    @TempDir
    Path dir;

    @Test
    void readsMetadataAndTensorsOfAGeneratedModelInPlace() {
        try (GgufFile f = GgufFile.open(TestModels.tiny())) {
            assertThat(f.version()).isEqualTo(3);
            assertThat(f.getString("general.architecture")).isEqualTo("llama");
            assertThat(f.getLong("llama.embedding_length")).isEqualTo(64);
            assertThat(f.getArray("tokenizer.ggml.tokens", String[].class)).hasSizeGreaterThan(256);
            GgufTensor q = f.tensor("blk.0.attn_q.weight");
            assertThat(q.dims()).containsExactly(64, 64);
            assertThat(q.type()).isEqualTo(GgmlType.F32);
            assertThat(q.data().byteSize()).isEqualTo(64 * 64 * 4);
            assertThat(f.dataStart() % 32).isZero();
            for (GgufTensor t : f.tensors().values()) {
                assertThat((t.data().address()
                                        - f.tensors()
                                                .values()
                                                .iterator()
                                                .next()
                                                .data()
                                                .address())
                                % 32)
                        .as("alignment of " + t.name())
                        .isZero();
            }
        }
    }

    @Test
    void writerAndReaderAgreeOnEveryValueType() {
        Path p = dir.resolve("values.gguf");
        new GgufWriter()
                .putString("s", "héllo")
                .putU32("u", 4_000_000_000L)
                .putI32("i", -5)
                .putF32("f", 1.5f)
                .putBool("b", true)
                .putStrings("as", new String[] {"a", "", "ü"})
                .putI32s("ai", new int[] {1, -2})
                .putF32s("af", new float[] {0.25f})
                .addTensor("t", new long[] {32, 2}, GgmlType.Q8_0, new byte[68])
                .write(p);
        try (GgufFile f = GgufFile.open(p)) {
            assertThat(f.getString("s")).isEqualTo("héllo");
            assertThat(f.getLong("u")).isEqualTo(4_000_000_000L);
            assertThat(f.getLong("i")).isEqualTo(-5);
            assertThat(f.getFloat("f")).isEqualTo(1.5f);
            assertThat(f.metadata().get("b")).isEqualTo(true);
            assertThat(f.getArray("as", String[].class)).containsExactly("a", "", "ü");
            assertThat(f.getArray("ai", int[].class)).containsExactly(1, -2);
            assertThat(f.getArray("af", float[].class)).containsExactly(0.25f);
            assertThat(f.tensor("t").rows()).isEqualTo(2);
        }
    }

    @Test
    void missingFileSaysHowToGetOne() {
        assertThatThrownBy(() -> GgufFile.open(dir.resolve("nope.gguf")))
                .isInstanceOf(GgufFormatException.class)
                .hasMessageContaining("nope.gguf")
                .hasMessageContaining("model generate");
    }

    @Test
    void badMagicNamesTheField() throws IOException {
        Path p = dir.resolve("bad.gguf");
        Files.writeString(p, "this is not a model at all, just text");
        assertThatThrownBy(() -> GgufFile.open(p))
                .isInstanceOf(GgufFormatException.class)
                .hasMessageContaining(p.toString())
                .hasMessageContaining("magic")
                .hasMessageContaining("GGUF");
    }

    @Test
    void unsupportedVersionNamesIt() throws IOException {
        byte[] b = Files.readAllBytes(TestModels.tiny());
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(4, 7);
        Path p = write("v7.gguf", b);
        assertThatThrownBy(() -> GgufFile.open(p))
                .hasMessageContaining("version")
                .hasMessageContaining("found 7");
    }

    @Test
    void everyTruncationFailsCleanlyNamingAField() throws IOException {
        byte[] b = Files.readAllBytes(TestModels.tiny());
        long dataStart;
        try (GgufFile f = GgufFile.open(TestModels.tiny())) {
            dataStart = f.dataStart();
        }
        int[] cuts = {
            0, 3, 7, 15, 23, 40, 100, 1000, 5000, (int) dataStart - 1, (int) dataStart + 10, b.length / 2, b.length - 1
        };
        for (int cut : cuts) {
            Path p = write("cut" + cut + ".gguf", Arrays.copyOf(b, cut));
            assertThatThrownBy(() -> GgufFile.open(p))
                    .as("cut at %d", cut)
                    .isInstanceOf(GgufFormatException.class)
                    .hasMessageContaining(p.toString());
        }
    }

    @Test
    void tensorDataPastTheEndIsReportedAsTruncated() throws IOException {
        byte[] b = Files.readAllBytes(TestModels.tiny());
        Path p = write("short.gguf", Arrays.copyOf(b, b.length - 100));
        assertThatThrownBy(() -> GgufFile.open(p))
                .hasMessageContaining("output.weight")
                .hasMessageContaining("truncated");
    }

    @Test
    void unsupportedTensorTypeIsNamed() throws IOException {
        Path p = dir.resolve("iq2.gguf");
        new GgufWriter()
                .putString("general.architecture", "llama")
                .addTensor("w", new long[] {32}, GgmlType.F32, new byte[128])
                .write(p);
        byte[] b = Files.readAllBytes(p);
        int at = indexOf(b, "w".getBytes(StandardCharsets.UTF_8), 60) + 1 + 4 + 8; // name, n_dims, dims[0]
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(at, 16); // IQ2_XXS
        Path bad = write("iq2-bad.gguf", b);
        assertThatThrownBy(() -> GgufFile.open(bad))
                .hasMessageContaining("tensor 'w' type")
                .hasMessageContaining("IQ2_XXS")
                .hasMessageContaining("F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, BF16");
    }

    @Test
    void misalignedOrHugeOffsetsAreRefused() throws IOException {
        Path p = dir.resolve("off.gguf");
        new GgufWriter()
                .addTensor("w", new long[] {32}, GgmlType.F32, new byte[128])
                .write(p);
        byte[] b = Files.readAllBytes(p);
        int at = indexOf(b, "w".getBytes(StandardCharsets.UTF_8), 20) + 1 + 4 + 8 + 4; // ... type, then offset
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(at, 3);
        Path p1 = write("off3.gguf", b);
        assertThatThrownBy(() -> GgufFile.open(p1))
                .hasMessageContaining("offset")
                .hasMessageContaining("multiple of the alignment");
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(at, 1L << 40);
        Path p2 = write("offhuge.gguf", b);
        assertThatThrownBy(() -> GgufFile.open(p2))
                .hasMessageContaining("tensor 'w' data")
                .hasMessageContaining("truncated or corrupt");
    }

    @Test
    void hugeStringLengthOrArrayCountIsRefusedWithoutAllocating() throws IOException {
        Path p = dir.resolve("s.gguf");
        new GgufWriter().putStrings("k", new String[] {"x"}).write(p);
        byte[] b = Files.readAllBytes(p);
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        int countAt = 24 + 8 + 1 + 4 + 4; // header, key length, "k", value type, item type
        bb.putLong(countAt, Long.MAX_VALUE / 2);
        Path p1 = write("count.gguf", b);
        assertThatThrownBy(() -> GgufFile.open(p1)).hasMessageContaining("metadata 'k' count");
        bb.putLong(countAt, 1);
        bb.putLong(countAt + 8, 1L << 50); // the string's length
        Path p2 = write("len.gguf", b);
        assertThatThrownBy(() -> GgufFile.open(p2))
                .hasMessageContaining("metadata 'k'[0]")
                .hasMessageContaining("past the end");
    }

    @Test
    void unknownArchitectureIsNamedWithTheSupportedOnes() {
        Path p = dir.resolve("gpt.gguf");
        new GgufWriter()
                .putString("general.architecture", "gptneox")
                .putStrings("tokenizer.ggml.tokens", new String[] {"a"})
                .putString("tokenizer.ggml.model", "gpt2")
                .putStrings("tokenizer.ggml.merges", new String[0])
                .write(p);
        assertThatThrownBy(() -> new LlamaEngine(LlamaEngine.Config.of(p)))
                .hasMessageContaining(p.toString())
                .hasMessageContaining("general.architecture")
                .hasMessageContaining("gptneox")
                .hasMessageContaining("llama")
                .hasMessageContaining("qwen2");
    }

    @Test
    void missingTensorIsNamed() throws IOException {
        try (GgufFile f = GgufFile.open(TestModels.tiny())) {
            GgufWriter w = new GgufWriter();
            f.metadata().forEach((k, v) -> copy(w, k, v));
            f.tensors().values().stream()
                    .filter(t -> !t.name().equals("blk.1.ffn_up.weight"))
                    .forEach(t ->
                            w.addTensor(t.name(), t.dims(), t.type(), t.data().toArray(ValueLayout.JAVA_BYTE)));
            Path p = dir.resolve("missing.gguf");
            w.write(p);
            assertThatThrownBy(() -> new LlamaEngine(LlamaEngine.Config.of(p)))
                    .hasMessageContaining("blk.1.ffn_up.weight")
                    .hasMessageContaining("missing");
        }
    }

    /** Random corruption of the header region: every outcome is a clean load or a clear exception. */
    @Test
    void randomCorruptionNeverCrashesTheJvm() throws IOException {
        byte[] good = Files.readAllBytes(TestModels.tiny());
        long dataStart;
        try (GgufFile f = GgufFile.open(TestModels.tiny())) {
            dataStart = f.dataStart();
        }
        Random rnd = new Random(1234);
        int clean = 0, refused = 0;
        for (int i = 0; i < 300; i++) {
            byte[] b = good.clone();
            int flips = 1 + rnd.nextInt(4);
            for (int k = 0; k < flips; k++) b[rnd.nextInt((int) dataStart)] = (byte) rnd.nextInt(256);
            Path p = write("fuzz.gguf", b);
            try (LlamaEngine e =
                    new LlamaEngine(LlamaEngine.Config.of(p).withThreads(1).withKvBlocks(8))) {
                clean++;
            } catch (GgufFormatException
                    | IllegalArgumentException
                    | IllegalStateException
                    | ArithmeticException expected) {
                assertThat(expected.getMessage()).isNotBlank();
                refused++;
            }
        }
        assertThat(clean + refused).isEqualTo(300);
        assertThat(refused).isPositive();
    }

    private static void copy(GgufWriter w, String k, Object v) {
        switch (v) {
            case String s -> w.putString(k, s);
            case Long l -> w.putU32(k, l);
            case Integer i -> w.putI32(k, i);
            case Float f -> w.putF32(k, f);
            case Boolean b -> w.putBool(k, b);
            case String[] a -> w.putStrings(k, a);
            case int[] a -> w.putI32s(k, a);
            case float[] a -> w.putF32s(k, a);
            default -> throw new IllegalArgumentException(k);
        }
    }

    private Path write(String name, byte[] b) throws IOException {
        Path p = dir.resolve(name);
        Files.write(p, b);
        return p;
    }

    private static int indexOf(byte[] hay, byte[] needle, int from) {
        outer:
        for (int i = from; i <= hay.length - needle.length; i++) {
            for (int j = 0; j < needle.length; j++) if (hay[i + j] != needle[j]) continue outer;
            return i;
        }
        throw new IllegalStateException("not found");
    }
}
