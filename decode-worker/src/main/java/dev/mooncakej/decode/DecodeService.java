package dev.mooncakej.decode;

import dev.mooncakej.decode.Reservation.State;
import dev.mooncakej.engine.constrain.TokenConstraint;
import dev.mooncakej.engine.kv.PagedKvCache;
import dev.mooncakej.engine.sampling.Sampler;
import dev.mooncakej.engine.sampling.SamplingParams;
import dev.mooncakej.engine.spi.InferenceEngine;
import dev.mooncakej.engine.spi.PrefillOptions;
import dev.mooncakej.engine.spi.Sequence;
import dev.mooncakej.kvcache.wire.KvControl;
import dev.mooncakej.kvcache.wire.WorkerMessages;
import dev.mooncakej.kvcache.wire.WorkerMessages.DecodeTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.KvTarget;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveResponse;
import dev.mooncakej.kvcache.wire.WorkerMessages.SequenceKeys;
import dev.mooncakej.kvcache.wire.WorkerMessages.TokenEvent;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerStatus;
import dev.mooncakej.kvstore.client.PoolSegment;
import dev.mooncakej.kvstore.client.StoreClient;
import dev.mooncakej.kvtransfer.engine.TransferEngine;
import dev.mooncakej.kvtransfer.engine.WorkerSegment;
import dev.mooncakej.worker.FirstToken;
import dev.mooncakej.worker.PoolReader;
import dev.mooncakej.worker.WorkerRuntime;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Schedulers;

/**
 * The decode worker's reservations: KV blocks that a prefill worker fills through the transfer
 * engine (the KV slab is this worker's registered segment, so writes land in place), the KV control
 * protocol ({@link KvControl}: claim, commit, abort, stopped) and the fence that keeps the blocks of
 * a dropped reservation from any other request until its writer has provably stopped. The continuous
 * batch itself runs in {@link DecodeAgent}. Built by {@link DecodeWorkerConfig} after the segment and
 * the engine; starts no thread.
 */
public final class DecodeService {
    private static final Logger LOG = LoggerFactory.getLogger(DecodeService.class);
    /** How often a fenced reservation's writer is asked again to confirm it stopped. */
    static final long ABORT_RETRY_NANOS = TimeUnit.SECONDS.toNanos(1);

    private final DecodeProperties props;
    private final WorkerRuntime runtime;
    private final InferenceEngine engine;
    private final PagedKvCache cache;
    private final TransferEngine transfer;
    private final WorkerSegment segment;
    private final Map<Long, Reservation> reservations = new ConcurrentHashMap<>();
    final LinkedBlockingQueue<Reservation> joining = new LinkedBlockingQueue<>();
    /** Per KV block: 1 while its reservation is CLAIMED (tcp writes into it are accepted), else 0. */
    private final AtomicIntegerArray writable;

    private final long slabOffset;
    private final long blockBytes;
    private final SequencePool sequences;
    private final PoolReader reader;
    private final WriterFence fence;
    private final AtomicLong fencedBlocks = new AtomicLong();
    private final AtomicLong released = new AtomicLong();
    private volatile Consumer<String> outcomes = o -> {};
    private volatile boolean draining;

    public DecodeService(DecodeProperties props, WorkerRuntime runtime) {
        this.props = props;
        this.runtime = runtime;
        this.engine = runtime.engine();
        this.cache = engine.kvCache();
        this.segment = runtime.segment();
        this.transfer = runtime.transfer();
        this.writable = new AtomicIntegerArray(cache.capacity());
        this.slabOffset = transfer.offsetOf(cache.slab());
        this.blockBytes = cache.layout().blockBytes();
        long kvTimeoutMillis = runtime.settings().kvTimeoutMillis();
        this.fence = new WriterFence(
                transfer, segment, kvTimeoutMillis, props.fenceDeadlineMillis(), this::releaseIfLandedLocked);
        this.sequences = new SequencePool(cache, engine.info().blockTokens(), kvTimeoutMillis);
        this.reader = new PoolReader(cache, transfer, Duration.ofMillis(kvTimeoutMillis));
        sequences.writeBehindShare(props.writeBehindShare());
    }

    /**
     * Wires the transfer engine to this service (control messages, the tcp write fence). Called once, before serving.
     */
    void attach() {
        transfer.onNotify(this::onControl);
        transfer.guardWrites(this::writePermitted);
    }

    public InferenceEngine engine() {
        return engine;
    }

    private volatile WorkerMessages.WorkerProfile profile;

    /**
     * Measures the engine (decode steps at a few batch sizes within {@code
     * mooncakej.decode.calibration-seconds}) and keeps the profile the conductor reads at admission.
     */
    void calibrate() {
        long t0 = System.nanoTime();
        profile = runtime.calibrate(256);
        LoggerFactory.getLogger(DecodeService.class)
                .info(
                        "calibrated the engine in {} ms: decode steps (batch, context, seconds) {}",
                        (System.nanoTime() - t0) / 1_000_000,
                        profile.decode().stream()
                                .map(c ->
                                        c.batch() + "/" + c.contextTokens() + ": " + String.format("%.4f", c.seconds()))
                                .toList());
    }

