package dev.mooncakej.decode;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.engine.kv.PagedKvCache;
import dev.mooncakej.engine.spi.PrefillOptions;
import dev.mooncakej.engine.spi.Sequence;
import dev.mooncakej.kvcache.wire.KvControl;
import dev.mooncakej.kvcache.wire.WorkerMessages.DecodeTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveResponse;
import dev.mooncakej.kvcache.wire.WorkerMessages.Sampling;
import dev.mooncakej.kvcache.wire.WorkerMessages.SequenceKeys;
import dev.mooncakej.kvcache.wire.WorkerMessages.TokenEvent;
import dev.mooncakej.kvstore.client.WorkerStoreSettings;
import dev.mooncakej.kvtransfer.engine.SegmentMetadata;
import dev.mooncakej.kvtransfer.engine.TransferEngine;
import dev.mooncakej.kvtransfer.spi.TransferConfig;
import dev.mooncakej.worker.FirstToken;
import dev.mooncakej.worker.WorkerKeys;
import dev.mooncakej.worker.WorkerRuntime;
import dev.mooncakej.worker.WorkerSettings;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.assertj.core.api.Assertions;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The decode worker's reservations with the real service, agent, simulated engine and transfer
 * engines in one process (a second transfer engine plays the prefill worker that writes): fencing,
 * reaping under load, reservations sized for the whole generation, and checks of what arrives.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class DecodeServiceTest {
    private static final String SECRET = "decode-service-test-secret-0123";
    private static final Sampling GREEDY = new Sampling(0f, 1f, 0, null, false);

    @TempDir
    static Path dir;

    private static Path model;
    private final SegmentMetadata metadata = new SegmentMetadata.Embedded();
    private final List<KvControl> heard = new CopyOnWriteArrayList<>();
    private WorkerRuntime runtime;
    private DecodeService service;
    private DecodeAgent agent;
    private TransferEngine writer;
    private volatile byte abortAnswer = KvControl.STOPPING;

    @BeforeAll
    static void model() throws Exception {
        model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
    }

    /** A decode worker of {@code blocks} KV blocks of 32 tokens; simulated time runs at {@code timeScale}. */
    private void start(int blocks, long kvWaitMillis, double timeScale) {
        WorkerSettings settings = WorkerSettings.of(
                "mooncakej.decode.",
                new WorkerKeys(
                        model.toString(),
                        32,
                        blocks,
                        1,
                        "127.0.0.1",
                        0,
                        5000L,
                        SECRET,
                        "tcp",
                        dir.toString(),
                        null,
                        "simulated",
                        null,
                        timeScale,
                        null,
                        0.0,
                        null));
        runtime = WorkerRuntime.start("decode", settings, 8, metadata, new WorkerStoreSettings(0, null, 0));
        service = new DecodeService(new DecodeProperties(8, kvWaitMillis, null, null, null), runtime);
        agent = new DecodeAgent(service, new SimpleMeterRegistry());
        agent.start();
        writer = new TransferEngine(
                "writer-1",
                metadata,
                1 << 16,
                TransferConfig.defaults(SECRET, dir).withTransports(List.of("tcp")));
        writer.onNotify(p -> {
            KvControl m = KvControl.decode(p);
            heard.add(m);
            return abortAnswer;
        });
    }

    @AfterEach
    void stop() {
        if (agent != null) agent.stop();
        if (writer != null) writer.close();
        if (runtime != null) runtime.close();
    }

    private byte send(KvControl m) throws Exception {
        return writer.notify(service.name(), m.encode(), Duration.ofSeconds(5));
    }

    private static void await(String what, long millis, BooleanSupplier cond) throws InterruptedException {
        long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(millis);
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > until) throw new AssertionError("not within " + millis + " ms: " + what);
            Thread.sleep(10);
        }
    }

    @Test
    void aCancelledClaimedReservationsBlocksGoToNoOneUntilItsWriterSaysItStopped() throws Exception {
        start(4, 30_000, 0);
        ReserveResponse r = service.reserve(1, 100, 28); // 128 tokens = all 4 blocks
        assertThat(r.blocks()).isEqualTo(4);
        assertThat(send(KvControl.claim(1, "writer-1"))).isEqualTo(KvControl.OK);
        assertThat(service.cancel(1)).isTrue();
        await("the writer is asked to abort", 5000, () -> heard.contains(KvControl.abort(1)));
        assertThat(service.fencedBlockCount()).isEqualTo(4);
        assertThat(service.reserve(2, 10, 1))
                .as("fenced blocks are given to no one")
                .isNull();
        assertThat(send(KvControl.commit(1, 100)))
                .as("a commit of a fenced reservation")
                .isEqualTo(KvControl.FENCED);
        assertThat(send(KvControl.stopped(1))).isEqualTo(KvControl.OK);
        await(
                "blocks freed after STOPPED",
                5000,
                () -> service.fencedBlockCount() == 0
                        && runtime.engine().kvCache().freeBlocks() == 4);
        assertThat(service.reserve(3, 10, 1)).isNotNull();
    }

    @Test
    void aReservationDroppedBeforeAnyClaimIsFreedAtOnceAndALateClaimIsRefused() throws Exception {
        start(4, 30_000, 0);
        service.reserve(1, 100, 28);
        service.cancel(1);
        assertThat(runtime.engine().kvCache().freeBlocks()).isEqualTo(4);
        assertThat(send(KvControl.claim(1, "writer-1")))
                .as("the prefill worker must not write")
                .isEqualTo(KvControl.UNKNOWN_RESERVATION);
    }

    @Test
    void aRepeatedReserveGetsTheSameReservationUntilItsWriterClaimsIt() throws Exception {
        start(8, 30_000, 0);
        ReserveResponse first = service.reserve(1, 100, 28);
        ReserveResponse again = service.reserve(1, 100, 28); // the conductor retried: the answer was lost
        assertThat(again.kv().blockOffsets()).containsExactly(first.kv().blockOffsets());
        assertThat(runtime.engine().kvCache().freeBlocks())
                .as("nothing reserved twice")
                .isEqualTo(4);
        Assertions.assertThatThrownBy(() -> service.reserve(1, 50, 28)).hasMessageContaining("already exists");
        send(KvControl.claim(1, "writer-1"));
        Assertions.assertThatThrownBy(() -> service.reserve(1, 100, 28))
                .as("once a writer claimed it, a reserve is no repeat")
                .hasMessageContaining("already exists");
    }

    @Test
    void aFencedReservationIsFreedWhenItsWriterAnswersThatNothingWritesIt() throws Exception {
        start(4, 30_000, 0);
        abortAnswer = KvControl.OK;
        service.reserve(1, 100, 28);
        send(KvControl.claim(1, "writer-1"));
        service.cancel(1);
        await("freed on the writer's OK", 5000, () -> runtime.engine().kvCache().freeBlocks() == 4);
    }

    @Test
    void aFencedReservationWhoseWriterIsGoneIsFreed() throws Exception {
        start(4, 30_000, 0);
        service.reserve(1, 100, 28);
        send(KvControl.claim(1, "writer-1"));
        writer.close(); // its segment leaves the metadata: a process that is gone writes nothing
        service.cancel(1);
        await(
                "freed once the writer is known gone",
                5000,
                () -> runtime.engine().kvCache().freeBlocks() == 4);
    }

    @Test
    void underSteadyLoadAnUnusedReservationIsReleasedWithinKvWaitMillis() throws Exception {
        start(64, 600, 1.0); // real LLaMA3-70B step times (about 9 ms): a 1000-token stream decodes for seconds
        ReserveResponse busy = service.reserve(1, 40, 1000);
        send(KvControl.claim(1, "writer-1"));
        send(KvControl.commit(1, 40));
        List<TokenEvent> events = new CopyOnWriteArrayList<>();
        service.decode(new DecodeTask(1, 5, 40, 1000, GREEDY)).subscribe(events::add);
        await("the batch is decoding", 5000, () -> agent.activeCount() == 1 && events.size() > 3);
        int before = runtime.engine().kvCache().freeBlocks();
        long t0 = System.nanoTime();
        service.reserve(2, 100, 20); // never claimed, never decoded
        assertThat(runtime.engine().kvCache().freeBlocks()).isLessThan(before);
        await(
                "the unused reservation is released",
                600 + 400,
                () -> runtime.engine().kvCache().freeBlocks() == before);
        long took = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
        assertThat(agent.activeCount()).as("the batch stayed busy meanwhile").isEqualTo(1);
        assertThat(took).isGreaterThanOrEqualTo(590);
        assertThat(busy.blocks()).isEqualTo((40 + 1000 + 31) / 32);
        service.cancel(1);
    }

    @Test
    void aReservationHoldsPromptPlusMaxTokensSoTheStreamRunsToItsEnd() throws Exception {
        start(8, 30_000, 0);
        ReserveResponse r = service.reserve(1, 20, 200); // 220 tokens: 7 blocks
        assertThat(r.blocks()).isEqualTo(7);
        assertThat(r.kv().blockOffsets())
                .as("offsets of the prompt's blocks only")
                .hasSize(1);
        assertThat(service.reserve(2, 20, 100))
                .as("the rest of the pool is too small")
                .isNull();
        send(KvControl.claim(1, "writer-1"));
        send(KvControl.commit(1, 20));
        List<TokenEvent> events = new CopyOnWriteArrayList<>();
        service.decode(new DecodeTask(1, 5, 20, 200, GREEDY)).subscribe(events::add);
        await(
                "the stream ends",
                20_000,
                () -> !events.isEmpty() && events.getLast().finish() != null);
        assertThat(events.getLast().finish()).isEqualTo("length");
        assertThat(events).hasSize(200); // 199 tokens after the prefill's first, then the end
        await("blocks back", 5000, () -> runtime.engine().kvCache().freeBlocks() == 8);
    }

    /** A committed reservation of {@code prompt} tokens (the prompt's KV as written), decoding under {@code task}. */
    private List<TokenEvent> decoding(long id, int prompt, DecodeTask task) throws Exception {
        service.reserve(id, prompt, task.maxTokens());
        send(KvControl.claim(id, "writer-1"));
        send(KvControl.commit(id, prompt));
        List<TokenEvent> events = new CopyOnWriteArrayList<>();
        service.decode(task).subscribe(events::add);
        return events;
    }

    @Test
    void aDrainHandsOffTheMovableStreamsThatWouldNotEndInTimeAndLetsTheOthersFinish() throws Exception {
        start(128, 30_000, 1.0); // real LLaMA3-70B step times (about 9 ms a step)
        List<TokenEvent> longMovable = decoding(1, 20, new DecodeTask(1, 5, 20, 1000, GREEDY, null, null, true));
        List<TokenEvent> longFixed = decoding(2, 20, new DecodeTask(2, 5, 20, 120, GREEDY, null, null, false));
        List<TokenEvent> shortMovable = decoding(3, 20, new DecodeTask(3, 5, 20, 40, GREEDY, null, null, true));
        // three choices of one request (n = 3): each one goes on elsewhere, so all of them are handed off
        service.reserve(4, 20, 400, 3);
        send(KvControl.claim(4, "writer-1"));
        send(KvControl.commit(4, 20));
        List<TokenEvent> choices = new CopyOnWriteArrayList<>();
        service.decode(new DecodeTask(4, 5, 20, 400, GREEDY, null, new int[] {5, 5}, true))
                .subscribe(choices::add);
        await("decoding", 5000, () -> agent.activeCount() == 6 && longMovable.size() > 3);
        long t0 = System.nanoTime();
        assertThat(service.drain(Duration.ofSeconds(4)))
                .as("nothing held at the end")
                .isTrue();
        long tookMillis = (System.nanoTime() - t0) / 1_000_000;
        assertThat(longMovable.getLast().finish())
                .as("1000 tokens do not end within half of 4 s: handed off")
                .isEqualTo("moved");
        assertThat(longMovable.size()).as("handed off at once, not at the end").isLessThan(300);
        assertThat(choices.stream().filter(e -> e.finish() != null))
                .as("each of the three choices handed off")
                .extracting(e -> e.choice() + ":" + e.finish())
                .containsExactlyInAnyOrder("0:moved", "1:moved", "2:moved");
        assertThat(shortMovable.getLast().finish()).as("40 tokens end in time").isEqualTo("length");
        assertThat(longFixed.getLast().finish())
                .as("a stream the conductor cannot continue runs to its end")
                .isEqualTo("length");
        assertThat(tookMillis).as("the drain ended when the last stream did").isLessThan(4000);
        assertThat(service.reserve(5, 20, 10))
                .as("a draining worker takes no reservation")
                .isNull();
        await("every block back", 5000, () -> runtime.engine().kvCache().freeBlocks() == 128);
    }

    @Test
    void aMovedStreamTakenHereDrawsWhatAPrefillWouldAndALongHistoryWithoutAPoolIsNotTaken() throws Exception {
        start(64, 30_000, 0);
        int bt = 32;
        int[] history = new int[20];
        for (int i = 0; i < history.length; i++) history[i] = 3 + (i * 7) % 50;
        var keys = new SequenceKeys(0L, bt, new long[0], history);
        // the reference: the prompt computed as a prefill worker would, its first token drawn, then decoded
        service.reserve(1, 20, 30);
        send(KvControl.claim(1, "writer-1"));
        float[] logits = new float[vocab()];
        assertThat(runtime.engine().prefill(service.sequenceOf(1), history, PrefillOptions.DEFAULT, logits))
                .isTrue();
        send(KvControl.commit(1, 20));
        int first = FirstToken.draw(GREEDY, logits.clone(), runtime.engine().tokenizer(), null, 30)
                .token();
        List<TokenEvent> reference = new CopyOnWriteArrayList<>(List.of(TokenEvent.token(first, 0f)));
        service.decode(new DecodeTask(1, first, 20, 30, GREEDY, keys)).subscribe(reference::add);
        // the same taken here: no prefill worker, the 20 tokens (less than a block) computed on this worker
        service.reserve(2, 20, 30);
        List<TokenEvent> taken = new CopyOnWriteArrayList<>();
        service.decode(new DecodeTask(2, 0, 20, 30, GREEDY, keys, null, true, null, history))
                .subscribe(taken::add);
        await("both end", 10_000, () -> reference.size() == 31 && taken.size() == 31);
        assertThat(taken).as("token for token").isEqualTo(reference);
        // a history of 200 tokens with no KV pool on this worker: computing 6 blocks here is a prefill's job
        int[] longer = new int[200];
        for (int i = 0; i < longer.length; i++) longer[i] = 3 + (i * 11) % 50;
        long[] blockKeys = new long[200 / bt];
        for (int i = 0; i < blockKeys.length; i++) blockKeys[i] = 1000 + i;
        var longKeys = new SequenceKeys(0L, bt, blockKeys, Arrays.copyOfRange(longer, blockKeys.length * bt, 200));
        service.reserve(3, 200, 30);
        List<Throwable> failed = new CopyOnWriteArrayList<>();
        service.decode(new DecodeTask(3, 0, 200, 30, GREEDY, longKeys, null, true, null, longer))
                .subscribe(ev -> {}, failed::add);
        await("refused", 5000, () -> !failed.isEmpty());
        assertThat(failed.getFirst()).isInstanceOf(DecodeService.NotTaken.class).hasMessageContaining("no KV pool");
        await("every block back", 5000, () -> runtime.engine().kvCache().freeBlocks() == 64);
        // checked before anything runs: a history that is not the reserved prompt
        service.reserve(4, 20, 30);
        assertThatThrownBy(() -> service.decode(
                        new DecodeTask(4, 0, 20, 30, GREEDY, keys, null, true, null, Arrays.copyOf(history, 19))))
                .hasMessageContaining("history of 19 tokens");
        assertThat(runtime.engine().kvCache().freeBlocks()).isEqualTo(64);
    }

    @Test
    void badValuesFromAnotherWorkerFailThatRequestAlone() throws Exception {
        start(8, 30_000, 0);
        service.reserve(1, 20, 10);
        send(KvControl.claim(1, "writer-1"));
        assertThat(send(KvControl.commit(1, 19)))
                .as("a commit of the wrong length")
                .isEqualTo(KvControl.REJECTED);
        send(KvControl.commit(1, 20));
        int vocab = runtime.engine().info().vocabSize();
        assertThatThrownBy(() -> service.decode(new DecodeTask(1, vocab, 20, 10, GREEDY)))
                .hasMessageContaining("first token " + vocab);
        assertThat(runtime.engine().kvCache().freeBlocks())
                .as("the bad request's blocks are released")
                .isEqualTo(8);
        assertThat(writer.notify(service.name(), new byte[] {9, 9, 9}, Duration.ofSeconds(5)))
                .isEqualTo(KvControl.MALFORMED);
        service.reserve(2, 20, 10);
        send(KvControl.claim(2, "writer-1"));
        assertThatThrownBy(() -> service.decode(new DecodeTask(2, 5, 20, 11, GREEDY)))
                .hasMessageContaining("max tokens 11");
        service.reserve(3, 20, 10);
        send(KvControl.claim(3, "writer-1"));
        send(KvControl.commit(3, 20));
        List<TokenEvent> events = new CopyOnWriteArrayList<>();
        service.decode(new DecodeTask(3, 5, 20, 10, GREEDY)).subscribe(events::add);
        await(
                "the good request completes",
                10_000,
                () -> !events.isEmpty() && events.getLast().finish() != null);
        assertThat(events.getLast().finish()).isEqualTo("length");
    }

    @Test
    void severalChoicesDecodeFromOneCopyOfThePromptsBlocks() throws Exception {
        start(16, 30_000, 1.0); // real step times: the choices are still decoding when the blocks are counted
        PagedKvCache cache = runtime.engine().kvCache();
        ReserveResponse r = service.reserve(1, 100, 40, 3);
        // 140 tokens are 5 blocks; the prompt's 3 full blocks are shared, each fork has its own copy of the
        // partial fourth and a fifth to generate into: 5 + 2 x 2 = 9 (15 if each choice had its own prompt)
        assertThat(r.blocks()).isEqualTo(9);
        assertThat(cache.usedBlocks()).isEqualTo(9);
        assertThat(r.kv().blockOffsets())
                .as("the prefill writes the prompt once")
                .hasSize(4);
        send(KvControl.claim(1, "writer-1"));
        int[] prompt = new int[100];
        for (int i = 0; i < prompt.length; i++) prompt[i] = 3 + (i * 7) % 50;
        Sequence seq = service.sequenceOf(1); // the prompt's KV, as the prefill worker would have written it
        assertThat(runtime.engine().prefill(seq, prompt, PrefillOptions.DEFAULT, new float[vocab()]))
                .isTrue();
        assertThat(send(KvControl.commit(1, 100))).isEqualTo(KvControl.OK);
        int[] shared = Arrays.copyOf(seq.blockTable(), 3);
        List<TokenEvent> events = new CopyOnWriteArrayList<>();
        service.decode(new DecodeTask(1, 5, 100, 40, GREEDY, null, new int[] {5, 5}))
                .subscribe(events::add);
        await("three choices decoding", 5000, () -> agent.activeCount() == 3);
        for (int b : shared)
            assertThat(cache.refCount(b))
                    .as("block %d: one reference per choice", b)
                    .isEqualTo(3);
        assertThat(cache.usedBlocks()).as("no block was added for the forks").isEqualTo(9);
        await(
                "every choice ends",
                20_000,
                () -> events.stream().filter(e -> e.finish() != null).count() == 3);
        // the same first token, greedy: a fork that read its prompt's tail from a block that was not a copy
        // of the prompt's would draw other tokens
        for (int c = 0; c < 3; c++) {
            int choice = c;
            List<Integer> tokens = events.stream()
                    .filter(e -> e.choice() == choice && e.finish() == null)
                    .map(TokenEvent::token)
                    .toList();
            assertThat(tokens).as("choice %d", c).hasSize(39);
            assertThat(tokens)
                    .isEqualTo(events.stream()
                            .filter(e -> e.choice() == 0 && e.finish() == null)
                            .map(TokenEvent::token)
                            .toList());
        }
        await("every block back", 5000, () -> cache.freeBlocks() == 16);
    }

    @Test
    void aReservationForSeveralChoicesEndedBeforeDecodingFreesTheForksBlocks() throws Exception {
        start(16, 30_000, 0);
        PagedKvCache cache = runtime.engine().kvCache();
        assertThat(service.reserve(1, 100, 40, 16))
                .as("16 choices of 5 blocks, 3 shared: 3 + 16 x 2 = 35 blocks, more than the 16 here")
                .isNull();
        assertThat(cache.freeBlocks())
                .as("a reservation that did not fit holds nothing")
                .isEqualTo(16);
        assertThatThrownBy(() -> service.reserve(2, 100, 40, 17)).hasMessageContaining("choices 17");
        service.reserve(3, 100, 40, 3);
        send(KvControl.claim(3, "writer-1"));
        send(KvControl.commit(3, 100));
        assertThatThrownBy(() -> service.decode(new DecodeTask(3, 5, 100, 40, GREEDY, null, new int[] {5})))
                .as("a decode task with first tokens for two choices of three")
                .hasMessageContaining("1 more first tokens");
        assertThat(cache.freeBlocks())
                .as("the bad task's reservation, forks' blocks included")
                .isEqualTo(16);
        service.reserve(4, 100, 40, 3);
        service.cancel(4);
        assertThat(cache.freeBlocks()).isEqualTo(16);
        // a fork's first token outside the schema: the whole reservation is refused, the forks' blocks too
        var tokenizer = runtime.engine().tokenizer();
        int brace = tokenizer.encode("{")[0], letter = tokenizer.encode("a")[0];
        Sampling object = GREEDY.withSchema("{\"type\":\"object\"}", false);
        service.reserve(5, 100, 40, 3);
        send(KvControl.claim(5, "writer-1"));
        send(KvControl.commit(5, 100));
        assertThatThrownBy(() ->
                        service.decode(new DecodeTask(5, brace, 100, 40, object, null, new int[] {brace, letter})))
                .hasMessageContaining("does not fit");
        assertThat(cache.freeBlocks()).as("nothing held by the refused forks").isEqualTo(16);
    }

    @Test
    void aMovedStreamsConstraintReplaysTheTokensItDrewBeforeItsNewFirstToken() throws Exception {
        start(16, 30_000, 0);
        PagedKvCache cache = runtime.engine().kvCache();
        var tokenizer = runtime.engine().tokenizer();
        int open = tokenizer.encode("[")[0],
                one = tokenizer.encode("1")[0],
                comma = tokenizer.encode(",")[0];
        Sampling array = GREEDY.withSchema("{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}", false);
        Sampling moved = new Sampling(
                array.temperature(),
                array.topP(),
                array.topK(),
                array.seed(),
                array.logprobs(),
                array.schema(),
                array.strict(),
                null,
                0,
                false,
                3);
        int[] drew = {open, one, comma};
        // the stream drew "[1," before it moved: "1" is its next token, which fits only after them
        service.reserve(1, 20, 10);
        send(KvControl.claim(1, "writer-1"));
        send(KvControl.commit(1, 20));
        List<TokenEvent> events = new CopyOnWriteArrayList<>();
        service.decode(new DecodeTask(1, one, 20, 10, moved, null, null, false, drew))
                .subscribe(events::add);
        await(
                "the moved stream decodes on",
                10_000,
                () -> !events.isEmpty() && events.getLast().finish() != null);
        assertThat(events.getLast().finish()).isNotEqualTo("error");
        // without them its constraint would start at the value's first byte, where "1" is no array
        service.reserve(2, 20, 10);
        send(KvControl.claim(2, "writer-1"));
        send(KvControl.commit(2, 20));
        assertThatThrownBy(() -> service.decode(new DecodeTask(2, one, 20, 10, array)))
                .hasMessageContaining("does not fit");
        // a moved stream under a schema with no drawn tokens, or with ones outside the schema: refused by name
        service.reserve(3, 20, 10);
        send(KvControl.claim(3, "writer-1"));
        send(KvControl.commit(3, 20));
        assertThatThrownBy(() -> service.decode(new DecodeTask(3, one, 20, 10, moved, null, null, false, null)))
                .hasMessageContaining("drawn is missing");
        service.reserve(4, 20, 10);
        send(KvControl.claim(4, "writer-1"));
        send(KvControl.commit(4, 20));
        assertThatThrownBy(() -> service.decode(
                        new DecodeTask(4, one, 20, 10, moved, null, null, false, new int[] {comma, one, open})))
                .hasMessageContaining("drawn token 0");
        await("every block back", 5000, () -> cache.freeBlocks() == 16);
    }

    private int vocab() {
        return runtime.engine().info().vocabSize();
    }
}
