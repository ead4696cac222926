package dev.mooncakej.kvcache.wire;

import java.util.List;
import java.util.Map;

/**
 * The JSON messages between the conductor and the workers (internal HTTP API). Each is a record that
 * both sides encode and decode with {@link InternalJson}, which refuses unknown fields by name, so a
 * field that one side does not know (say an old {@code kv.descriptor}) is an error, never ignored.
 *
 * <p>Two ids, never mixed: the <em>request id</em> is the client-facing id (the {@code X-Request-Id}
 * header, a string, in logs of every service); the <em>reservation id</em> is the conductor's internal
 * number for one request's KV reservation on a decode worker (a long, in these messages and in the
 * transfer control messages of {@link KvControl}).
 */
public final class WorkerMessages {
    private WorkerMessages() {}

    /**
     * Sampling settings carried to the worker that samples.
     *
     * @param schema a JSON schema (as JSON text) every sampled token must keep the output inside, or null
     * @param strict OpenAI's {@code strict}: properties the schema does not declare are refused; absent
     *     (a sender that predates it) reads as false
     * @param logitBias OpenAI's {@code logit_bias}: added to a token's logit before sampling (null: none)
     * @param minTokens vLLM's {@code min_tokens}: end-of-generation tokens are not sampled before this many
     * @param ignoreEos vLLM's {@code ignore_eos}: end-of-generation tokens are never sampled
     * @param resumeAt a stream moved to another decode worker: the index, in the whole answer, of the
     *     token this placement samples first (the tokens before it were relayed already), so a seeded
     *     stream draws from where its generator stood and goes on as an undisturbed run would; 0 (or
     *     absent): a stream of its own
     */
    public record Sampling(
            float temperature,
            float topP,
            int topK,
            Long seed,
            boolean logprobs,
            String schema,
            Boolean strict,
            Map<Integer, Float> logitBias,
            Integer minTokens,
            Boolean ignoreEos,
            Integer resumeAt) {
        public Sampling {
            strict = Boolean.TRUE.equals(strict);
            logitBias = logitBias == null || logitBias.isEmpty() ? null : Map.copyOf(logitBias);
            minTokens = minTokens == null ? 0 : minTokens;
            ignoreEos = Boolean.TRUE.equals(ignoreEos);
            resumeAt = resumeAt == null ? 0 : resumeAt;
        }

        public Sampling(
                float temperature,
                float topP,
                int topK,
                Long seed,
                boolean logprobs,
                String schema,
                Boolean strict,
                Map<Integer, Float> logitBias,
                Integer minTokens,
                Boolean ignoreEos) {
            this(temperature, topP, topK, seed, logprobs, schema, strict, logitBias, minTokens, ignoreEos, 0);
        }

        public Sampling(float temperature, float topP, int topK, Long seed, boolean logprobs) {
            this(temperature, topP, topK, seed, logprobs, null, false, null, 0, false, 0);
        }

        /** The same settings decoded under {@code schema}. */
        public Sampling withSchema(String schema, boolean strict) {
            return new Sampling(
                    temperature, topP, topK, seed, logprobs, schema, strict, logitBias, minTokens, ignoreEos, resumeAt);
        }

        /**
         * The seed the sampler of choice {@code choice} starts from and the draws it skips, to sample the
         * answer's token {@code first} (its prefill's first token: 0; the decode worker's next: 1): the
         * prefill's first token of a stream of its own is drawn from the choice's seed, every later token
         * from that seed plus one, one draw each; null seed when unseeded.
         */
        public long[] generatorAt(int choice, int first) {
            Long base = seedOfChoice(choice);
            int token = resumeAt + first;
            if (token == 0) return base == null ? null : new long[] {base, 0};
            return base == null ? null : new long[] {base + 1, token - 1};
        }

        /**
         * The seed choice {@code choice} of {@code n} samples under (the prefill worker's first token
         * with it, the decode worker's tokens with it plus one): choice 0 keeps the request's seed, so
         * one choice decodes as it always did; the others are as far apart as a 64-bit odd constant
         * puts them. Null for an unseeded request.
         */
        public Long seedOfChoice(int choice) {
            return seed == null ? null : seed + choice * 0x9E3779B97F4A7C15L;
        }

        /** Whether end-of-generation tokens may not be sampled after {@code produced} tokens. */
        public boolean endForbidden(int produced) {
            return ignoreEos || produced < minTokens;
        }
    }