    /** This worker's block-key contract and measured costs ({@code GET /internal/profile}). */
    public WorkerMessages.WorkerProfile profile() {
        return profile;
    }

    public TransferEngine transfer() {
        return transfer;
    }

    DecodeProperties props() {
        return props;
    }

    void onOutcome(Consumer<String> c) {
        outcomes = c;
    }

    /**
     * Reserves blocks for the prompt and everything it may generate (capped at the context), so the
     * stream never fails midway for lack of KV; null when the pool has no room (the conductor answers
     * 429 or tries another worker).
     */
    public ReserveResponse reserve(long reservationId, int promptTokens, int maxTokens) {
        return reserve(reservationId, promptTokens, maxTokens, 1);
    }

    /** The most choices ({@code n}) one reservation may decode. */
    public static final int MAX_CHOICES = 16;

    /**
     * As above, for {@code choices} generations of the prompt ({@code n}; 0 is one): the prompt's
     * blocks once, and for each further choice its own copy of the prompt's last partial block and
     * blocks for what it generates, all reserved now, so no choice runs out midway.
     */
    public ReserveResponse reserve(long reservationId, int promptTokens, int maxTokens, int choices) {
        int ctx = engine.info().contextLength();
        if (promptTokens < 1 || promptTokens >= ctx)
            throw new IllegalArgumentException("prompt of " + promptTokens + " tokens: expected 1.." + (ctx - 1));
        if (maxTokens < 1) throw new IllegalArgumentException("max tokens " + maxTokens + ": expected >= 1");
        if (choices < 0 || choices > MAX_CHOICES)
            throw new IllegalArgumentException("choices " + choices + ": expected 1.." + MAX_CHOICES);
        int n = Math.max(1, choices);
        if (draining) return null;
        int total = (int) Math.min((long) promptTokens + maxTokens, ctx);
        Reservation known = reservations.get(reservationId);
        if (known != null) return again(known, promptTokens, total - promptTokens, n);
        Sequence seq = engine.newSequence();
        if (!seq.reserve(total)) {
            seq.release();
            return null;
        }
        int bt = seq.blockTokens();
        int perFork = (total + bt - 1) / bt - promptTokens / bt; // all but the prompt's full blocks
        int[] spare = new int[(n - 1) * perFork];
        for (int i = 0; i < spare.length; i++) {
            spare[i] = cache.allocate();
            if (spare[i] == PagedKvCache.NO_BLOCK) {
                for (int j = 0; j < i; j++) cache.release(spare[j]);
                seq.release();
                return null;
            }
        }
        Reservation r = new Reservation(reservationId, seq, promptTokens, total - promptTokens);
        r.choices = n;
        r.spare = spare;
        Reservation raced = reservations.putIfAbsent(reservationId, r);
        if (raced != null) {
            for (int b : spare) cache.release(b);
            seq.release();
            return again(raced, promptTokens, total - promptTokens, n);
        }
        return answer(r);
    }

    /**
     * The same reservation asked for again (the conductor retried a reserve whose answer it lost on
     * the way): the same answer while nothing has been written into it; anything else is refused.
     */
    private ReserveResponse again(Reservation r, int promptTokens, int maxTokens, int choices) {
        synchronized (r) {
            if (r.state != State.RESERVED
                    || r.promptTokens != promptTokens
                    || r.maxTokens != maxTokens
                    || r.choices != choices)
                throw new IllegalArgumentException("reservation " + r.id + " already exists");
            return answer(r);
        }
    }

    private ReserveResponse answer(Reservation r) {
        Sequence seq = r.seq;
        long[] offsets = new long[r.promptBlocks];
        for (int b = 0; b < offsets.length; b++) offsets[b] = transfer.offsetOf(cache.block(seq.blockTable()[b]));
        return new ReserveResponse(
                r.id,
                new KvTarget(transfer.name(), offsets, cache.layout().layerBytes()),
                seq.blockCount() + r.spare.length,
                seq.blockTokens());
    }

    /** A KV control message from a prefill worker (over the authenticated transfer control channel). */
    byte onControl(byte[] payload) {
        KvControl m;
        try {
            m = KvControl.decode(payload);
        } catch (IllegalArgumentException e) {
            LOG.warn("refused a malformed kv control message: {}", e.getMessage());
            return KvControl.MALFORMED;
        }
        Reservation r = reservations.get(m.reservationId());
        if (r == null) return m.type() == KvControl.STOPPED ? KvControl.OK : KvControl.UNKNOWN_RESERVATION;
        synchronized (r) {
            switch (m.type()) {
                case KvControl.CLAIM -> {
                    if (r.state == State.RESERVED) {
                        r.state = State.CLAIMED;
                        r.writer = m.writer();
                        setWritable(r, true);
                        return KvControl.OK;
                    }
                    return r.state == State.CLAIMED && m.writer().equals(r.writer)
                            ? KvControl.OK
                            : r.state == State.FENCED ? KvControl.FENCED : KvControl.REJECTED;
                }
                case KvControl.COMMIT -> {
                    if (r.state == State.FENCED) return KvControl.FENCED;
                    if (r.state != State.CLAIMED || m.argument() != r.promptTokens) return KvControl.REJECTED;
                    setWritable(r, false);
                    r.seq.setLength(r.promptTokens);
                    r.state = State.COMMITTED;
                    return KvControl.OK;
                }
                case KvControl.STOPPED -> {
                    if (r.state == State.FENCED) {
                        r.writerStopped = true;
                        releaseIfLandedLocked(r);
                    }
                    return KvControl.OK;
                }
                default -> {
                    return KvControl.REJECTED; // ABORT goes the other way
                }
            }
        }
    }

