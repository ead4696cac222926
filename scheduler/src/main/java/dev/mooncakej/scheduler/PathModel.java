package dev.mooncakej.scheduler;

/**
 * KV transfer time on one path (source worker to destination worker) with a congestion term: a
 * batch of {@code writes} writes moving {@code bytes} while {@code k} writes were in flight from the
 * source takes {@code perWrite * writes + bytes * (perByte + perByteCongestion * (k - 1))} seconds.
 * {@code 1 / perByte} is the path's bandwidth alone; each concurrent write from the same source adds
 * {@code perByteCongestion} per byte (the source's NIC or memory bus is shared).
 */
public record PathModel(double perWrite, double perByte, double perByteCongestion) {
    public double seconds(long writes, long bytes, double concurrency) {
        return perWrite * writes + bytes * (perByte + perByteCongestion * Math.max(0, concurrency - 1));
    }

    /** Bytes per second with {@code concurrency} writes in flight from the source. */
    public double bandwidth(double concurrency) {
        double perByteNow = perByte + perByteCongestion * Math.max(0, concurrency - 1);
        return perByteNow > 0 ? 1 / perByteNow : Double.POSITIVE_INFINITY;
    }

    /** Least squares (relative error) over samples (writes, bytes, mean concurrency, seconds). */
    public static PathModel fit(long[] writes, long[] bytes, double[] concurrency, double[] seconds) {
        if (writes.length < 3)
            throw new IllegalArgumentException(
                    "a transfer-path fit needs at least 3 samples of (writes, bytes, concurrency, seconds); got "
                            + writes.length);
        double[][] x = new double[writes.length][];
        for (int i = 0; i < writes.length; i++)
            x[i] = new double[] {writes[i], bytes[i], bytes[i] * Math.max(0, concurrency[i] - 1)};
        double[] c = LinearFit.solveRelative(x, seconds, "transfer-path");
        return new PathModel(c[0], c[1], c[2]);
    }
}
