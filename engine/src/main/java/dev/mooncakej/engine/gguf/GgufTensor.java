package dev.mooncakej.engine.gguf;

import java.lang.foreign.MemorySegment;

/**
 * One tensor of a GGUF file, exposed without copying: {@code data} is a slice of the mapped file.
 *
 * @param name    tensor name, e.g. {@code blk.0.attn_q.weight}
 * @param dims    dimensions fastest first, as GGUF lists them: a matrix {@code W[out][in]} is {@code [in, out]}
 * @param type    element type
 * @param data    the tensor's bytes inside the mapped file
 */
public record GgufTensor(String name, long[] dims, GgmlType type, MemorySegment data) {

    public long elementCount() {
        long n = 1;
        for (long d : dims) n *= d;
        return n;
    }

    /** Size of the fastest dimension (the input width of a matrix). */
    public int cols() {
        return Math.toIntExact(dims[0]);
    }

    /** Product of the other dimensions (the output rows of a matrix). */
    public int rows() {
        return Math.toIntExact(elementCount() / dims[0]);
    }
}