    /**
     * Conductor -> decode worker: reserve KV for a prompt and its generation ({@code promptTokens +
     * maxTokens}); with {@code choices} > 1 (0, from an older sender, is one), as many generations
     * sharing the prompt's full blocks (each its own copy of the last partial one, and its own blocks
     * for what it generates). A sender that predates {@code choices} leaves it out: one.
     */
    public record ReserveRequest(long reservationId, int promptTokens, int maxTokens, Integer choices) {
        public ReserveRequest {
            choices = choices == null ? 1 : choices;
        }

        public ReserveRequest(long reservationId, int promptTokens, int maxTokens) {
            this(reservationId, promptTokens, maxTokens, 1);
        }
    }

    /** Decode worker -> conductor: where the prefill must write the KV, and how many blocks were reserved. */
    public record ReserveResponse(long reservationId, KvTarget kv, int blocks, int blockTokens) {}

    /**
     * Where a request's KV goes: the decode worker's transfer segment, by name only (the prefill
     * worker looks its descriptor up in its own trusted metadata, never in a message), the offset of
     * each reserved block in that segment, and the bytes of one layer of one block (layer l of block
     * b is at {@code blockOffsets[b] + l * layerBytes}).
     */
    public record KvTarget(String segment, long[] blockOffsets, long layerBytes) {}

    /**
     * Conductor -> prefill worker: compute the prompt's KV and write it into reservation
     * {@code reservationId}. {@code poolPrefixBlocks}: how many leading blocks of {@code blockKeys} the
     * conductor found in the KV pool (Algorithm 1's fetch branch); the worker fetches those it lacks
     * from their holders, looking their places up in the store master itself (0: reuse only its own).
     * {@code maxTokens}: the request's token budget, which a schema constraint steers the first token by
     * (null from a sender that predates it: no steering at the first token). {@code choices}: how many
     * first tokens to sample from the prompt's last logits (one per choice of {@code n}; left out, one).
     * {@code promptLogprobs}: compute every position of the prompt (no prefix reused) and return the
     * log-probability of each prompt token after the first. {@code deadlineMillis}: how long the worker
     * has, from when it receives the task, to finish it with its KV writes and prefix fetches (past it
     * the work is aborted on both sides and the reservation's writer stops; null: no deadline).
     */
    public record PrefillTask(
            long reservationId,
            int[] tokens,
            long[] blockKeys,
            int poolPrefixBlocks,
            KvTarget kv,
            Sampling sampling,
            Integer maxTokens,
            Integer choices,
            Boolean promptLogprobs,
            Long deadlineMillis) {
        public PrefillTask {
            choices = choices == null ? 1 : choices;
            promptLogprobs = Boolean.TRUE.equals(promptLogprobs);
        }

        public PrefillTask(
                long reservationId,
                int[] tokens,
                long[] blockKeys,
                int poolPrefixBlocks,
                KvTarget kv,
                Sampling s,
                Integer maxTokens,
                Integer choices,
                Boolean promptLogprobs) {
            this(reservationId, tokens, blockKeys, poolPrefixBlocks, kv, s, maxTokens, choices, promptLogprobs, null);
        }

        public PrefillTask(
                long reservationId, int[] tokens, long[] blockKeys, int poolPrefixBlocks, KvTarget kv, Sampling s) {
            this(reservationId, tokens, blockKeys, poolPrefixBlocks, kv, s, null);
        }

        public PrefillTask(
                long reservationId,
                int[] tokens,
                long[] blockKeys,
                int poolPrefixBlocks,
                KvTarget kv,
                Sampling s,
                Integer maxTokens) {
            this(reservationId, tokens, blockKeys, poolPrefixBlocks, kv, s, maxTokens, 1, false);
        }
    }

