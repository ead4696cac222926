package dev.mooncakej.cli;

import dev.mooncakej.kvtransfer.engine.SegmentMetadata;
import dev.mooncakej.kvtransfer.engine.TransferEngine;
import dev.mooncakej.kvtransfer.engine.TransferRequest;
import dev.mooncakej.kvtransfer.spi.TransferConfig;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Pattern;
import org.HdrHistogram.ConcurrentHistogram;
import org.HdrHistogram.Histogram;
import picocli.CommandLine.Command;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.Option;
import tools.jackson.databind.json.JsonMapper;

/**
 * Transfer engine throughput and latency between two engines in this process (WRITEs, the prefill to
 * decode direction), beside the anchors measured in the same run: for tcp, iperf3 {@code -l 1M} on
 * loopback and a plain Java SocketChannel copy with 1 MiB direct buffers; for shm, a two-thread
 * {@code MemorySegment.copy}. Requests are submitted from {@code --threads} threads with at most
 * {@code --concurrency} batches (one request each) in flight.
 */
@Command(
        name = "transfer",
        description =
                "Transfer engine GB/s and batch latency over tcp or shm, beside iperf3 / SocketChannel / memory-copy "
                        + "anchors.")
final class TransferBench implements Runnable {
    @Option(names = "--transport", defaultValue = "tcp", description = "tcp or shm")
    String transport;

    @Option(
            names = "--total",
            defaultValue = "4GiB",
            converter = Size.class,
            description = "bytes to move (e.g. 4GiB, 512MiB)")
    long total;

    @Option(names = "--slice", defaultValue = "64KiB", converter = Size.class, description = "slice size of the engine")
    long slice;

    @Option(
            names = "--request",
            defaultValue = "64KiB",
            converter = Size.class,
            description = "bytes per request (one request per batch)")
    long request;

    @Option(names = "--concurrency", defaultValue = "64", description = "batches in flight")
    int concurrency;

    @Option(
            names = "--batch",
            defaultValue = "1",
            description = "requests per batch, at neighbouring offsets (the KV blocks of one request, as a worker "
                    + "sends them)")
    int batch;

    @Option(names = "--threads", defaultValue = "2", description = "submitting threads")
    int threads;

    @Option(
            names = "--copy-threads",
            defaultValue = "2",
            description = "the engine's shm copy threads (the submitting thread counts as one)")
    int copyThreads;

    @Option(
            names = "--latency-request",
            defaultValue = "128KiB",
            converter = Size.class,
            description = "request size of the latency run (the paper's setup), 0 to skip")
    long latencyRequest;

    @Option(names = "--connections", defaultValue = "2", description = "tcp connections per peer")
    int connections;

    @Option(
            names = "--warmup",
            converter = Size.class,
            description = "bytes moved the same way before the timed run (default: as many as --total; the JIT needs "
                    + "several GB on 2 cores to reach steady state)")
    Long warmup;

    @Option(
            names = "--buffer",
            defaultValue = "256MiB",
            converter = Size.class,
            description = "registered memory the requests cycle through on each side (a KV pool is large; a small one "
                    + "stays in cache)")
    long buffer;

    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    static final class Size implements ITypeConverter<Long> {
        @Override
        public Long convert(String v) {
            var m = Pattern.compile("(\\d+)\\s*(B|KiB|MiB|GiB|KB|MB|GB)?").matcher(v.trim());
            if (!m.matches())
                throw new IllegalArgumentException(
                        "size '" + v + "': expected a number with B, KiB, MiB or GiB (e.g. 64KiB)");
            long n = Long.parseLong(m.group(1));
            String u = m.group(2) == null ? "B" : m.group(2);
            return n
                    * switch (u) {
                        case "KiB" -> 1L << 10;
                        case "MiB" -> 1L << 20;
                        case "GiB" -> 1L << 30;
                        case "KB" -> 1000L;
                        case "MB" -> 1000_000L;
                        case "GB" -> 1000_000_000L;
                        default -> 1L;
                    };
        }
    }

    private record Run(double gbPerS, double p50Ms, double p99Ms, long batches) {}

