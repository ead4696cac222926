package dev.mooncakej.conductor.api;

import java.util.ArrayDeque;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import reactor.core.publisher.Mono;
import reactor.core.publisher.MonoSink;

/**
 * Where prompts are rendered and tokenized: off the event loop, on a fixed set of threads (as many as
 * cores), shared fairly between API keys. Each key has a queue of its own; a free thread takes the
 * next task of the next key in turn, so a key that floods the pool with long prompts delays another
 * key's prompt by at most one task per thread, instead of by its whole backlog. At most {@code
 * maxQueued} prompts wait in all (more: {@link RejectedExecutionException}, a 503 for the client),
 * and at most {@code maxQueuedPerKey} of one key. A task whose subscriber has gone (the client left)
 * before a thread takes it is dropped without running.
 */
public final class FairTokenizerPool implements AutoCloseable {
    private record Task(Callable<?> work, MonoSink<Object> sink, AtomicBoolean cancelled) {}

    private final LinkedHashMap<String, ArrayDeque<Task>> queues = new LinkedHashMap<>();
    private final int maxQueued;
    private final int maxQueuedPerKey;
    private final Thread[] threads;
    private int queued;
    private boolean closed;

    public FairTokenizerPool(int threads, int maxQueued, int maxQueuedPerKey) {
        if (threads < 1 || maxQueued < 1 || maxQueuedPerKey < 1)
            throw new IllegalArgumentException("tokenizer pool: threads=" + threads + ", max-queued=" + maxQueued
                    + ", max-queued-per-key=" + maxQueuedPerKey + ": expected positive numbers");
        this.maxQueued = maxQueued;
        this.maxQueuedPerKey = maxQueuedPerKey;
        this.threads = new Thread[threads];
        for (int i = 0; i < threads; i++) {
            this.threads[i] = Thread.ofPlatform().daemon().name("tokenize-" + i).start(this::run);
        }
    }

    /** Runs {@code work} for {@code key} on the pool; the Mono fails with RejectedExecutionException when full. */
    @SuppressWarnings("unchecked")
    public <T> Mono<T> submit(String key, Callable<T> work) {
        return Mono.<Object>create(sink -> {
                    AtomicBoolean cancelled = new AtomicBoolean();
                    sink.onCancel(() -> cancelled.set(true));
                    Task t = new Task(work, sink, cancelled);
                    synchronized (this) {
                        ArrayDeque<Task> q = queues.get(key);
                        if (closed || queued >= maxQueued || (q != null && q.size() >= maxQueuedPerKey)) {
                            sink.error(new RejectedExecutionException("tokenizer queue full for key " + key));
                            return;
                        }
                        if (q == null) queues.put(key, q = new ArrayDeque<>());
                        q.add(t);
                        queued++;
                        notify();
                    }
                })
                .map(o -> (T) o);
    }

    /** Prompts waiting for a thread now. */
    public synchronized int queued() {
        return queued;
    }

    private Task take() throws InterruptedException {
        synchronized (this) {
            while (queued == 0 && !closed) wait();
            if (closed) return null;
            Iterator<Map.Entry<String, ArrayDeque<Task>>> it = queues.entrySet().iterator();
            Map.Entry<String, ArrayDeque<Task>> first = it.next();
            String key = first.getKey();
            ArrayDeque<Task> q = first.getValue();
            Task t = q.poll();
            it.remove(); // the key goes to the back of the line, or leaves it when it has nothing left
            if (!q.isEmpty()) queues.put(key, q);
            queued--;
            return t;
        }
    }

    private void run() {
        try {
            for (Task t; (t = take()) != null; ) {
                if (t.cancelled().get()) continue;
                try {
                    t.sink().success(t.work().call());
                } catch (Throwable e) {
                    t.sink().error(e);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() {
        synchronized (this) {
            closed = true;
            for (ArrayDeque<Task> q : queues.values())
                for (Task t : q) t.sink().error(new RejectedExecutionException("the tokenizer pool is closed"));
            queues.clear();
            queued = 0;
            notifyAll();
        }
    }
}