    /** Writers by the segment name they prove, numbered from 1 (a block's writable mark is its writer's number). */
    private final Map<String, Integer> writerIds = new ConcurrentHashMap<>();

    private final AtomicInteger lastWriterId = new AtomicInteger();

    /** Opens (its writer's number) or closes (0) a reservation's prompt blocks to tcp writes. */
    private void setWritable(Reservation r, boolean open) {
        int v = open ? writerIds.computeIfAbsent(r.writer, w -> lastWriterId.incrementAndGet()) : 0;
        for (int b = 0; b < r.promptBlocks; b++) writable.set(r.seq.blockTable()[b], v);
    }

    /**
     * The tcp write fence: every block the range touches must belong to a CLAIMED reservation of this
     * very writer (the segment name it proved in its handshake). A writer can therefore touch only its
     * own reservations, and a fence waits only for its own writer's groups (a stalled writer holds no
     * one else's blocks).
     */
    private boolean writePermitted(String writer, long offset, long length) {
        PoolSegment p = sequences.segment();
        if (p != null && p.contains(offset, length)) return true; // the KV pool's DRAM: the master places writers
        Integer id = writerIds.get(writer);
        long rel = offset - slabOffset;
        if (id == null || rel < 0 || length <= 0) return false;
        long first = rel / blockBytes, last = (rel + length - 1) / blockBytes;
        if (last >= writable.length()) return false;
        for (long b = first; b <= last; b++) if (writable.get((int) b) != id) return false;
        return true;
    }

    /**
     * Starts decoding a committed reservation; the flux ends with a finish event. Every value in the task is checked
     * first.
     */
    public Flux<TokenEvent> decode(DecodeTask task) {
        if (task.history() != null) return take(task);
        Reservation r = reservations.get(task.reservationId());
        if (r == null) throw new IllegalArgumentException("reservation " + task.reservationId() + " is not here");
        int vocab = engine.info().vocabSize();
        List<Reservation> forks;
        synchronized (r) {
            String bad = null;
            if (task.firstToken() < 0 || task.firstToken() >= vocab)
                bad = "first token " + task.firstToken() + ": expected 0.." + (vocab - 1);
            else if (task.promptTokens() != r.promptTokens)
                bad = "prompt tokens " + task.promptTokens() + ": the reservation holds " + r.promptTokens;
            else if (task.maxTokens() < 1 || task.maxTokens() > r.maxTokens)
                bad = "max tokens " + task.maxTokens() + ": expected 1.." + r.maxTokens + " (as reserved)";
            else if (task.sampling() == null) bad = "sampling is missing";
            else if (task.sampling().resumeAt() < 0
                    || task.sampling().resumeAt() >= engine.info().contextLength()
                    || task.sampling().resumeAt() > 0 && r.choices > 1)
                bad = "sampling.resumeAt " + task.sampling().resumeAt() + ": expected 0.."
                        + (engine.info().contextLength() - 1) + ", and 0 for several choices";
            else if (task.keys() != null) bad = checkKeys(task.keys(), r.promptTokens, vocab);
            if (bad == null) bad = checkDrawn(task, vocab);
            if (bad == null) bad = checkChoices(task.moreFirstTokens(), r.choices, vocab);
            if (bad != null) {
                dropLocked(r, "bad decode task");
                throw new IllegalArgumentException("decode task of reservation " + r.id + ": " + bad);
            }
            if (r.state == State.DECODING)
                throw new IllegalArgumentException("reservation " + r.id + " is already decoding");
            if (r.state != State.COMMITTED) {
                State was = r.state;
                dropLocked(r, "decode before commit");
                throw new IllegalStateException("reservation " + r.id + ": its KV has not arrived (state " + was + ")");
            }
            r.constraint = constraint(task, r, task.firstToken());
            forks = forks(task, r);
            r.state = State.DECODING;
        }
        r.task = task;
        start(r, task.firstToken(), vocab);
        r.sink = Sinks.many().unicast().onBackpressureBuffer();
        Reservation.Choices group = r.group;
        Flux<TokenEvent> flux = r.sink.asFlux().doOnCancel(() -> {
            r.cancelled = true;
            if (group != null) group.cancelled = true;
        });
        joining.add(r);
        for (Reservation f : forks) {
            f.sink = r.sink;
            joining.add(f);
        }
        return flux;
    }