    @Override
    public void run() {
        if (!transport.equals("tcp") && !transport.equals("shm"))
            throw new IllegalArgumentException("--transport " + transport + ": expected tcp or shm");
        if (request < 1 || request > total)
            throw new IllegalArgumentException("--request " + request + ": expected 1..--total");
        if (concurrency < 1 || threads < 1 || copyThreads < 1)
            throw new IllegalArgumentException("--concurrency, --threads and --copy-threads must be >= 1");
        if (batch < 1 || batch > 1024) throw new IllegalArgumentException("--batch " + batch + ": expected 1..1024");
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("machine", Machine.describe());
        out.put("transport", transport);
        out.put("total_bytes", total);
        out.put("slice_bytes", slice);
        out.put("request_bytes", request);
        out.put("concurrency", concurrency);
        out.put("requests_per_batch", batch);
        out.put("threads", threads);
        out.put("copy_threads", copyThreads);
        out.put("connections", connections);
        out.put("buffer_bytes", buffer);
        out.put("warmup_bytes", warmup == null ? total : warmup);
        try {
            Run main = engineRun(request);
            out.put("gb_per_s", round(main.gbPerS));
            out.put("p50_ms", round(main.p50Ms));
            out.put("p99_ms", round(main.p99Ms));
            if (transport.equals("tcp")) {
                double iperf = iperf3();
                double direct = socketChannelCopy();
                out.put("iperf3_gb_per_s", round(iperf));
                out.put("socketchannel_gb_per_s", round(direct));
                out.put("ratio_to_iperf3", round(main.gbPerS / iperf));
                out.put("ratio_to_socketchannel", round(main.gbPerS / direct));
            } else {
                double copy = twoThreadCopy();
                out.put("memcpy_2t_gb_per_s", round(copy));
                out.put("ratio_to_memcpy_2t", round(main.gbPerS / copy));
            }
            if (latencyRequest > 0) {
                Run lat = engineRun(latencyRequest);
                out.put("latency_request_bytes", latencyRequest);
                out.put("latency_gb_per_s", round(lat.gbPerS));
                out.put("latency_p50_ms", round(lat.p50Ms));
                out.put("latency_p99_ms", round(lat.p99Ms));
            }
        } catch (Exception e) {
            throw new IllegalStateException("transfer benchmark failed: " + e.getMessage(), e);
        }
        if (json) {
            System.out.println(JsonMapper.builder().build().writeValueAsString(out));
        } else {
            out.forEach((k, v) -> System.out.printf("%-26s %s%n", k, v));
        }
    }

    private static double round(double v) {
        return Math.round(v * 1000) / 1000.0;
    }

    private Run engineRun(long requestBytes) throws Exception {
        long buf = Math.min(total, buffer);
        buf = Math.max(requestBytes, buf / requestBytes * requestBytes);
        TransferConfig cfg = TransferConfig.defaults("bench-secret-" + System.nanoTime(), Path.of("/dev/shm"))
                .withTransports(List.of(transport))
                .withSlicing((int) slice, Math.min(16 * 1024, (int) slice))
                .withCopyThreads(copyThreads)
                .withConnections(connections, Math.max(connections, 256));
        SegmentMetadata md = new SegmentMetadata.Embedded();
        String tag = Long.toString(ProcessHandle.current().pid());
        try (TransferEngine a = new TransferEngine("bench-a-" + tag, md, buf, cfg);
                TransferEngine b = new TransferEngine("bench-b-" + tag, md, buf, cfg)) {
            a.allocate(buf, "cpu:0").fill((byte) 1);
            b.allocate(buf, "cpu:0").fill((byte) 0); // touch every page now, not during the run
            String target = b.name();
            long slots = buf / requestBytes;
            long n = Math.max(1, total / (requestBytes * batch));
            String label = transport + " " + human(requestBytes) + " requests";
            // warm-up: the same concurrent pattern (at least one pass over the buffer), so the JIT has
            // compiled the path before the timed run: on 2 shared cores that takes several GB of traffic
            long warm = warmup == null ? n : Math.max(0, warmup / (requestBytes * batch));
            if (warm > 0) loop(a, target, requestBytes, slots, Math.max(Math.min(n, slots), warm), "warm-up " + label);
            return loop(a, target, requestBytes, slots, n, label);
        }
    }

    /**
     * {@code n} WRITE batches of one request each, at most {@code concurrency} in flight, from {@code threads} threads.
     */
    private Run loop(TransferEngine a, String target, long requestBytes, long slots, long n, String label)
            throws Exception {
        Histogram lat = new ConcurrentHistogram(3);
        Semaphore window = new Semaphore(concurrency);
        AtomicLong next = new AtomicLong();
        AtomicLong done = new AtomicLong();
        AtomicLong failed = new AtomicLong();
        long t0 = System.nanoTime();
        Thread[] ts = new Thread[threads];
        for (int t = 0; t < threads; t++) {
            ts[t] = Thread.ofPlatform().start(() -> {
                long i;
                while ((i = next.getAndIncrement()) < n) {
                    window.acquireUninterruptibly();
                    long s0 = System.nanoTime();
                    List<TransferRequest> reqs = new ArrayList<>(batch);
                    for (int k = 0; k < batch; k++) {
                        long off = ((i * batch + k) % slots) * requestBytes;
                        reqs.add(new TransferRequest(TransferRequest.Opcode.WRITE, off, target, off, requestBytes));
                    }
                    a.submit(reqs).done().whenComplete((r, e) -> {
                        lat.recordValue((System.nanoTime() - s0) / 1000);
                        if (e != null || !r.allCompleted()) failed.incrementAndGet();
                        long d = done.incrementAndGet();
                        if (d % Math.max(1, n / 10) == 0) {
                            System.err.printf(
                                    "\r%s: %d%% (%.2f GB/s so far)%s",
                                    label,
                                    Math.round(d * 100.0 / n),
                                    d * requestBytes * batch / ((System.nanoTime() - t0) / 1e9) / 1e9,
                                    Boolean.getBoolean("mooncakej.bench.trace") ? "\n" : "");
                        }
                        window.release();
                    });
                }
            });
        }
        for (Thread t : ts) t.join();
        window.acquire(concurrency);
        double s = (System.nanoTime() - t0) / 1e9;
        System.err.println();
        if (failed.get() > 0) throw new IOException(failed.get() + " of " + n + " batches did not complete");
        return new Run(
                n * requestBytes * batch / s / 1e9,
                lat.getValueAtPercentile(50) / 1000.0,
                lat.getValueAtPercentile(99) / 1000.0,
                n);
    }

