package dev.mooncakej.decode;

import dev.mooncakej.engine.constrain.TokenConstraint;
import dev.mooncakej.engine.sampling.Sampler;
import dev.mooncakej.engine.spi.Sequence;
import dev.mooncakej.kvcache.wire.WorkerMessages.DecodeTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.TokenEvent;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;
import reactor.core.publisher.Sinks;

/**
 * One request on the decode worker, from reservation to release: its KV blocks (prompt plus the
 * tokens it may generate, so a running stream never runs out), who writes them, and where it is in
 * its lifecycle. State changes happen under this object's lock.
 */
final class Reservation {
    /** The lifecycle: every reservation is in exactly one of these. */
    enum State {
        /**
         * Blocks reserved; no prefill worker has claimed them yet (one that tries later is told FENCED if it is
         * dropped).
         */
        RESERVED,
        /** A prefill worker claimed the blocks and may be writing them (the only state in which tcp writes land). */
        CLAIMED,
        /**
         * A moved stream this worker takes itself: its blocks are being read from the KV pool and its
         * last tokens computed here (no prefill worker writes it); a drop waits for the take to end.
         */
        TAKING,
        /** Every write completed and was acknowledged: the KV is whole; waiting for the decode call. */
        COMMITTED,
        /** In the continuous batch, streaming tokens. */
        DECODING,
        /** Dropped while claimed: its blocks go to no one until the writer confirms it stopped (or is gone). */
        FENCED,
        /** Blocks returned to the pool; the reservation is gone. */
        RELEASED
    }

    final long id;
    final Sequence seq;
    final int promptTokens;
    final int maxTokens;
    final int firstBlock;
    final int promptBlocks;
    final long reservedAt = System.nanoTime();
    State state = State.RESERVED;
    String writer;
    long fencedAt;
    /** Dropped while TAKING: the take releases it when it ends (its reads may still land until then). */
    boolean dropWhenTaken;
    /** Whether the fence's deadline passed and the writer's cut-off was tried (once). */
    boolean cutOffTried;
    /** tcp write groups accepted up to the fence: once they have landed, no tcp byte can reach these blocks. */
    long fenceSeq;
    /** The writer confirmed that nothing of it writes these blocks any more (or it is gone). */
    boolean writerStopped;

    long nextAbortAt;
    boolean abortInFlight;
    // decoding (agent thread only, after DECODING)
    volatile boolean cancelled;
    volatile DecodeTask task;
    Sampler sampler;
    /** The JSON schema the output must stay inside ({@code response_format}), or null. */
    TokenConstraint constraint;

    Sinks.Many<TokenEvent> sink;
    int next;
    int produced;
    /** Tokens fed to the model since the prompt (their KV is in this sequence), for the pool's keys. */
    int[] fed = new int[0];

    int fedCount;

    void fed(int token) {
        if (fedCount == fed.length) fed = Arrays.copyOf(fed, Math.max(16, fed.length * 2));
        fed[fedCount++] = token;
    }

    long lastTokenAt;
    /** Write-behind (agent thread): the sequence's blocks up to here were handed to the pool's writer. */
    int behindUpTo;
    /** Blocks of it written behind, counted in the write-behind bound until it ends. */
    int behindBlocks;
    /** Keys of this sequence's full blocks computed so far (the prompt's first), each block hashed once. */
    long[] behindKeys;

    /** When decoding started (its rate so far predicts how long the rest takes, for a drain). */
    volatile long decodingSince;

    /**
     * A draining worker ends this stream at the agent's next step with the finish {@code "moved"}
     * (the conductor continues it elsewhere); only for a {@code movable} task.
     */
    volatile boolean handOff;

    /** How many choices ({@code n}) the reservation was made for: this sequence and {@code choices - 1} forks. */
    int choices = 1;

    /**
     * The forks' own blocks, reserved with the prompt's ({@code choices - 1} runs of equal length: each
     * fork's copy of the prompt's last partial block and the blocks it generates into); handed to the
     * forks when decoding starts, returned to the pool if the reservation ends before.
     */
    int[] spare = new int[0];

    /** Which choice this sequence decodes (0: the reservation's own; 1..: a fork of its prompt). */
    int choice;

    /** The choices decoding together (null for one): their shared stream, how many are still open. */
    Choices group;

    /** The choices of one reservation decoding together: one stream of token events, each with its choice. */
    static final class Choices {
        final AtomicInteger open;
        volatile boolean cancelled;
        /** A draining worker ends every choice still running with {@code "moved"} (each goes on elsewhere). */
        volatile boolean handOff;
        /** Whether the conductor continues the choices elsewhere (its task's {@code movable}). */
        boolean movable;

        Choices(int n) {
            open = new AtomicInteger(n);
        }
    }

    /** Whether a draining worker hands this sequence off now (as one of several choices: all of them). */
    boolean handedOff() {
        return handOff || (group != null && group.handOff);
    }

    /** Whether this sequence's request was cancelled (as a fork: any of its group). */
    boolean cancelledAny() {
        return cancelled || (group != null && group.cancelled);
    }

    Reservation(long id, Sequence seq, int promptTokens, int maxTokens) {
        this.id = id;
        this.seq = seq;
        this.promptTokens = promptTokens;
        this.maxTokens = maxTokens;
        this.firstBlock = seq.blockCount() > 0 ? seq.blockTable()[0] : -1;
        this.promptBlocks = (promptTokens + seq.blockTokens() - 1) / seq.blockTokens();
    }
}