    /**
     * A moved stream this worker takes itself (issue 28), with no prefill worker between: the leading
     * full blocks of its history that the KV pool holds are read into the reservation's own blocks, the
     * tokens after them computed here (the last partial block, and any block not yet in the pool: at
     * most {@link #TAKE_RECOMPUTE_BLOCKS} blocks' worth), its next token drawn as a prefill worker would
     * draw it (seed position, bias, schema replayed), and from there it decodes as any stream; that
     * token is the stream's first event. A pool that gives less (or none here) fails the task with
     * {@link NotTaken} before any event, and the reservation is released: the conductor then places the
     * stream through a prefill worker, whose engine is there for long prompts. Every value in the task
     * is checked first.
     */
    private Flux<TokenEvent> take(DecodeTask task) {
        Reservation r = reservations.get(task.reservationId());
        if (r == null) throw new IllegalArgumentException("reservation " + task.reservationId() + " is not here");
        int vocab = engine.info().vocabSize();
        int[] history = task.history();
        synchronized (r) {
            String bad = null;
            if (task.sampling() == null) bad = "sampling is missing";
            else if (task.promptTokens() != r.promptTokens)
                bad = "prompt tokens " + task.promptTokens() + ": the reservation holds " + r.promptTokens;
            else if (task.maxTokens() < 1 || task.maxTokens() > r.maxTokens)
                bad = "max tokens " + task.maxTokens() + ": expected 1.." + r.maxTokens + " (as reserved)";
            else if (r.choices != 1 || task.moreFirstTokens() != null)
                bad = "history for " + r.choices + " choices: a stream is taken one choice at a time";
            else if (task.keys() == null) bad = "history without keys: the pool is read by the prompt's block keys";
            else if (history.length != r.promptTokens)
                bad = "history of " + history.length + " tokens: expected the prompt's " + r.promptTokens;
            else if (task.sampling().resumeAt() < 0 || task.sampling().resumeAt() >= r.promptTokens)
                bad = "sampling.resumeAt " + task.sampling().resumeAt() + ": expected 0.." + (r.promptTokens - 1);
            if (bad == null) bad = checkKeys(task.keys(), r.promptTokens, vocab);
            for (int i = 0; bad == null && i < history.length; i++)
                if (history[i] < 0 || history[i] >= vocab)
                    bad = "history token " + history[i] + " at " + i + ": expected 0.." + (vocab - 1);
            if (bad == null) bad = checkDrawn(task, vocab);
            if (bad != null) {
                dropLocked(r, "bad take task");
                throw new IllegalArgumentException("decode task of reservation " + r.id + ": " + bad);
            }
            if (r.state != State.RESERVED)
                throw new IllegalArgumentException(
                        "reservation " + r.id + " is not free to take (state " + r.state + ")");
            r.state = State.TAKING;
        }
        AtomicBoolean began = new AtomicBoolean();
        return Mono.fromCallable(() -> takeKv(r, task))
                .subscribeOn(Schedulers.fromExecutor(TAKERS))
                .flatMapMany(d -> {
                    began.set(true);
                    DecodeTask then = new DecodeTask(
                            task.reservationId(),
                            d.token(),
                            task.promptTokens(),
                            task.maxTokens(),
                            task.sampling(),
                            task.keys(),
                            null,
                            task.movable(),
                            task.drawn());
                    return Flux.concat(Flux.just(TokenEvent.token(d.token(), d.logprob())), decode(then));
                })
                // the conductor went away while it was taken: a task that ended (the conductor counts it taken);
                // the take itself releases the reservation once its reads have landed
                .doOnCancel(() -> {
                    if (!began.get()) outcomes.accept("cancelled");
                });
    }

    /** Takes run on virtual threads: their pool reads and the engine's lock are waits, not work. */
    private static final Executor TAKERS = Executors.newVirtualThreadPerTaskExecutor();

    /**
     * Work the agent runs on its own thread between two decode steps: a take's few tokens computed there
     * wait at most one step, where a second thread would contend for the engine's lock with an agent
     * that takes it back step after step.
     */
    final LinkedBlockingQueue<Runnable> between = new LinkedBlockingQueue<>();

    /** Computes {@code tokens[seq.length()..]} between two decode steps (the agent's thread); false: no room. */
    private boolean betweenSteps(Sequence seq, int[] tokens, float[] logits) throws Exception {
        CompletableFuture<Boolean> done = new CompletableFuture<>();
        AtomicBoolean claimed = new AtomicBoolean(); // by the agent (it computes) or by a timeout (it never will)
        between.add(() -> {
            if (!claimed.compareAndSet(false, true)) return;
            try {
                done.complete(engine.prefill(seq, tokens, PrefillOptions.DEFAULT, logits));
            } catch (RuntimeException e) {
                done.completeExceptionally(e);
            }
        });
        try {
            try {
                return done.get(runtime.settings().kvTimeoutMillis(), TimeUnit.MILLISECONDS);
            } catch (TimeoutException e) {
                if (claimed.compareAndSet(false, true)) // never started: its blocks may be released now
                throw new NotTaken("the decode agent did not compute the take's last tokens in time");
                return done.get(); // under way on the agent: its blocks are written until it ends
            }
        } catch (ExecutionException e) {
            throw e.getCause() instanceof RuntimeException re ? re : e;
        }
    }