    static String human(long b) {
        return b % (1 << 20) == 0 ? (b >> 20) + " MiB" : b % 1024 == 0 ? (b >> 10) + " KiB" : b + " B";
    }

    /** iperf3 -l 1M on loopback, 1 stream, for as long as the engine run roughly takes. */
    private double iperf3() throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        System.err.println("anchor: iperf3 -l 1M on 127.0.0.1 ...");
        Process server = new ProcessBuilder("iperf3", "-s", "-1", "-p", String.valueOf(port), "-B", "127.0.0.1")
                .redirectErrorStream(true)
                .start();
        try {
            Thread.sleep(300);
            Process client = new ProcessBuilder(
                            "iperf3", "-c", "127.0.0.1", "-p", String.valueOf(port), "-l", "1M", "-t", "3", "-J")
                    .redirectErrorStream(true)
                    .start();
            String text = new String(client.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!client.waitFor(30, TimeUnit.SECONDS) || client.exitValue() != 0)
                throw new IOException("iperf3 failed: " + text);
            var tree = JsonMapper.builder().build().readTree(text);
            return tree.path("end").path("sum_received").path("bits_per_second").asDouble() / 8 / 1e9;
        } catch (IOException e) {
            throw new IOException(
                    "iperf3 anchor: " + e.getMessage()
                            + " (install it with apt-get install -y iperf3; ./mooncakej bench does)",
                    e);
        } finally {
            server.destroy();
        }
    }

    /** A plain Java SocketChannel copy on loopback with 1 MiB direct buffers, 1 connection: the direct path. */
    private double socketChannelCopy() throws Exception {
        System.err.println("anchor: SocketChannel copy, 1 MiB direct buffers ...");
        long bytes = Math.min(total, 4L << 30);
        try (ServerSocketChannel server = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0))) {
            Thread sink = Thread.ofPlatform().start(() -> {
                try (SocketChannel c = server.accept()) {
                    ByteBuffer b = ByteBuffer.allocateDirect(1 << 20);
                    long got = 0;
                    while (got < bytes) {
                        b.clear();
                        int r = c.read(b);
                        if (r < 0) break;
                        got += r;
                    }
                    c.write(ByteBuffer.wrap(new byte[] {1}));
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
            try (SocketChannel c = SocketChannel.open(server.getLocalAddress())) {
                ByteBuffer b = ByteBuffer.allocateDirect(1 << 20);
                long t0 = System.nanoTime();
                long sent = 0;
                while (sent < bytes) {
                    b.clear();
                    while (b.hasRemaining()) sent += c.write(b);
                }
                c.read(ByteBuffer.allocate(1));
                double s = (System.nanoTime() - t0) / 1e9;
                sink.join();
                return bytes / s / 1e9;
            }
        }
    }

    /** Two threads each copying half of the bytes between off-heap segments (MemorySegment.copy). */
    private double twoThreadCopy() throws Exception {
        System.err.println("anchor: two-thread MemorySegment.copy ...");
        long half = Math.min(total / 2, 512L << 20);
        long reps = Math.max(1, total / 2 / half);
        try (Arena arena = Arena.ofShared()) {
            MemorySegment[] src = {arena.allocate(half, 64), arena.allocate(half, 64)};
            MemorySegment[] dst = {arena.allocate(half, 64), arena.allocate(half, 64)};
            for (int i = 0; i < 2; i++) {
                src[i].fill((byte) 1);
                dst[i].fill((byte) 0);
            }
            long t0 = System.nanoTime();
            Thread[] ts = new Thread[2];
            for (int t = 0; t < 2; t++) {
                int k = t;
                ts[t] = Thread.ofPlatform().start(() -> {
                    for (long r = 0; r < reps; r++) MemorySegment.copy(src[k], 0, dst[k], 0, half);
                });
            }
            for (Thread t : ts) t.join();
            double s = (System.nanoTime() - t0) / 1e9;
            return 2 * half * reps / s / 1e9;
        }
    }
}