    /**
     * Prefill worker -> conductor: the first token, once all the KV has reached the decode worker.
     * {@code cachedTokens} were reused, of which {@code fetchedTokens} came from another worker through the pool.
     */
    public record PrefillResult(
            long reservationId,
            int firstToken,
            float firstLogprob,
            int cachedTokens,
            int fetchedTokens,
            double prefillSeconds,
            long kvBytes,
            double kvSeconds,
            double fetchSeconds,
            PrefillTimes times,
            int[] moreFirstTokens,
            float[] moreFirstLogprobs,
            float[] promptLogprobs) {
        /** A result without the optional parts (times, further choices, prompt log-probabilities). */
        public PrefillResult(
                long reservationId,
                int firstToken,
                float firstLogprob,
                int cachedTokens,
                int fetchedTokens,
                double prefillSeconds,
                long kvBytes,
                double kvSeconds) {
            this(
                    reservationId,
                    firstToken,
                    firstLogprob,
                    cachedTokens,
                    fetchedTokens,
                    prefillSeconds,
                    kvBytes,
                    kvSeconds,
                    0,
                    null,
                    null,
                    null,
                    null);
        }

        /**
         * Checks what a prefill worker answered before anything uses it; a bad value fails this request
         * alone. Returns this.
         */
        public PrefillResult validate(long expectedReservation, int promptTokens, int vocabSize) {
            if (reservationId != expectedReservation)
                throw new IllegalArgumentException(
                        "prefill result for reservation " + reservationId + ": expected " + expectedReservation);
            if (firstToken < 0 || firstToken >= vocabSize)
                throw new IllegalArgumentException(
                        "prefill result first token " + firstToken + ": expected 0.." + (vocabSize - 1));
            if (cachedTokens < 0 || cachedTokens >= promptTokens)
                throw new IllegalArgumentException(
                        "prefill result cached tokens " + cachedTokens + ": expected 0.." + (promptTokens - 1));
            if (fetchedTokens < 0 || fetchedTokens > cachedTokens)
                throw new IllegalArgumentException(
                        "prefill result fetched tokens " + fetchedTokens + ": expected 0.." + cachedTokens);
            if (!(prefillSeconds >= 0)
                    || !(kvSeconds >= 0)
                    || !(fetchSeconds >= 0)
                    || Double.isInfinite(fetchSeconds)
                    || kvBytes < 0
                    || Double.isInfinite(prefillSeconds)
                    || Double.isInfinite(kvSeconds)) {
                throw new IllegalArgumentException("prefill result times " + prefillSeconds + " s / " + kvSeconds
                        + " s, " + kvBytes + " bytes: expected finite, non-negative values");
            }
            if (Float.isNaN(firstLogprob) || firstLogprob > 0)
                throw new IllegalArgumentException(
                        "prefill result logprob " + firstLogprob + ": expected a number <= 0");
            if (times != null) times.validate();
            if (moreFirstTokens != null) {
                if (moreFirstLogprobs == null || moreFirstLogprobs.length != moreFirstTokens.length)
                    throw new IllegalArgumentException("prefill result: " + moreFirstTokens.length
                            + " more first tokens need as many log-probabilities");
                for (int t : moreFirstTokens)
                    if (t < 0 || t >= vocabSize)
                        throw new IllegalArgumentException(
                                "prefill result first token " + t + ": expected 0.." + (vocabSize - 1));
                checkLogprobs(moreFirstLogprobs, "first token");
            }
            if (promptLogprobs != null) {
                if (promptLogprobs.length != promptTokens - 1)
                    throw new IllegalArgumentException(
                            "prefill result: " + promptLogprobs.length + " prompt log-probabilities, expected "
                                    + (promptTokens - 1) + " (one per token after the first)");
                checkLogprobs(promptLogprobs, "prompt token");
            }
            return this;
        }

        /** The choices' first tokens, this result's first and then the others ({@code n} > 1). */
        public int[] firstTokens() {
            int[] all = new int[1 + (moreFirstTokens == null ? 0 : moreFirstTokens.length)];
            all[0] = firstToken;
            for (int i = 1; i < all.length; i++) all[i] = moreFirstTokens[i - 1];
            return all;
        }

        /** The log-probabilities of {@link #firstTokens()}. */
        public float[] firstLogprobs() {
            float[] all = new float[1 + (moreFirstLogprobs == null ? 0 : moreFirstLogprobs.length)];
            all[0] = firstLogprob;
            for (int i = 1; i < all.length; i++) all[i] = moreFirstLogprobs[i - 1];
            return all;
        }

        private static void checkLogprobs(float[] lps, String what) {
            for (float lp : lps)
                if (Float.isNaN(lp) || lp > 0)
                    throw new IllegalArgumentException(
                            "prefill result " + what + " logprob " + lp + ": expected a number <= 0");
        }
    }

