package dev.mooncakej.engine.gguf;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Writes GGUF v3 files (the layout {@link GgufFile} documents): metadata in insertion order, then
 * tensor infos, then each tensor's bytes padded to the alignment (32).
 */
public final class GgufWriter {
    public static final int ALIGNMENT = 32;

    private record Kv(String key, GgufValueType type, Object value) {}

    private record Tensor(String name, long[] dims, GgmlType type, byte[] data) {}

    private final List<Kv> kvs = new ArrayList<>();
    private final List<Tensor> tensors = new ArrayList<>();

    /** A key written again replaces its earlier value (a GGUF file holds each key once). */
    private void put(Kv kv) {
        kvs.removeIf(k -> k.key().equals(kv.key()));
        kvs.add(kv);
    }

    public GgufWriter putString(String key, String v) {
        put(new Kv(key, GgufValueType.STRING, v));
        return this;
    }

    public GgufWriter putU32(String key, long v) {
        put(new Kv(key, GgufValueType.UINT32, v));
        return this;
    }

    public GgufWriter putI32(String key, int v) {
        put(new Kv(key, GgufValueType.INT32, v));
        return this;
    }

    public GgufWriter putF32(String key, float v) {
        put(new Kv(key, GgufValueType.FLOAT32, v));
        return this;
    }

    public GgufWriter putBool(String key, boolean v) {
        put(new Kv(key, GgufValueType.BOOL, v));
        return this;
    }

    public GgufWriter putStrings(String key, String[] v) {
        put(new Kv(key, GgufValueType.ARRAY, v));
        return this;
    }

    public GgufWriter putI32s(String key, int[] v) {
        put(new Kv(key, GgufValueType.ARRAY, v));
        return this;
    }

    public GgufWriter putF32s(String key, float[] v) {
        put(new Kv(key, GgufValueType.ARRAY, v));
        return this;
    }

    /** Adds a tensor; {@code dims} fastest first ({@code [in, out]} for a matrix {@code W[out][in]}). */
    public GgufWriter addTensor(String name, long[] dims, GgmlType type, byte[] data) {
        long elements = 1;
        for (long d : dims) elements *= d;
        if (type.byteSize(elements) != data.length) {
            throw new IllegalArgumentException("tensor " + name + ": expected " + type.byteSize(elements) + " bytes of "
                    + type + ", got " + data.length);
        }
        tensors.add(new Tensor(name, dims.clone(), type, data));
        return this;
    }

    public void write(Path out) {
        try (OutputStream os = new BufferedOutputStream(Files.newOutputStream(out), 1 << 20)) {
            Sink s = new Sink(os);
            s.u32(0x46554747).u32(3).u64(tensors.size()).u64(kvs.size());
            for (Kv kv : kvs) {
                s.str(kv.key()).u32(kv.type().id());
                writeValue(s, kv.type(), kv.value());
            }
            long offset = 0;
            for (Tensor t : tensors) {
                s.str(t.name()).u32(t.dims().length);
                for (long d : t.dims()) s.u64(d);
                s.u32(t.type().id()).u64(offset);
                offset = GgufFile.alignUp(offset + t.data().length, ALIGNMENT);
            }
            s.pad(ALIGNMENT);
            for (Tensor t : tensors) {
                s.bytes(t.data());
                s.pad(ALIGNMENT);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + out, e);
        }
    }

    private static void writeValue(Sink s, GgufValueType type, Object v) throws IOException {
        switch (type) {
            case STRING -> s.str((String) v);
            case UINT32 -> s.u32((int) (long) (Long) v);
            case INT32 -> s.u32((Integer) v);
            case FLOAT32 -> s.u32(Float.floatToRawIntBits((Float) v));
            case BOOL -> s.u8((Boolean) v ? 1 : 0);
            case ARRAY -> {
                switch (v) {
                    case String[] a -> {
                        s.u32(GgufValueType.STRING.id()).u64(a.length);
                        for (String x : a) s.str(x);
                    }
                    case int[] a -> {
                        s.u32(GgufValueType.INT32.id()).u64(a.length);
                        for (int x : a) s.u32(x);
                    }
                    case float[] a -> {
                        s.u32(GgufValueType.FLOAT32.id()).u64(a.length);
                        for (float x : a) s.u32(Float.floatToRawIntBits(x));
                    }
                    default -> throw new IllegalArgumentException("unsupported array " + v.getClass());
                }
            }
            default -> throw new IllegalArgumentException("unsupported value type " + type);
        }
    }

    /** Little-endian sink that counts bytes for padding. */
    private static final class Sink {
        private final OutputStream os;
        private final ByteBuffer buf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        private long written;

        Sink(OutputStream os) {
            this.os = os;
        }

        Sink u8(int v) throws IOException {
            os.write(v);
            written++;
            return this;
        }

        Sink u32(int v) throws IOException {
            buf.clear();
            buf.putInt(v);
            os.write(buf.array(), 0, 4);
            written += 4;
            return this;
        }

        Sink u64(long v) throws IOException {
            buf.clear();
            buf.putLong(v);
            os.write(buf.array(), 0, 8);
            written += 8;
            return this;
        }

        Sink str(String s) throws IOException {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            u64(b.length);
            return bytes(b);
        }

        Sink bytes(byte[] b) throws IOException {
            os.write(b);
            written += b.length;
            return this;
        }

        void pad(int alignment) throws IOException {
            while (written % alignment != 0) u8(0);
        }
    }
}
