package dev.mooncakej.engine.tensor;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * Runs a {@link RangeTask} over {@code [0, n)} on a fixed set of threads: the calling thread takes
 * the first part, each worker one of the others. Workers spin briefly and then park between calls,
 * and nothing is allocated per call, so the forward pass stays allocation-free.
 *
 * <p>Not reentrant: one {@link #run} at a time (the engine's forward pass holds it).
 */
public final class ParallelExecutor implements AutoCloseable {

    /** Work over a range of indices; {@code worker} in [0, threads) selects per-thread scratch. */
    @FunctionalInterface
    public interface RangeTask {
        void run(int from, int to, int worker);
    }

    private static final long SPIN_NANOS = 50_000;

    private final int threads;
    private final Thread[] workers;
    private final AtomicInteger remaining = new AtomicInteger();
    private volatile long generation;
    private volatile RangeTask task;
    private volatile int n;
    private volatile boolean closed;
    private volatile Thread caller;
    private volatile RuntimeException failure;

    public ParallelExecutor(int threads) {
        if (threads < 1) throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        this.threads = threads;
        this.workers = new Thread[threads - 1];
        for (int w = 1; w < threads; w++) {
            final int id = w;
            Thread t = Thread.ofPlatform().daemon().name("engine-worker-" + w).unstarted(() -> loop(id));
            workers[w - 1] = t;
            t.start();
        }
    }

    public int threads() {
        return threads;
    }

    /** Runs {@code task} over [0, n), split into {@code threads} contiguous parts; returns when all are done. */
    public void run(int n, RangeTask task) {
        if (threads == 1 || n < 2) {
            task.run(0, n, 0);
            return;
        }
        this.task = task;
        this.n = n;
        this.caller = Thread.currentThread();
        this.failure = null;
        remaining.set(threads - 1);
        generation++; // publish
        for (Thread w : workers) LockSupport.unpark(w);
        runPart(task, n, 0);
        long spinUntil = System.nanoTime() + SPIN_NANOS;
        while (remaining.get() > 0) {
            if (System.nanoTime() < spinUntil) Thread.onSpinWait();
            else LockSupport.parkNanos(this, 100_000);
        }
        RuntimeException f = failure;
        if (f != null) throw f;
    }

    private void runPart(RangeTask t, int count, int part) {
        int chunk = (count + threads - 1) / threads;
        int from = Math.min(count, part * chunk);
        int to = Math.min(count, from + chunk);
        if (from < to) t.run(from, to, part);
    }

    private void loop(int id) {
        long seen = 0;
        while (true) {
            long spinUntil = System.nanoTime() + SPIN_NANOS;
            while (generation == seen && !closed) {
                if (System.nanoTime() < spinUntil) Thread.onSpinWait();
                else LockSupport.park(this);
            }
            if (closed) return;
            seen = generation;
            try {
                runPart(task, n, id);
            } catch (RuntimeException e) {
                failure = e;
            } catch (Error e) {
                failure = new IllegalStateException("engine worker failed", e);
            }
            if (remaining.decrementAndGet() == 0) LockSupport.unpark(caller);
        }
    }

    @Override
    public void close() {
        closed = true;
        for (Thread w : workers) LockSupport.unpark(w);
    }
}