    /**
     * What a prefill worker measured apart: {@code computeSeconds} the engine's prefill alone (the
     * basis of the conductor's prefill-time fit), {@code queueSeconds} its wait for the engine behind
     * other prefills, and its KV writes to the decode worker ({@code kvWrites} writes taking {@code
     * kvWriteSeconds} summed, {@code kvWriteConcurrency} writes in flight on average when each started).
     */
    public record PrefillTimes(
            double computeSeconds,
            double queueSeconds,
            int kvWrites,
            double kvWriteSeconds,
            double kvWriteConcurrency) {
        void validate() {
            if (!(computeSeconds >= 0)
                    || !(queueSeconds >= 0)
                    || !(kvWriteSeconds >= 0)
                    || !(kvWriteConcurrency >= 0)
                    || kvWrites < 0
                    || Double.isInfinite(computeSeconds + queueSeconds + kvWriteSeconds + kvWriteConcurrency))
                throw new IllegalArgumentException("prefill result times compute " + computeSeconds + " s, queue "
                        + queueSeconds + " s, " + kvWrites + " writes in " + kvWriteSeconds + " s at concurrency "
                        + kvWriteConcurrency + ": expected finite, non-negative values");
        }
    }

    /**
     * Conductor -> decode worker: start decoding reservation {@code reservationId} after {@code firstToken}.
     * {@code keys}, when set, lets the decode worker put the finished sequence's full blocks (prompt and
     * generated text) into the KV pool, so the next turn of the conversation reuses its whole history.
     * {@code moreFirstTokens}: the first tokens of choices 1.. of a reservation made for several
     * ({@code n} > 1), each decoded as a fork of the prompt's KV; null for one. {@code movable}: the
     * conductor can continue this stream elsewhere, so a draining worker may end it early with the
     * finish {@code "moved"} instead of holding it to the end (left out, false). {@code drawn}: the
     * tokens a moved stream drew before, which a schema's constraint replays. {@code history}: a
     * moved stream the decode worker takes itself, with no prefill worker between: every token of its
     * prompt (the request's and those relayed before); the leading full blocks the KV pool holds are
     * read from it by {@code keys}, the tokens after them computed here (the last partial block, and
     * any block not yet in the pool, a few blocks at most), and the worker samples the first token
     * (sent as the stream's first event; {@code firstToken} is then unused, 0); null: a prefill worker
     * wrote the KV.
     */
    public record DecodeTask(
            long reservationId,
            int firstToken,
            int promptTokens,
            int maxTokens,
            Sampling sampling,
            SequenceKeys keys,
            int[] moreFirstTokens,
            Boolean movable,
            int[] drawn,
            int[] history) {
        public DecodeTask {
            movable = Boolean.TRUE.equals(movable);
        }

        /** Without {@code history}: the KV was written by a prefill worker. */
        public DecodeTask(
                long reservationId,
                int firstToken,
                int promptTokens,
                int maxTokens,
                Sampling sampling,
                SequenceKeys keys,
                int[] moreFirstTokens,
                Boolean movable,
                int[] drawn) {
            this(
                    reservationId,
                    firstToken,
                    promptTokens,
                    maxTokens,
                    sampling,
                    keys,
                    moreFirstTokens,
                    movable,
                    drawn,
                    null);
        }

        /** Without {@code drawn}: the tokens a moved stream drew before, which a schema's constraint replays. */
        public DecodeTask(
                long reservationId,
                int firstToken,
                int promptTokens,
                int maxTokens,
                Sampling sampling,
                SequenceKeys keys,
                int[] moreFirstTokens,
                Boolean movable) {
            this(reservationId, firstToken, promptTokens, maxTokens, sampling, keys, moreFirstTokens, movable, null);
        }

        public DecodeTask(
                long reservationId,
                int firstToken,
                int promptTokens,
                int maxTokens,
                Sampling sampling,
                SequenceKeys keys,
                int[] moreFirstTokens) {
            this(reservationId, firstToken, promptTokens, maxTokens, sampling, keys, moreFirstTokens, false);
        }

        public DecodeTask(long reservationId, int firstToken, int promptTokens, int maxTokens, Sampling sampling) {
            this(reservationId, firstToken, promptTokens, maxTokens, sampling, null);
        }

        public DecodeTask(
                long reservationId,
                int firstToken,
                int promptTokens,
                int maxTokens,
                Sampling sampling,
                SequenceKeys keys) {
            this(reservationId, firstToken, promptTokens, maxTokens, sampling, keys, null);
        }
    }

