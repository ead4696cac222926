package dev.mooncakej.decode;

import dev.mooncakej.engine.sampling.LogitAdjust;
import dev.mooncakej.engine.sampling.Sampler;
import dev.mooncakej.engine.spi.DecodeBatch;
import dev.mooncakej.engine.spi.InferenceEngine;
import dev.mooncakej.kvcache.wire.WorkerMessages;
import dev.mooncakej.kvcache.wire.WorkerMessages.TokenEvent;
import dev.mooncakej.web.VllmMetrics;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.locks.LockSupport;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.SmartLifecycle;

/**
 * The continuous-batching loop as an agent with a duty cycle (after Agrona's agents): each cycle reaps
 * stale reservations, admits joining requests, ends finished ones and runs one decode step for the
 * batch. A cycle that found no work parks with a backoff (up to {@value #MAX_IDLE_MICROS} us), so an
 * idle worker costs no CPU and still reaps every few milliseconds. Started and stopped with the app.
 */
public final class DecodeAgent implements SmartLifecycle {
    private static final Logger LOG = LoggerFactory.getLogger(DecodeAgent.class);
    static final long MAX_IDLE_MICROS = 2000;

    private final DecodeService service;
    private final InferenceEngine engine;
    private final int maxBatch;
    private final Timer tbt;
    private final VllmMetrics vllm;
    private final List<Reservation> active = new ArrayList<>();
    private final DecodeBatch batch;
    private final ExecutorService fenceCalls = Executors.newVirtualThreadPerTaskExecutor();
    private volatile int activeCount;
    private volatile boolean running;
    private volatile Thread thread;
    private long idleMicros;

    public DecodeAgent(DecodeService service, MeterRegistry meters) {
        this(service, meters, null);
    }

    /** @param vllm the vLLM-named metrics this agent records (inter-token latency, generated tokens), or null */
    public DecodeAgent(DecodeService service, MeterRegistry meters, VllmMetrics vllm) {
        this.service = service;
        this.vllm = vllm;
        this.engine = service.engine();
        this.maxBatch = service.props().maxBatch();
        this.batch = new DecodeBatch(maxBatch, engine.info().vocabSize());
        this.tbt = Timer.builder("mooncakej.decode.tbt")
                .description("time between tokens of one request, on the decode worker")
                .publishPercentileHistogram()
                .register(meters);
        for (String outcome : List.of("written", "skipped", "failed"))
            FunctionCounter.builder("mooncakej.decode.write.behind.blocks", service, s -> s.writtenBehind(outcome))
                    .description("blocks of running sequences put into the KV pool as they filled, by outcome")
                    .tag("outcome", outcome)
                    .register(meters);
        FunctionCounter.builder("mooncakej.decode.taken.blocks", service, DecodeService::takenBlocks)
                .description("blocks of moved streams this worker read from the KV pool itself (no prefill worker)")
                .register(meters);
    }

    public int activeCount() {
        return activeCount;
    }

    @Override
    public void start() {
        service.attach();
        running = true;
        thread = Thread.ofPlatform().name("decode-agent").daemon().start(this::run);
    }

    private void run() {
        while (running) {
            int work;
            try {
                work = doWork();
            } catch (RuntimeException e) {
                LOG.error("decode step failed; failing the requests of this batch", e);
                for (Reservation r : active) service.finished(r, "error: " + e.getMessage());
                active.clear();
                work = 1;
            }
            idle(work);
        }
    }