    /** The most blocks' worth of tokens a take computes here (more: a prefill worker places the stream). */
    static final int TAKE_RECOMPUTE_BLOCKS = 4;

    /** A moved stream this worker could not take from the pool: the conductor places it through a prefill worker. */
    static final class NotTaken extends IllegalStateException {
        NotTaken(String message) {
            super(message);
        }
    }

    /** The take itself, off the caller's thread; the reservation is COMMITTED after it, or released. */
    private FirstToken.Drawn takeKv(Reservation r, DecodeTask task) throws Exception {
        boolean done = false;
        try {
            int bt = engine.info().blockTokens(), vocab = engine.info().vocabSize();
            int[] history = task.history();
            int n = history.length, want = (n - 1) / bt; // one token at least is computed: its logits draw the next
            long t0 = System.nanoTime(), tLocated = t0, tPinned = t0;
            int full = 0;
            if (want > 0) {
                StoreClient st = sequences.store();
                if (st == null) throw new NotTaken("this worker has no KV pool to take reservation " + r.id + " from");
                long[] keys = Arrays.copyOf(task.keys().promptKeys(), want);
                PoolReader.Sources s = reader.locate(st, keys, r.id, 0); // what is missing is computed here
                tLocated = System.nanoTime();
                if (s != null && !s.chosen().isEmpty()) {
                    PoolReader.Pinned p = reader.pin(s, r.id);
                    tPinned = System.nanoTime();
                    int[] ids = Arrays.copyOf(r.seq.blockTable(), Math.min(want, p.usable()));
                    full = reader.read(s, p, ids, r.id); // lifts the pins whatever happened
                }
            }
            if (n - full * bt > TAKE_RECOMPUTE_BLOCKS * bt)
                throw new NotTaken("the KV pool gave " + full + " of the " + want + " blocks of reservation " + r.id
                        + ": " + (n - full * bt) + " tokens would be computed here, more than "
                        + TAKE_RECOMPUTE_BLOCKS * bt);
            long tRead = System.nanoTime();
            r.seq.setLength(full * bt); // the positions before are in the blocks read
            float[] logits = new float[vocab];
            if (!betweenSteps(r.seq, history, logits))
                throw new IllegalStateException("reservation " + r.id + ": no room for its last tokens");
            var s = task.sampling();
            TokenConstraint c = null;
            if (s.schema() != null) { // the first token obeys the schema too, where the lost placement stood
                c = TokenConstraint.of(engine.tokenizer(), s.schema(), s.strict());
                for (int t : task.drawn() == null ? new int[0] : task.drawn())
                    if (!c.accept(t))
                        throw new IllegalArgumentException("decode task of reservation " + r.id + ": drawn token " + t
                                + " does not fit the response_format schema");
            }
            FirstToken.Drawn d = FirstToken.draw(s, logits, engine.tokenizer(), c, task.maxTokens());
            synchronized (r) {
                if (r.dropWhenTaken) {
                    releaseLocked(r, "dropped while taken");
                    throw new IllegalStateException("reservation " + r.id + " was dropped while it was taken");
                }
                r.state = State.COMMITTED;
            }
            taken.addAndGet(full);
            long now = System.nanoTime();
            LOG.info(
                    "took reservation {} from the KV pool: {} blocks read, {} tokens computed, in {} ms"
                            + " (lookup {}, pins {}, reads {}, compute {})",
                    r.id,
                    full,
                    n - full * bt,
                    (now - t0) / 1_000_000,
                    (tLocated - t0) / 1_000_000,
                    (tPinned - tLocated) / 1_000_000,
                    (tRead - Math.max(tPinned, tLocated)) / 1_000_000,
                    (now - tRead) / 1_000_000);
            done = true;
            return d;
        } finally {
            if (!done)
                synchronized (r) {
                    if (r.state == State.TAKING) releaseLocked(r, "not taken");
                }
        }
    }

    /** Blocks of moved streams this worker read from the KV pool itself. */
    private final AtomicLong taken = new AtomicLong();

    long takenBlocks() {
        return taken.get();
    }

    /** Readies {@code r} (a reservation or a fork) to decode after {@code first}, under its own seed. */
    private void start(Reservation r, int first, int vocab) {
        var s = r.task.sampling();
        long[] at = s.generatorAt(r.choice, 1); // the answer's next token on: its seed, the draws made before
        long seed = at == null ? System.nanoTime() + r.choice : at[0];
        r.sampler = new Sampler(
                new SamplingParams(
                        s.temperature(),
                        s.topP(),
                        s.topK(),
                        seed,
                        Math.max(1, r.task.maxTokens()),
                        List.of(),
                        s.logprobs()),
                vocab);
        if (at != null) r.sampler.skip(at[1]);
        r.next = first;
        r.produced = 1; // the first token came from the prefill
        r.lastTokenAt = System.nanoTime();
        r.decodingSince = r.lastTokenAt;
    }