    /**
     * How to continue a prompt's block keys over the generated tokens: the hash seed and block size the
     * conductor keyed the prompt with, the keys of its full blocks, and the tokens after the last full block.
     */
    public record SequenceKeys(long seed, int blockTokens, long[] promptKeys, int[] tailTokens) {}

    /**
     * Decode worker -> conductor, one JSON object per line: a token, or the end ({@code finish} set), of
     * choice {@code choice} (0 unless the reservation was made for several; left out, 0).
     */
    public record TokenEvent(int token, float logprob, String finish, Integer choice) {
        public TokenEvent {
            choice = choice == null ? 0 : choice;
        }

        public TokenEvent(int token, float logprob, String finish) {
            this(token, logprob, finish, 0);
        }

        public static TokenEvent token(int id, float logprob) {
            return new TokenEvent(id, logprob, null, 0);
        }

        public static TokenEvent end(String reason) {
            return new TokenEvent(-1, 0f, reason, 0);
        }
    }

    /** Prefill worker -> conductor: every block key in its prefix cache (pulled by a new leader). */
    public record KvIndex(String worker, long[] blockKeys) {}

    /** Prefill worker -> leader conductor, pushed as they happen: blocks that entered and left its prefix cache. */
    public record KvEvents(String worker, long[] stored, long[] evicted) {}

    /** Decode worker -> leader conductor, pushed every second in a cluster: requests running and KV tokens held. */
    public record LoadReport(String worker, int running, long kvTokens, long capacityTokens, DecodeSteps steps) {
        public LoadReport(String worker, int running, long kvTokens) {
            this(worker, running, kvTokens, 0, null);
        }
    }

    /**
     * A decode worker's steps since its last report: {@code count} steps taking {@code seconds} in all,
     * over {@code batchSum} sequences and {@code contextSum} context tokens summed per step (the
     * conductor fits TBT as a function of batch and context from these).
     */
    public record DecodeSteps(int count, double seconds, long batchSum, long contextSum) {}

