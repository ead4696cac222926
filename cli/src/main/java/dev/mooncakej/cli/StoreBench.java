package dev.mooncakej.cli;

import dev.mooncakej.kvstore.ReplicateConfig;
import dev.mooncakej.kvstore.StoreConfig;
import dev.mooncakej.kvstore.StoreMaster;
import dev.mooncakej.kvstore.Tier;
import dev.mooncakej.kvtransfer.engine.SegmentMetadata;
import dev.mooncakej.kvtransfer.engine.TransferBatch;
import dev.mooncakej.kvtransfer.engine.TransferEngine;
import dev.mooncakej.kvtransfer.engine.TransferRequest;
import dev.mooncakej.kvtransfer.spi.TransferConfig;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongFunction;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import tools.jackson.databind.json.JsonMapper;

/**
 * The KV pool's data path and its master, each beside its anchor in the same run. Puts and gets of
 * {@code --object}-byte objects from worker A into worker B's pool segment (put: the master
 * allocates, A WRITEs, the master ends it; get: the master hands out the replica under a lease, A
 * READs it), against the raw transfer engine moving the same bytes the same way with no master in
 * the path. The master runs in process here (on the product's path its API is one internal HTTP
 * call per batch of keys). Then the master alone on one thread: exists and get-replica-list
 * operations per second over a million stored keys, single and in batches of 1,024.
 */
@Command(
        name = "store",
        description = "KV pool put/get GB/s beside the raw transfer engine, and store master operations per second.")
final class StoreBench implements Runnable {
    @Option(names = "--transport", defaultValue = "shm", description = "tcp or shm")
    String transport;

    @Option(
            names = "--object",
            defaultValue = "1MiB",
            converter = TransferBench.Size.class,
            description = "bytes per object")
    long object;

    @Option(
            names = "--total",
            defaultValue = "2GiB",
            converter = TransferBench.Size.class,
            description = "bytes each timed run moves")
    long total;

    @Option(
            names = "--pool",
            defaultValue = "256MiB",
            converter = TransferBench.Size.class,
            description = "worker B's pool segment (objects cycle through it)")
    long pool;

    @Option(names = "--concurrency", defaultValue = "16", description = "objects in flight")
    int concurrency;

    @Option(names = "--keys", defaultValue = "1000000", description = "keys the master holds for the ops/s run")
    int keys;

    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    @Override
    public void run() {
        if (!transport.equals("tcp") && !transport.equals("shm"))
            throw new IllegalArgumentException("--transport " + transport + ": expected tcp or shm");
        if (object < 1 || object > pool)
            throw new IllegalArgumentException("--object " + object + ": expected 1..--pool");
        if (concurrency < 1) throw new IllegalArgumentException("--concurrency " + concurrency + ": expected >= 1");
        if (keys < 1) throw new IllegalArgumentException("--keys " + keys + ": expected >= 1");
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("machine", Machine.describe());
        out.put("transport", transport);
        out.put("object_bytes", object);
        out.put("total_bytes", total);
        out.put("concurrency", concurrency);
        try {
            dataPath(out);
            masterOps(out);
        } catch (Exception e) {
            throw new IllegalStateException("store benchmark failed: " + e.getMessage(), e);
        }
        if (json) System.out.println(JsonMapper.builder().build().writeValueAsString(out));
        else out.forEach((k, v) -> System.out.printf("%-30s %s%n", k, v));
    }