    /**
     * The decode task's further first tokens against the reservation's choices: null when they agree,
     * else what is wrong.
     */
    private static String checkChoices(int[] more, int choices, int vocab) {
        int got = more == null ? 0 : more.length;
        if (got != choices - 1)
            return got + " more first tokens: the reservation was made for " + choices + " choices, expected "
                    + (choices - 1);
        if (more != null)
            for (int t : more) if (t < 0 || t >= vocab) return "first token " + t + ": expected 0.." + (vocab - 1);
        return null;
    }

    /**
     * The forks of a reservation made for several choices, each a sequence of its own that shares the
     * prompt's full blocks (a reference each, so the blocks live until the last choice ends) and holds
     * a copy of the prompt's last partial block and the blocks it will generate into (the reservation's
     * spares). Called holding {@code r}, with its KV committed.
     */
    private List<Reservation> forks(DecodeTask task, Reservation r) {
        if (r.choices == 1) return List.of();
        // every fork's constraint first: one that refuses its first token drops the reservation while the
        // forks' blocks are still the reservation's spares (released with it)
        TokenConstraint[] constraints = new TokenConstraint[r.choices];
        for (int c = 1; c < r.choices; c++) constraints[c] = constraint(task, r, task.moreFirstTokens()[c - 1]);
        int bt = r.seq.blockTokens(), full = r.promptTokens / bt;
        int perFork = r.spare.length / (r.choices - 1);
        r.group = new Reservation.Choices(r.choices);
        r.group.movable = task.movable();
        List<Reservation> out = new ArrayList<>();
        int vocab = engine.info().vocabSize();
        for (int c = 1; c < r.choices; c++) {
            Sequence seq = engine.newSequence();
            seq.adoptPrefix(r.seq.blockTable(), full);
            for (int b = 0; b < perFork; b++) seq.appendOwnedBlock(r.spare[(c - 1) * perFork + b]);
            if (r.promptTokens % bt != 0) // the prompt's tail: each choice writes after it into its own copy
            MemorySegment.copy(
                        cache.block(r.seq.blockTable()[full]), 0, cache.block(seq.blockTable()[full]), 0, blockBytes);
            seq.setLength(r.promptTokens);
            Reservation f = new Reservation(r.id, seq, r.promptTokens, r.maxTokens);
            f.choice = c;
            f.group = r.group;
            f.task = task;
            f.state = State.DECODING;
            f.constraint = constraints[c];
            start(f, task.moreFirstTokens()[c - 1], vocab);
            out.add(f);
        }
        r.spare = new int[0]; // the forks own them now
        groups.put(r.id, r.group);
        return out;
    }

    /** Reservations decoding as several choices, by id, until the last choice ends (a cancel reaches them all). */
    private final Map<Long, Reservation.Choices> groups = new ConcurrentHashMap<>();

    /**
     * A moved stream's tokens drawn before this placement ({@code drawn}): one per draw it skips
     * ({@code sampling.resumeAt}), each in the vocabulary; required under a schema (its constraint
     * replays them), optional otherwise.
     */
    private static String checkDrawn(DecodeTask task, int vocab) {
        int[] d = task.drawn();
        int at = task.sampling().resumeAt();
        if (d == null)
            return at > 0 && task.sampling().schema() != null
                    ? "drawn is missing: a moved stream under a schema needs the " + at + " tokens it drew"
                    : null;
        if (d.length != at) return "drawn has " + d.length + " tokens: expected sampling.resumeAt = " + at;
        for (int t : d) if (t < 0 || t >= vocab) return "drawn token " + t + ": expected 0.." + (vocab - 1);
        return null;
    }

    /**
     * The task's {@code response_format} schema as a token constraint that has taken the first token
     * (sampled by the prefill worker under the same schema), or null; a moved stream's constraint first
     * replays the tokens it drew before ({@code drawn}), so it stands where the lost placement's stood.
     * A schema the worker cannot compile, or a token outside it, drops the reservation. Called holding
     * {@code r}.
     */
    private TokenConstraint constraint(DecodeTask task, Reservation r, int first) {
        var s = task.sampling();
        if (s.schema() == null) return null;
        TokenConstraint c;
        try {
            c = TokenConstraint.of(engine.tokenizer(), s.schema(), s.strict());
        } catch (IllegalArgumentException e) {
            dropLocked(r, "bad schema");
            throw new IllegalArgumentException("decode task of reservation " + r.id + ": " + e.getMessage(), e);
        }
        int[] drawn = task.drawn() == null ? new int[0] : task.drawn();
        for (int i = 0; i < drawn.length; i++) {
            if (!c.accept(drawn[i])) {
                dropLocked(r, "drawn token outside the schema");
                throw new IllegalArgumentException("decode task of reservation " + r.id + ": drawn token " + i + " ("
                        + drawn[i] + ") does not fit the response_format schema");
            }
        }
        if (!c.accept(first)) {
            dropLocked(r, "first token outside the schema");
            throw new IllegalArgumentException("decode task of reservation " + r.id + ": the first token " + first
                    + " does not fit the response_format schema");
        }
        return c;
    }

