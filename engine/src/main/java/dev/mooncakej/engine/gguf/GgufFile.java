package dev.mooncakej.engine.gguf;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A GGUF (v3, little endian) file memory-mapped into one {@link MemorySegment}.
 *
 * <pre>
 * offset 0   u32 magic "GGUF" | u32 version (3) | u64 tensor_count | u64 kv_count
 *            kv_count x { string key | u32 value_type | value }
 *            tensor_count x { string name | u32 n_dims | u64 dims[n_dims] | u32 ggml_type | u64 offset }
 *            padding to general.alignment (default 32)
 * data start tensor bytes, each at data_start + offset (offset a multiple of the alignment)
 * string = u64 length | UTF-8 bytes; array = u32 item_type | u64 count | items
 * </pre>
 *
 * Every read is bounds-checked against the file, so a truncated or corrupt file fails with a
 * {@link GgufFormatException} naming the field; it can never read outside the mapping.
 * Metadata values are boxed scalars, {@link String}, or primitive arrays ({@code String[]},
 * {@code int[]} for (u)int32, {@code long[]}, {@code float[]}, {@code double[]}, {@code byte[]} for
 * (u)int8 and bool, {@code short[]}).
 */
public final class GgufFile implements AutoCloseable {
    private static final int MAGIC = 0x46554747; // "GGUF" little endian
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F64 =
            ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int MAX_DIMS = 4;

    private final Path path;
    private final Arena arena;
    private final MemorySegment file;
    private final int version;
    private final Map<String, Object> metadata;
    private final Map<String, GgufTensor> tensors;
    private final long dataStart;
    private long pos;

    private GgufFile(Path path, Arena arena, MemorySegment file) {
        this.path = path;
        this.arena = arena;
        this.file = file;
        int magic = i32("magic");
        if (magic != MAGIC) {
            throw bad(
                    "magic",
                    String.format(
                            "expected the bytes 'GGUF' at offset 0, found 0x%08x; is this a GGUF model file?", magic));
        }
        this.version = i32("version");
        if (version != 3 && version != 2) {
            throw bad("version", "expected GGUF version 3 (or 2), found " + Integer.toUnsignedString(version));
        }
        long tensorCount = count("tensor_count", 8 + 4 + 8 + 4 + 8);
        long kvCount = count("metadata_kv_count", 8 + 4);
        Map<String, Object> md = new LinkedHashMap<>();
        for (long i = 0; i < kvCount; i++) {
            String key = string("metadata key #" + i);
            int typeId = i32("metadata '" + key + "' type");
            GgufValueType type = GgufValueType.byId(typeId);
            if (type == null)
                throw bad("metadata '" + key + "' type", "expected a value type id 0..12, found " + typeId);
            if (md.put(key, value(key, type)) != null)
                throw bad("metadata '" + key + "'", "appears twice; keys must be unique");
        }
        this.metadata = Collections.unmodifiableMap(md);
        long alignment = 32;
        if (md.containsKey("general.alignment")) {
            alignment = getLong("general.alignment");
            if (alignment <= 0 || alignment > (1 << 20) || Long.bitCount(alignment) != 1) {
                throw bad("general.alignment", "expected a power of two up to 1 MiB, found " + alignment);
            }
        }
        record Info(String name, long[] dims, GgmlType type, long offset) {}
        Info[] infos = new Info[(int) tensorCount];
        for (int t = 0; t < tensorCount; t++) {
            String name = string("tensor #" + t + " name");
            String field = "tensor '" + name + "'";
            int nDims = i32(field + " n_dims");
            if (nDims < 1 || nDims > MAX_DIMS)
                throw bad(field + " n_dims", "expected 1.." + MAX_DIMS + ", found " + nDims);
            long[] dims = new long[nDims];
            long elements = 1;
            for (int d = 0; d < nDims; d++) {
                dims[d] = i64(field + " dims[" + d + "]");
                if (dims[d] <= 0 || dims[d] > file.byteSize() * 2) {
                    throw bad(
                            field + " dims[" + d + "]",
                            "expected a positive size that fits the file, found " + dims[d]);
                }
                elements = Math.multiplyExact(elements, dims[d]);
            }
            int typeId = i32(field + " type");
            GgmlType type = GgmlType.byId(typeId);
            if (type == null) {
                throw bad(
                        field + " type",
                        "type " + GgmlType.nameOfUnsupported(typeId)
                                + " is not supported; expected one of " + GgmlType.supported()
                                + " (re-quantize the model to one of them)");
            }
            if (dims[0] % type.blockSize() != 0) {
                throw bad(
                        field + " dims[0]",
                        "expected a multiple of " + type.blockSize() + " for " + type + ", found " + dims[0]);
            }
            long offset = i64(field + " offset");
            if (offset < 0 || offset % alignment != 0) {
                throw bad(
                        field + " offset",
                        "expected a non-negative multiple of the alignment " + alignment + ", found " + offset);
            }
            infos[t] = new Info(name, dims, type, offset);
        }
        this.dataStart = alignUp(pos, alignment);
        Map<String, GgufTensor> ts = new LinkedHashMap<>();
        for (Info info : infos) {
            long size = info.type().byteSize(elementsOf(info.dims()));
            long start = dataStart + info.offset();
            if (start < 0 || start > file.byteSize() || size > file.byteSize() - start) {
                throw bad(
                        "tensor '" + info.name() + "' data",
                        "expected " + size + " bytes at file offset " + start + ", but the file has " + file.byteSize()
                                + " bytes (truncated or corrupt file)");
            }
            if (ts.put(info.name(), new GgufTensor(info.name(), info.dims(), info.type(), file.asSlice(start, size)))
                    != null) {
                throw bad("tensor '" + info.name() + "'", "appears twice; tensor names must be unique");
            }
        }
        this.tensors = Collections.unmodifiableMap(ts);
    }