    /** One duty cycle; returns how much work it did (0: idle). */
    int doWork() {
        int work = service.reap(System.nanoTime(), fenceCalls::execute);
        for (Runnable job; (job = service.between.poll()) != null; work++) job.run(); // a take's last tokens
        while (active.size() < maxBatch) {
            Reservation r = service.joining.poll();
            if (r == null) break;
            active.add(r);
            work++;
        }
        var tokenizer = engine.tokenizer();
        for (int i = active.size() - 1; i >= 0; i--) {
            Reservation r = active.get(i);
            boolean eog = r.next >= 0 && tokenizer.isEndOfGeneration(r.next);
            boolean cancelled = r.cancelledAny();
            if (cancelled || eog || r.produced >= r.task.maxTokens() || r.handedOff()) {
                service.finished(
                        r,
                        cancelled ? "cancelled" : eog ? "stop" : r.produced >= r.task.maxTokens() ? "length" : "moved");
                active.remove(i);
                work++;
            }
        }
        activeCount = active.size();
        if (active.isEmpty()) return work;
        batch.clear();
        long context = 0;
        for (Reservation r : active) {
            batch.add(r.seq, r.next);
            context += r.seq.length();
        }
        long t0 = System.nanoTime();
        engine.decode(batch);
        long now = System.nanoTime();
        synchronized (stepStats) { // what the conductor's TBT fit learns from (pushed with the load)
            stepStats[0]++;
            stepStats[1] += now - t0;
            stepStats[2] += active.size();
            stepStats[3] += context;
        }
        int vocab = engine.info().vocabSize();
        for (int i = 0; i < active.size(); i++) {
            Reservation r = active.get(i);
            if (!batch.ok(i)) { // cannot happen with reservations of prompt + max tokens; kept as a guard
                r.next = -1;
                r.cancelled = true;
                r.sink.tryEmitNext(new TokenEvent(-1, 0f, "error: context exhausted", r.choice));
                continue;
            }
            r.fed(r.next); // its KV is in the sequence now
            int off = batch.logitsOffset(i);
            var s = r.task.sampling();
            LogitAdjust.bias(batch.logits(), off, s.logitBias());
            if (s.endForbidden(r.produced) && (r.constraint == null || r.constraint.canContinue()))
                LogitAdjust.forbidEnd(batch.logits(), off, tokenizer);
            if (r.constraint != null) r.constraint.mask(batch.logits(), off, vocab);
            int t = r.sampler.sample(batch.logits(), off, vocab);
            if (r.constraint != null) { // kept closable within max_tokens, then advanced
                // one token is kept for the end of sequence, so a closed value ends with "stop"
                t = r.constraint.steer(t, r.task.maxTokens() - r.produced - 2);
                r.constraint.accept(t);
            }
            r.next = t;
            if (tokenizer.isEndOfGeneration(t)) continue; // ends at the top of the next cycle
            float lp = r.task.sampling().logprobs() ? Sampler.logprob(batch.logits(), off, vocab, t) : 0f;
            r.produced++;
            tbt.record(Duration.ofNanos(now - r.lastTokenAt));
            if (vllm != null) {
                vllm.itl.record(Duration.ofNanos(now - r.lastTokenAt));
                vllm.generationTokens.increment();
            }
            r.lastTokenAt = now;
            r.sink.tryEmitNext(new TokenEvent(t, lp, null, r.choice));
        }
        for (Reservation r : active) service.writeBehind(r); // off this thread: a queue and a copy
        return work + active.size();
    }

    /** Steps since the last {@link #drainSteps}: count, nanoseconds, batch sum, context sum. */
    private final long[] stepStats = new long[4];

    /** The steps since the last call (and resets them): what the load report carries to the conductor. */
    public WorkerMessages.DecodeSteps drainSteps() {
        synchronized (stepStats) {
            var s = new WorkerMessages.DecodeSteps((int) stepStats[0], stepStats[1] / 1e9, stepStats[2], stepStats[3]);
            Arrays.fill(stepStats, 0);
            return s;
        }
    }

    private void idle(int work) {
        if (work > 0) {
            idleMicros = 0;
            return;
        }
        idleMicros = idleMicros == 0 ? 50 : Math.min(MAX_IDLE_MICROS, idleMicros * 2);
        LockSupport.parkNanos(idleMicros * 1000);
    }

    @Override
    public void stop() {
        running = false;
        service.stopWriteBehind();
        Thread t = thread;
        if (t != null) {
            LockSupport.unpark(t);
            try {
                t.join(2000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        fenceCalls.shutdownNow();
    }

    @Override
    public boolean isRunning() {
        return running;
    }

    /** After the web server stops taking requests, before the engine and segment close. */
    @Override
    public int getPhase() {
        return SmartLifecycle.DEFAULT_PHASE - 1000;
    }
}