    private String checkKeys(SequenceKeys k, int promptTokens, int vocab) {
        int bt = engine.info().blockTokens();
        if (k.blockTokens() != bt)
            return "keys of " + k.blockTokens() + "-token blocks: this worker's blocks have " + bt;
        if (k.promptKeys() == null || k.promptKeys().length != promptTokens / bt)
            return "prompt keys: expected " + promptTokens / bt + " (one per full block)";
        if (k.tailTokens() == null || k.tailTokens().length != promptTokens % bt)
            return "tail tokens: expected " + promptTokens % bt + " (the prompt after its last full block)";
        for (int t : k.tailTokens()) if (t < 0 || t >= vocab) return "tail token " + t + ": expected 0.." + (vocab - 1);
        return null;
    }

    /** Where finished sequences go: the store master, and this worker's pool segment (null: none). */
    void useStore(StoreClient store, PoolSegment pool, String client) {
        sequences.use(store, pool, client);
    }

    /** Blocks of finished sequences this worker put into the KV pool. */
    public long pooledBlocks() {
        return sequences.pooledBlocks();
    }

    /** After a decode step (agent thread): {@code r}'s newly full blocks go to the pool's writer. */
    void writeBehind(Reservation r) {
        sequences.writeBehind(r);
    }

    /** Stops writing running sequences' blocks into the pool (the agent stops). */
    void stopWriteBehind() {
        sequences.stopWriteBehind();
    }

    /** Blocks of running sequences written behind into the pool, by outcome (written, skipped, failed). */
    long writtenBehind(String outcome) {
        return switch (outcome) {
            case "written" -> sequences.behindWritten.get();
            case "skipped" -> sequences.behindSkipped.get();
            default -> sequences.behindFailed.get();
        };
    }

    /** Drops a reservation wherever it is (idempotent); false when it is not here. */
    public boolean cancel(long reservationId) {
        Reservation.Choices group = groups.get(reservationId);
        if (group != null) group.cancelled = true; // every choice ends at the agent's next step
        Reservation r = reservations.get(reservationId);
        if (r == null) return group != null;
        synchronized (r) {
            if (r.state == State.DECODING) r.cancelled = true; // the agent ends it at its next step
            else dropLocked(r, "cancelled");
        }
        return true;
    }

    /** Ends a decoding reservation (agent thread). */
    void finished(Reservation r, String reason) {
        sequences.ended(r);
        boolean last = r.group == null || r.group.open.decrementAndGet() == 0;
        if (r.sink != null) {
            r.sink.tryEmitNext(new TokenEvent(-1, 0f, reason, r.choice));
            if (last) r.sink.tryEmitComplete();
        }
        if (last && r.group != null) groups.remove(r.id, r.group);
        if (r.choice == 0 && ("stop".equals(reason) || "length".equals(reason))) sequences.putBack(r);
        if (r.choice == 0) {
            synchronized (r) {
                releaseLocked(r, reason);
            }
        } else r.seq.release(); // a fork: its own blocks, and its references on the prompt's
        if (last) outcomes.accept(reason.startsWith("error") ? "error" : reason);
    }

    /** Not decoding: released now when nobody can be writing its blocks, else fenced until the writer confirms. */
    private void dropLocked(Reservation r, String why) {
        releaseSpares(r); // never a write target: free at once, whoever may be writing the prompt's blocks
        switch (r.state) {
            case RESERVED, COMMITTED -> releaseLocked(r, why);
            case TAKING -> r.dropWhenTaken = true; // its reads may still land: released when the take ends
            case CLAIMED -> {
                setWritable(r, false);
                r.fenceSeq = transfer.writeGroupsAccepted(); // read after the guard closed: later groups are refused
                r.state = State.FENCED;
                r.fencedAt = System.nanoTime();
                r.nextAbortAt = r.fencedAt;
                fencedBlocks.addAndGet(r.seq.blockCount());
                LOG.info(
                        "reservation {} {} while {} may be writing it: {} blocks fenced until it confirms it stopped",
                        r.id,
                        why,
                        r.writer,
                        r.seq.blockCount());
            }
            default -> {} // FENCED or RELEASED already; DECODING ends in the agent
        }
    }

    /** Returns the forks' blocks of a reservation that never forked (idempotent). */
    private void releaseSpares(Reservation r) {
        for (int b : r.spare) cache.release(b);
        r.spare = new int[0];
    }

    /** A fenced reservation whose writer stopped is freed once the tcp groups accepted before the fence have landed. */
    private void releaseIfLandedLocked(Reservation r) {
        if (r.state == State.FENCED && r.writerStopped && transfer.writesLandedThrough(r.writer, r.fenceSeq)) {
            releaseLocked(r, "its writer " + r.writer + " stopped");
        }
    }