    private void dataPath(Map<String, Object> out) throws Exception {
        TransferConfig cfg = TransferConfig.defaults("bench-secret-" + System.nanoTime(), Path.of("/dev/shm"))
                .withTransports(List.of(transport))
                .withCopyThreads(2);
        SegmentMetadata md = new SegmentMetadata.Embedded();
        String tag = Long.toString(ProcessHandle.current().pid());
        StoreMaster master = new StoreMaster(StoreConfig.defaults(), System::currentTimeMillis);
        try (TransferEngine a = new TransferEngine("store-a-" + tag, md, pool, cfg);
                TransferEngine b = new TransferEngine("store-b-" + tag, md, pool, cfg)) {
            var src = a.allocate(pool, "cpu:0");
            src.fill((byte) 1);
            var dst = b.allocate(pool, "cpu:0");
            dst.fill((byte) 0);
            String seg = b.name() + ":pool";
            master.mountSegment("b", seg, Tier.DRAM, b.offsetOf(dst), pool);
            long slots = pool / object;
            long n = Math.max(1, total / object);
            AtomicLong key = new AtomicLong(1);
            // raw engine, WRITE then READ: the anchor
            LongFunction<CompletableFuture<Boolean>> rawWrite =
                    i -> move(a, TransferRequest.Opcode.WRITE, b.name(), i % slots);
            LongFunction<CompletableFuture<Boolean>> rawRead =
                    i -> move(a, TransferRequest.Opcode.READ, b.name(), i % slots);
            // through the store: put = start (allocate) + WRITE + end, the object removed after so the pool cycles
            LongFunction<CompletableFuture<Boolean>> put = i -> {
                long k = key.getAndIncrement();
                var started = master.putStart(k, object, ReplicateConfig.DEFAULT);
                if (started.status() != StoreMaster.PutStatus.STARTED) return CompletableFuture.completedFuture(false);
                long off = started.replicas().getFirst().offset();
                return a.submit(List.of(new TransferRequest(
                                TransferRequest.Opcode.WRITE, (i % slots) * object, b.name(), off, object)))
                        .done()
                        .thenApply(r -> {
                            boolean ok = r.allCompleted() && master.putEnd(k);
                            master.remove(k, true);
                            return ok;
                        });
            };
            loop(rawWrite, Math.min(n, 2 * slots), "warm-up");
            double rawW = loop(rawWrite, n, "raw engine WRITE " + TransferBench.human(object));
            loop(put, Math.min(n, 2 * slots), "warm-up put");
            double putGb = loop(put, n, "store put " + TransferBench.human(object));
            // objects stored for the gets: as many as the pool holds
            long[] stored = new long[(int) Math.min(slots, Integer.MAX_VALUE)];
            for (int s = 0; s < stored.length; s++) {
                long k = key.getAndIncrement();
                master.putStart(k, object, ReplicateConfig.DEFAULT);
                master.putEnd(k);
                stored[s] = k;
            }
            LongFunction<CompletableFuture<Boolean>> get = i -> {
                var got = master.get(stored[(int) (i % stored.length)]);
                if (got == null) return CompletableFuture.completedFuture(false);
                long off = got.replicas().getFirst().offset();
                return a.submit(List.of(new TransferRequest(
                                TransferRequest.Opcode.READ, (i % slots) * object, b.name(), off, object)))
                        .done()
                        .thenApply(TransferBatch::allCompleted);
            };
            loop(rawRead, Math.min(n, 2 * slots), "warm-up");
            double rawR = loop(rawRead, n, "raw engine READ " + TransferBench.human(object));
            loop(get, Math.min(n, 2 * slots), "warm-up get");
            double getGb = loop(get, n, "store get " + TransferBench.human(object));
            out.put("put_gb_per_s", round(putGb));
            out.put("raw_write_gb_per_s", round(rawW));
            out.put("put_ratio_to_raw", round(putGb / rawW));
            out.put("get_gb_per_s", round(getGb));
            out.put("raw_read_gb_per_s", round(rawR));
            out.put("get_ratio_to_raw", round(getGb / rawR));
        }
    }

    private CompletableFuture<Boolean> move(TransferEngine a, TransferRequest.Opcode op, String target, long slot) {
        long off = slot * object;
        return a.submit(List.of(new TransferRequest(op, off, target, off, object)))
                .done()
                .thenApply(TransferBatch::allCompleted);
    }

    /** {@code n} operations, at most {@code concurrency} in flight; returns GB/s. */
    private double loop(LongFunction<CompletableFuture<Boolean>> op, long n, String label) throws Exception {
        Semaphore window = new Semaphore(concurrency);
        AtomicLong failed = new AtomicLong(), done = new AtomicLong();
        long t0 = System.nanoTime();
        for (long i = 0; i < n; i++) {
            window.acquireUninterruptibly();
            op.apply(i).whenComplete((ok, e) -> {
                if (e != null || !ok) failed.incrementAndGet();
                long d = done.incrementAndGet();
                if (d % Math.max(1, n / 10) == 0) System.err.printf("\r%s: %d%%", label, Math.round(d * 100.0 / n));
                window.release();
            });
        }
        window.acquire(concurrency);
        double s = (System.nanoTime() - t0) / 1e9;
        System.err.println();
        if (failed.get() > 0) throw new IOException(label + ": " + failed.get() + " of " + n + " operations failed");
        return n * object / s / 1e9;
    }

    /** The master alone, one thread: exists and get over {@code keys} stored keys, single and batched. */
    private void masterOps(Map<String, Object> out) {
        StoreMaster m = new StoreMaster(StoreConfig.defaults(), System::currentTimeMillis);
        m.mountHeldSegment("w", "w", Tier.DRAM, 0, (long) keys * 64);
        for (int k = 0; k < keys; k++) m.held("w", "w", k, (long) k * 64, 64, Tier.DRAM);
        long[] batch = new long[1024];
        SplittableRandom rnd = new SplittableRandom(1);
        System.err.println("store master: exists and get over " + keys + " keys, one thread ...");
        out.put("master_keys", keys);
        for (int round = 0; round < 2; round++) { // the first round warms the JIT
            long ops = 2_000_000, hits = 0;
            long t0 = System.nanoTime();
            for (long i = 0; i < ops; i++) if (m.exists(rnd.nextInt(keys))) hits++;
            double exists = ops / ((System.nanoTime() - t0) / 1e9);
            t0 = System.nanoTime();
            for (long i = 0; i < ops; i++) if (m.get(rnd.nextInt(keys)) != null) hits++;
            double get = ops / ((System.nanoTime() - t0) / 1e9);
            t0 = System.nanoTime();
            long batched = 0;
            while (batched < ops) {
                for (int j = 0; j < batch.length; j++) batch[j] = rnd.nextInt(keys);
                hits += m.get(batch).size();
                batched += batch.length;
            }
            double batchGet = batched / ((System.nanoTime() - t0) / 1e9);
            if (hits == 0) throw new IllegalStateException("no key was found");
            out.put("master_exists_per_s", Math.round(exists));
            out.put("master_get_per_s", Math.round(get));
            out.put("master_batch_get_keys_per_s", Math.round(batchGet));
        }
    }

    private static double round(double v) {
        return Math.round(v * 1000) / 1000.0;
    }
}