    /**
     * Worker -> store master (on the leader conductor): this worker contributes a segment. {@code heldOnly}:
     * the worker manages that memory itself (its prefix cache in the KV slab) and only reports what it holds.
     */
    public record StoreMount(String client, String segment, String tier, long base, long capacity, boolean heldOnly) {}

    /**
     * Worker -> store master, pushed with every change (and as a heartbeat): blocks that entered its
     * memory ({@code storedKeys[i]} at {@code storedOffsets[i]} of {@code segment}, {@code blockBytes}
     * each) and blocks it dropped.
     */
    public record StoreHeld(
            String client, String segment, long[] storedKeys, long[] storedOffsets, long blockBytes, long[] released) {}

    /** Worker -> store master: the replicas of these keys, under a read lease. */
    public record StoreGet(long[] keys) {}

    /**
     * One replica as the store master names it: segment, byte range in it, tier. A segment name with a
     * {@code :pool} suffix is memory the master allocates in (protected by the read lease alone); without
     * it, a worker's own prefix cache (the reader pins the blocks at their holder before copying).
     */
    public record StoreReplica(String segment, long offset, long length, String tier) {}

    /**
     * Writer -> store master: start putting these keys ({@code blockBytes} each), preferring a segment;
     * {@code elsewhere}: anywhere but that segment instead (the writer's own: a running sequence's
     * blocks written behind must outlive the writer), left out: false.
     */
    public record StorePut(String client, long[] keys, long blockBytes, String preferredSegment, Boolean elsewhere) {
        public StorePut {
            elsewhere = Boolean.TRUE.equals(elsewhere);
        }

        public StorePut(String client, long[] keys, long blockBytes, String preferredSegment) {
            this(client, keys, blockBytes, preferredSegment, false);
        }
    }

    /** Store master -> writer: per key a status (started, exists, no_space) and, when started, where to write. */
    public record StorePutStarted(List<String> status, List<StoreReplica> replicas) {}

    /** Any client -> store master: keys to end, revoke, test or remove ({@code force}: remove despite leases). */
    public record StoreKeys(long[] keys, boolean force) {}

    /** Store master -> client: one answer per key (true/false, or a remove status name). */
    public record StoreAnswers(List<String> answers) {}

    /** Store master -> worker: per key (in order) its readable replicas (empty: not stored), and the lease's end. */
    public record StoreReplicas(List<List<StoreReplica>> replicas, long leaseUntilMillis) {}

    /** A worker's load and pool, for scheduling and dashboards. */
    public record WorkerStatus(
            String role,
            String model,
            int blockTokens,
            int freeBlocks,
            int usedBlocks,
            int capacityBlocks,
            int active,
            int queued,
            int cachedBlocks,
            int fencedBlocks) {}

    /**
     * Drop a reservation that will not be used (the control channel's form of {@code DELETE
     * /internal/reservations/{id}}).
     */
    public record Release(long reservationId) {}

    /** Error body of the internal API. */
    public record WorkerError(String code, String message) {}

    /**
     * What a worker tells the conductor that admits it ({@code GET /internal/profile}): its block-key
     * contract (the hash version, block size and key seed of its model, which must equal the
     * conductor's, or no key it holds ever matches one the conductor computes) and its costs as it
     * measured them at start-up (a few prefill lengths, a few decode batch sizes), which the
     * conductor's estimators start from.
     */
    public record WorkerProfile(
            String role,
            String model,
            String hashVersion,
            int blockTokens,
            long keySeed,
            int contextLength,
            long kvCapacityTokens,
            List<PrefillCost> prefill,
            List<StepCost> decode) {}

    /** A measured prefill: {@code inputTokens} with {@code cachedTokens} reused took {@code seconds} of compute. */
    public record PrefillCost(int inputTokens, int cachedTokens, double seconds) {}

    /** A measured decode step over {@code batch} sequences attending to {@code contextTokens} tokens. */
    public record StepCost(int batch, long contextTokens, double seconds) {}
}