    private void releaseLocked(Reservation r, String why) {
        if (r.state == State.RELEASED) return;
        if (r.state == State.FENCED) fencedBlocks.addAndGet(-r.seq.blockCount());
        setWritable(r, false);
        r.state = State.RELEASED;
        reservations.remove(r.id, r);
        releaseSpares(r);
        r.seq.release();
        released.incrementAndGet();
        LOG.debug("reservation {} released ({})", r.id, why);
    }

    /**
     * Called by the agent on every duty cycle: reservations that never started decoding within
     * {@code kv-wait-millis} are dropped (fenced if claimed), and fenced ones whose writer is due are
     * asked again (off the agent thread). Returns the reservations it acted on.
     */
    int reap(long now, Consumer<Runnable> offload) {
        long limit = TimeUnit.MILLISECONDS.toNanos(props.kvWaitMillis());
        int work = 0;
        for (Reservation r : reservations.values()) {
            synchronized (r) {
                if ((r.state == State.RESERVED || r.state == State.CLAIMED || r.state == State.COMMITTED)
                        && now - r.reservedAt > limit) {
                    LOG.warn(
                            "reservation {} reserved {} ms ago never started decoding: dropping it",
                            r.id,
                            TimeUnit.NANOSECONDS.toMillis(now - r.reservedAt));
                    dropLocked(r, "reaped");
                    work++;
                }
                if (r.state == State.FENCED && r.writerStopped) {
                    releaseIfLandedLocked(r);
                } else if (r.state == State.FENCED
                        && !r.cutOffTried
                        && now - r.fencedAt > TimeUnit.MILLISECONDS.toNanos(props.fenceDeadlineMillis())) {
                    r.cutOffTried = true;
                    offload.accept(() -> fence.cutOff(r));
                    work++;
                } else if (r.state == State.FENCED && !r.abortInFlight && now - r.nextAbortAt >= 0) {
                    r.abortInFlight = true;
                    offload.accept(() -> fence.abortWriter(r));
                    work++;
                }
            }
        }
        return work;
    }

    /** This worker's name in the cluster (its transfer segment's name). */
    public String name() {
        return transfer.name();
    }

    /**
     * The drain of a worker leaving (SIGTERM, {@code POST /internal/drain}): no new reservation from
     * now on; a stream the conductor can continue elsewhere ({@code movable}) is handed off (ended with
     * the finish {@code "moved"}, its blocks released) when what it has left to generate would not end
     * within the first half of {@code budget} at its rate so far, and every movable one still running
     * at half the budget is handed off then; the others (and prefills in flight) get the whole budget
     * to end. True when nothing is held by then.
     */
    public boolean drain(Duration budget) throws InterruptedException {
        draining = true;
        long from = System.nanoTime(), half = from + budget.toNanos() / 2, until = from + budget.toNanos();
        int handedOff = 0;
        // a request's forks (n > 1) may still decode after its own reservation ended
        while ((!reservations.isEmpty() || !groups.isEmpty()) && System.nanoTime() < until) {
            long now = System.nanoTime();
            for (Reservation r : reservations.values()) if (handOffDue(r, now, half)) handedOff++;
            if (now >= half) // choices whose first ended early: the rest go at half the budget
            for (Reservation.Choices g : groups.values())
                    if (g.movable && !g.handOff) {
                        g.handOff = true;
                        handedOff++;
                    }
            Thread.sleep(20);
        }
        boolean empty = reservations.isEmpty() && groups.isEmpty();
        LOG.info(
                "drained in {} ms: {} streams handed off to be continued elsewhere; {}",
                (System.nanoTime() - from) / 1_000_000,
                handedOff,
                empty ? "nothing held" : reservations.size() + " reservations still held at the end of the budget");
        return empty;
    }

    /**
     * Marks {@code r} to be handed off now if it is a movable stream that would not end by {@code half}
     * (with several choices: all of them, at the rate of the first).
     */
    private static boolean handOffDue(Reservation r, long now, long half) {
        DecodeTask t = r.task;
        if (r.handedOff() || t == null || !t.movable() || r.decodingSince == 0) return false;
        long perToken = (now - r.decodingSince) / Math.max(1, r.produced);
        long endsAt = now + perToken * Math.max(0, t.maxTokens() - r.produced);
        if (now < half && endsAt <= half) return false;
        if (r.group != null) r.group.handOff = true;
        r.handOff = true;
        return true;
    }

    /** Whether this worker is draining (it takes no new reservation). */
    public boolean draining() {
        return draining;
    }

    /** The sequence of reservation {@code id} (tests fill its prompt's KV as a prefill worker would), or null. */
    Sequence sequenceOf(long id) {
        Reservation r = reservations.get(id);
        return r == null ? null : r.seq;
    }

    int reservationCount() {
        return reservations.size();
    }

    long fencedBlockCount() {
        return fencedBlocks.get();
    }

    public WorkerStatus status(int active) {
        return new WorkerStatus(
                "decode",
                engine.info().name(),
                engine.info().blockTokens(),
                cache.freeBlocks(),
                cache.usedBlocks(),
                cache.capacity(),
                active,
                joining.size(),
                0,
                (int) fencedBlocks.get());
    }
}