    /** Maps and parses a GGUF file; fails with {@link GgufFormatException} naming what is wrong. */
    public static GgufFile open(Path path) {
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            MemorySegment seg = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
            return new GgufFile(path, arena, seg);
        } catch (NoSuchFileException e) {
            arena.close();
            throw new GgufFormatException(
                    path,
                    "file",
                    "does not exist; pass the path of a .gguf model (or generate one: ./mooncakej model generate "
                            + "--preset tiny --out FILE.gguf)");
        } catch (IOException e) {
            arena.close();
            throw new GgufFormatException(path, "file", "cannot be read: " + e.getMessage());
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    public Path path() {
        return path;
    }

    public int version() {
        return version;
    }

    public Map<String, Object> metadata() {
        return metadata;
    }

    public Map<String, GgufTensor> tensors() {
        return tensors;
    }

    public long dataStart() {
        return dataStart;
    }

    public long fileSize() {
        return file.byteSize();
    }

    /**
     * The model identity block keys derive from ({@code BlockKeys}): the model's name (general.name,
     * else the file name) and the file's size. The conductor and every worker compute it from their
     * own copy; two copies of one file agree, two different files do not.
     */
    public String keyIdentity() {
        return (has("general.name")
                        ? getString("general.name")
                        : path.getFileName().toString()) + "@" + fileSize();
    }

    /** {@link #keyIdentity()} of the GGUF file at {@code model}. */
    public static String keyIdentity(Path model) {
        try (GgufFile f = open(model)) {
            return f.keyIdentity();
        }
    }

    public boolean has(String key) {
        return metadata.containsKey(key);
    }

    public GgufTensor tensor(String name) {
        GgufTensor t = tensors.get(name);
        if (t == null) throw bad("tensor '" + name + "'", "is missing; the architecture needs it");
        return t;
    }

    public GgufTensor tensorOrNull(String name) {
        return tensors.get(name);
    }

    public String getString(String key) {
        Object v = require(key);
        if (v instanceof String s) return s;
        throw bad(key, "expected a string, found " + describe(v));
    }

    public long getLong(String key) {
        Object v = require(key);
        if (v instanceof Number n && !(v instanceof Float) && !(v instanceof Double)) return n.longValue();
        throw bad(key, "expected an integer, found " + describe(v));
    }

    /** An integer that must fit an int and lie in [min, max]. */
    public int getInt(String key, int min, int max) {
        long v = getLong(key);
        if (v < min || v > max) throw bad(key, "expected an integer in [" + min + ", " + max + "], found " + v);
        return (int) v;
    }

    public int getInt(String key, int min, int max, int defaultValue) {
        return has(key) ? getInt(key, min, max) : defaultValue;
    }

    public float getFloat(String key) {
        Object v = require(key);
        if (v instanceof Number n) return n.floatValue();
        throw bad(key, "expected a number, found " + describe(v));
    }

    public float getFloat(String key, float defaultValue) {
        return has(key) ? getFloat(key) : defaultValue;
    }

    public <T> T getArray(String key, Class<T> arrayType) {
        Object v = require(key);
        if (arrayType.isInstance(v)) return arrayType.cast(v);
        throw bad(
                key, "expected an array of " + arrayType.getComponentType().getSimpleName() + ", found " + describe(v));
    }

    public GgufFormatException bad(String field, String problem) {
        return new GgufFormatException(path, field, problem);
    }

    private Object require(String key) {
        Object v = metadata.get(key);
        if (v == null) throw bad(key, "is missing; the model needs this metadata key");
        return v;
    }

    private static String describe(Object v) {
        if (v == null) return "nothing";
        if (v.getClass().isArray())
            return "an array of " + v.getClass().getComponentType().getSimpleName();
        return v.getClass().getSimpleName() + " " + v;
    }

    @Override
    public void close() {
        arena.close();
    }

    // ---- bounds-checked cursor over the header ----

    private void need(long n, String field) {
        if (n < 0 || pos + n > file.byteSize()) {
            throw bad(
                    field,
                    "expected " + n + " more bytes at offset " + pos + " but the file ends at " + file.byteSize()
                            + " (truncated file?)");
        }
    }

    private int i32(String field) {
        need(4, field);
        int v = file.get(I32, pos);
        pos += 4;
        return v;
    }

    private long i64(String field) {
        need(8, field);
        long v = file.get(I64, pos);
        pos += 8;
        return v;
    }

    private long count(String field, int minBytesEach) {
        long n = i64(field);
        if (n < 0 || n > (file.byteSize() - pos) / minBytesEach) {
            throw bad(field, "expected a count that fits the file size, found " + Long.toUnsignedString(n));
        }
        return n;
    }

    private String string(String field) {
        long len = i64(field + " length");
        if (len < 0 || len > file.byteSize() - pos) {
            throw bad(field, "string length " + Long.toUnsignedString(len) + " runs past the end of the file");
        }
        byte[] bytes = file.asSlice(pos, len).toArray(ValueLayout.JAVA_BYTE);
        pos += len;
        try {
            return StandardCharsets.UTF_8
                    .newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes))
                    .toString();
        } catch (CharacterCodingException e) {
            throw bad(field, "expected UTF-8 text, found invalid bytes");
        }
    }

    private Object value(String key, GgufValueType type) {
        String field = "metadata '" + key + "'";
        return switch (type) {
            case UINT8 -> {
                need(1, field);
                yield (int) (file.get(ValueLayout.JAVA_BYTE, pos++) & 0xFF);
            }
            case INT8 -> {
                need(1, field);
                yield (int) file.get(ValueLayout.JAVA_BYTE, pos++);
            }
            case BOOL -> {
                need(1, field);
                yield file.get(ValueLayout.JAVA_BYTE, pos++) != 0;
            }
            case UINT16 -> {
                need(2, field);
                int v = file.get(I16, pos) & 0xFFFF;
                pos += 2;
                yield v;
            }
            case INT16 -> {
                need(2, field);
                int v = file.get(I16, pos);
                pos += 2;
                yield v;
            }
            case UINT32 -> Integer.toUnsignedLong(i32(field));
            case INT32 -> i32(field);
            case FLOAT32 -> {
                need(4, field);
                float v = file.get(F32, pos);
                pos += 4;
                yield v;
            }
            case UINT64, INT64 -> i64(field);
            case FLOAT64 -> {
                need(8, field);
                double v = file.get(F64, pos);
                pos += 8;
                yield v;
            }
            case STRING -> string(field);
            case ARRAY -> array(key);
        };
    }

    private Object array(String key) {
        String field = "metadata '" + key + "'";
        int itemTypeId = i32(field + " item type");
        GgufValueType item = GgufValueType.byId(itemTypeId);
        if (item == null || item == GgufValueType.ARRAY) {
            throw bad(field + " item type", "expected a scalar or string type id, found " + itemTypeId);
        }
        int n = Math.toIntExact(count(field + " count", item.minBytes()));
        switch (item) {
            case STRING -> {
                String[] a = new String[n];
                for (int i = 0; i < n; i++) a[i] = string(field + "[" + i + "]");
                return a;
            }
            case INT32, UINT32 -> {
                int[] a = new int[n];
                for (int i = 0; i < n; i++) a[i] = i32(field);
                return a;
            }
            case INT64, UINT64 -> {
                long[] a = new long[n];
                for (int i = 0; i < n; i++) a[i] = i64(field);
                return a;
            }
            case FLOAT32 -> {
                float[] a = new float[n];
                need(4L * n, field);
                for (int i = 0; i < n; i++) {
                    a[i] = file.get(F32, pos);
                    pos += 4;
                }
                return a;
            }
            case FLOAT64 -> {
                double[] a = new double[n];
                need(8L * n, field);
                for (int i = 0; i < n; i++) {
                    a[i] = file.get(F64, pos);
                    pos += 8;
                }
                return a;
            }
            case INT16, UINT16 -> {
                short[] a = new short[n];
                need(2L * n, field);
                for (int i = 0; i < n; i++) {
                    a[i] = file.get(I16, pos);
                    pos += 2;
                }
                return a;
            }
            default -> {
                need(n, field);
                byte[] a = file.asSlice(pos, n).toArray(ValueLayout.JAVA_BYTE);
                pos += n;
                return a;
            }
        }
    }

    private static long elementsOf(long[] dims) {
        long n = 1;
        for (long d : dims) n = Math.multiplyExact(n, d);
        return n;
    }

    static long alignUp(long v, long alignment) {
        return (v + alignment - 1) / alignment * alignment;
    }
}
