package dev.mooncakej.kvcache.wire;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mooncakej.kvcache.wire.WorkerMessages.DecodeSteps;
import dev.mooncakej.kvcache.wire.WorkerMessages.DecodeTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.KvEvents;
import dev.mooncakej.kvcache.wire.WorkerMessages.KvIndex;
import dev.mooncakej.kvcache.wire.WorkerMessages.KvTarget;
import dev.mooncakej.kvcache.wire.WorkerMessages.LoadReport;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillResult;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillTimes;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveRequest;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveResponse;
import dev.mooncakej.kvcache.wire.WorkerMessages.Sampling;
import dev.mooncakej.kvcache.wire.WorkerMessages.SequenceKeys;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreAnswers;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreKeys;
import dev.mooncakej.kvcache.wire.WorkerMessages.StorePut;
import dev.mooncakej.kvcache.wire.WorkerMessages.StorePutStarted;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreReplica;
import dev.mooncakej.kvcache.wire.WorkerMessages.TokenEvent;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Test vectors of every internal message: the exact bytes one side writes and the other reads, so a
 * change of either side's codec (or of a record) shows up here before it shows up as a broken cluster.
 */
class WireContractsTest {
    private static final Sampling GREEDY = new Sampling(0f, 1f, 0, 7L, false);

    private static <T> void roundTrips(T message, String json, Class<T> type) {
        assertThat(InternalJson.encode(message)).isEqualTo(json);
        T back = InternalJson.decode(json, type);
        assertThat(InternalJson.encode(back)).isEqualTo(json);
    }

    @Test
    void jsonMessagesHaveTheirPublishedForm() {
        roundTrips(
                new ReserveRequest(42, 100, 16),
                "{\"reservationId\":42,\"promptTokens\":100,\"maxTokens\":16,\"choices\":1}",
                ReserveRequest.class);
        roundTrips(
                new ReserveResponse(42, new KvTarget("decode-h-1", new long[] {0, 65536}, 8192), 4, 32),
                "{\"reservationId\":42,\"kv\":{\"segment\":\"decode-h-1\",\"blockOffsets\":[0,65536],\"layerBytes\":8"
                        + "192},\"blocks\":4,\"blockTokens\":32}",
                ReserveResponse.class);
        roundTrips(
                new PrefillTask(
                        42, new int[] {1, 2, 3}, new long[] {-5}, 1, new KvTarget("d", new long[] {0}, 64), GREEDY, 16),
                "{\"reservationId\":42,\"tokens\":[1,2,3],\"blockKeys\":[-5],\"poolPrefixBlocks\":1,"
                        + "\"kv\":{\"segment\":\"d\",\"blockOffsets\":[0],\"layerBytes\":64},"
                        + "\"sampling\":{\"temperature\":0.0,\"topP\":1.0,\"topK\":0,\"seed\":7,\"logprobs\":false,"
                        + "\"schema\":null,\"strict\":false,\"logitBias\":null,\"minTokens\":0,\"ignoreEos\":false,"
                        + "\"resumeAt\":0},"
                        + "\"maxTokens\":16,\"choices\":1,\"promptLogprobs\":false,\"deadlineMillis\":null}",
                PrefillTask.class);
        roundTrips(
                new PrefillResult(42, 9, -0.5f, 32, 16, 0.25, 4096, 0.001),
                "{\"reservationId\":42,\"firstToken\":9,\"firstLogprob\":-0.5,\"cachedTokens\":32,\"fetchedTokens\":16,"
                        + "\"prefillSeconds\":0.25,\"kvBytes\":4096,\"kvSeconds\":0.001,\"fetchSeconds\":0.0,"
                        + "\"times\":null,\"moreFirstTokens\":null,\"moreFirstLogprobs\":null,\"promptLogprobs\":null}",
                PrefillResult.class);
        roundTrips(
                new PrefillResult(
                        42,
                        9,
                        -0.5f,
                        32,
                        16,
                        0.25,
                        4096,
                        0.001,
                        0.0,
                        new PrefillTimes(0.2, 0.04, 12, 0.003, 1.5),
                        null,
                        null,
                        null),
                "{\"reservationId\":42,\"firstToken\":9,\"firstLogprob\":-0.5,\"cachedTokens\":32,\"fetchedTokens\":16,"
                        + "\"prefillSeconds\":0.25,\"kvBytes\":4096,\"kvSeconds\":0.001,\"fetchSeconds\":0.0,"
                        + "\"times\":{\"computeSeconds\":0.2,\"queueSeconds\":0.04,\"kvWrites\":12,"
                        + "\"kvWriteSeconds\":0.003,\"kvWriteConcurrency\":1.5},\"moreFirstTokens\":null,"
                        + "\"moreFirstLogprobs\":null,\"promptLogprobs\":null}",
                PrefillResult.class);
        roundTrips(
                new DecodeTask(42, 9, 100, 16, GREEDY),
                "{\"reservationId\":42,\"firstToken\":9,\"promptTokens\":100,\"maxTokens\":16,"
                        + "\"sampling\":{\"temperature\":0.0,\"topP\":1.0,\"topK\":0,\"seed\":7,\"logprobs\":false,"
                        + "\"schema\":null,\"strict\":false,\"logitBias\":null,\"minTokens\":0,\"ignoreEos\":false,"
                        + "\"resumeAt\":0},"
                        + "\"keys\":null,\"moreFirstTokens\":null,\"movable\":false,\"drawn\":null,\"history\":null}",
                DecodeTask.class);
        roundTrips(
                new DecodeTask(42, 9, 5, 16, GREEDY, new SequenceKeys(-7, 4, new long[] {11}, new int[] {3})),
                "{\"reservationId\":42,\"firstToken\":9,\"promptTokens\":5,\"maxTokens\":16,"
                        + "\"sampling\":{\"temperature\":0.0,\"topP\":1.0,\"topK\":0,\"seed\":7,\"logprobs\":false,"
                        + "\"schema\":null,\"strict\":false,\"logitBias\":null,\"minTokens\":0,\"ignoreEos\":false,"
                        + "\"resumeAt\":0},"
                        + "\"keys\":{\"seed\":-7,\"blockTokens\":4,\"promptKeys\":[11],\"tailTokens\":[3]},"
                        + "\"moreFirstTokens\":null,\"movable\":false,\"drawn\":null,\"history\":null}",
                DecodeTask.class);
        roundTrips(
                new StorePut("http://d:8200", new long[] {1, 2}, 4096, "decode-h-1:pool"),
                "{\"client\":\"http://d:8200\",\"keys\":[1,2],\"blockBytes\":4096,"
                        + "\"preferredSegment\":\"decode-h-1:pool\",\"elsewhere\":false}",
                StorePut.class);
        roundTrips(
                new StorePutStarted(
                        List.of("started", "exists"),
                        Arrays.asList(new StoreReplica("d:pool", 64, 4096, "dram"), null)),
                "{\"status\":[\"started\",\"exists\"],\"replicas\":[{\"segment\":\"d:pool\",\"offset\":64,"
                        + "\"length\":4096,\"tier\":\"dram\"},null]}",
                StorePutStarted.class);
        roundTrips(new StoreKeys(new long[] {5}, true), "{\"keys\":[5],\"force\":true}", StoreKeys.class);
        roundTrips(new StoreAnswers(List.of("busy")), "{\"answers\":[\"busy\"]}", StoreAnswers.class);
        roundTrips(
                TokenEvent.token(5, -1.25f),
                "{\"token\":5,\"logprob\":-1.25,\"finish\":null,\"choice\":0}",
                TokenEvent.class);
        roundTrips(
                TokenEvent.end("length"),
                "{\"token\":-1,\"logprob\":0.0,\"finish\":\"length\",\"choice\":0}",
                TokenEvent.class);
        roundTrips(
                new DecodeTask(42, 9, 5, 16, GREEDY, null, new int[] {4, 9}),
                "{\"reservationId\":42,\"firstToken\":9,\"promptTokens\":5,\"maxTokens\":16,"
                        + "\"sampling\":{\"temperature\":0.0,\"topP\":1.0,\"topK\":0,\"seed\":7,\"logprobs\":false,"
                        + "\"schema\":null,\"strict\":false,\"logitBias\":null,\"minTokens\":0,\"ignoreEos\":false,"
                        + "\"resumeAt\":0},"
                        + "\"keys\":null,\"moreFirstTokens\":[4,9],\"movable\":false,\"drawn\":null,\"history\":null}",
                DecodeTask.class);
        roundTrips(
                new LoadReport("http://d:8200", 3, 4096),
                "{\"worker\":\"http://d:8200\",\"running\":3,\"kvTokens\":4096,\"capacityTokens\":0,\"steps\":null}",
                LoadReport.class);
        roundTrips(
                new LoadReport("http://d:8200", 3, 4096, 32768, new DecodeSteps(40, 0.5, 120, 90000)),
                "{\"worker\":\"http://d:8200\",\"running\":3,\"kvTokens\":4096,\"capacityTokens\":32768,"
                        + "\"steps\":{\"count\":40,\"seconds\":0.5,\"batchSum\":120,\"contextSum\":90000}}",
                LoadReport.class);
        roundTrips(
                new KvEvents("http://p:8100", new long[] {1, 2}, new long[] {3}),
                "{\"worker\":\"http://p:8100\",\"stored\":[1,2],\"evicted\":[3]}",
                KvEvents.class);
        roundTrips(new KvIndex("p", new long[] {7}), "{\"worker\":\"p\",\"blockKeys\":[7]}", KvIndex.class);
    }

    @Test
    void aMovedStreamsGeneratorStandsWhereTheUndisturbedOnesDid() {
        Sampling s = new Sampling(1f, 1f, 0, 7L, false);
        assertThat(s.generatorAt(0, 0))
                .as("the prefill's first token: the seed")
                .containsExactly(7, 0);
        assertThat(s.generatorAt(0, 1))
                .as("the decode worker's tokens: the seed plus one")
                .containsExactly(8, 0);
        Sampling moved = new Sampling(1f, 1f, 0, 7L, false, null, false, null, 0, false, 30);
        assertThat(moved.generatorAt(0, 0))
                .as("token 30, sampled by the new placement's prefill: 29 draws of the decode generator made")
                .containsExactly(8, 29);
        assertThat(moved.generatorAt(0, 1)).as("its decode worker's tokens on").containsExactly(8, 30);
        assertThat(new Sampling(1f, 1f, 0, null, false).generatorAt(0, 1))
                .as("unseeded")
                .isNull();
        assertThat(InternalJson.decode(
                                "{\"temperature\":0,\"topP\":1,\"topK\":0,\"seed\":null,\"logprobs\":false}",
                                Sampling.class)
                        .resumeAt())
                .as("a sender that predates it: a stream of its own")
                .isZero();
    }

    @Test
    void samplingFromASenderWithoutSchemaFieldsReadsAsUnconstrained() {
        Sampling old = InternalJson.decode(
                "{\"temperature\":0,\"topP\":1,\"topK\":0,\"seed\":null,\"logprobs\":false}", Sampling.class);
        assertThat(old.schema()).isNull();
        assertThat(old.strict()).isFalse();
        assertThat(new Sampling(0f, 1f, 0, null, false, "{}", null, null, null, null).strict())
                .isFalse();
    }

    @Test
    void messagesFromASenderBeforeSeveralChoicesReadAsOne() {
        assertThat(InternalJson.decode("{\"reservationId\":1,\"promptTokens\":5,\"maxTokens\":2}", ReserveRequest.class)
                        .choices())
                .isEqualTo(1);
        TokenEvent ev = InternalJson.decode("{\"token\":5,\"logprob\":0,\"finish\":null}", TokenEvent.class);
        assertThat(ev.choice()).isZero();
        PrefillResult old = new PrefillResult(1, 9, 0f, 0, 0, 0.1, 0, 0);
        assertThat(old.firstTokens()).containsExactly(9);
        PrefillResult bad =
                new PrefillResult(1, 9, 0f, 0, 0, 0.1, 0, 0, 0, null, new int[] {9, 99}, new float[] {0, 0}, null);
        assertThatThrownBy(() -> bad.validate(1, 5, 50)).hasMessageContaining("first token 99");
        PrefillResult shortLps =
                new PrefillResult(1, 9, 0f, 0, 0, 0.1, 0, 0, 0, null, null, null, new float[] {-1f, -2f});
        assertThatThrownBy(() -> shortLps.validate(1, 5, 50)).hasMessageContaining("expected 4");
    }

    @Test
    void anUnknownFieldIsRefusedByName() {
        String withDescriptor =
                "{\"reservationId\":1,\"tokens\":[1],\"blockKeys\":[],\"kv\":{\"segment\":\"d\",\"descriptor\":\""
                        + "{\\\"shmFile\\\":\\\"/etc/passwd\\\"}\","
                        + "\"blockOffsets\":[0],\"layerBytes\":64},\"sampling\":{\"temperature\":0,\"topP\":1,\"top"
                        + "K\":0,\"seed\":null,\"logprobs\":false,"
                        + "\"schema\":null,\"strict\":false,\"logitBias\":null,\"minTokens\":0,\"ignoreEos\":false}}";
        assertThatThrownBy(() -> InternalJson.decode(withDescriptor, PrefillTask.class))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("unknown field 'descriptor'")
                .hasMessageContaining("(at $.kv.descriptor)")
                .satisfies(e -> assertThat(e.getMessage())
                        .as("no class or package names")
                        .doesNotContain("dev.", "$K"));
        assertThatThrownBy(() -> InternalJson.decode(
                        "{\"reservationId\":null,\"promptTokens\":1,\"maxTokens\":1}", ReserveRequest.class))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("ReserveRequest")
                .satisfies(e -> assertThat(e.getMessage()).doesNotContain("dev.mooncakej"));
        assertThatThrownBy(() -> InternalJson.decode("{\"keys\":[1,\"x\"]}", StoreKeys.class))
                .hasMessageContaining("$.keys[1]")
                .satisfies(e -> assertThat(e.getMessage()).doesNotContain("dev.mooncakej"));
        assertThatThrownBy(() -> InternalJson.decode("", ReserveRequest.class))
                .hasMessageContaining("empty ReserveRequest");
        assertThatThrownBy(() -> InternalJson.decode("[1]", ReserveRequest.class))
                .hasMessageContaining("malformed ReserveRequest");
    }

    @Test
    void kvControlMessagesHaveTheirPublishedBytes() {
        HexFormat hex = HexFormat.of();
        assertThat(hex.formatHex(KvControl.commit(0x0102030405060708L, 300).encode()))
                .isEqualTo("020100000000000008070605040302012c01000000000000");
        assertThat(hex.formatHex(KvControl.claim(1, "prefill-a").encode()))
                .isEqualTo("0101000000000000010000000000000000000000000000000970726566696c6c2d61");
        assertThat(hex.formatHex(KvControl.abort(2).encode()))
                .isEqualTo("030100000000000002000000000000000000000000000000");
        assertThat(hex.formatHex(KvControl.stopped(2).encode()))
                .isEqualTo("040100000000000002000000000000000000000000000000");
        for (KvControl m : new KvControl[] {
            KvControl.commit(9, 1), KvControl.claim(9, "x"), KvControl.abort(9), KvControl.stopped(9)
        }) {
            assertThat(KvControl.decode(m.encode())).isEqualTo(m);
        }
    }

    @Test
    void malformedKvControlMessagesAreRefusedWithTheReason() {
        assertThatThrownBy(() -> KvControl.decode(new byte[16])).hasMessageContaining("expected at least 24");
        byte[] badType = KvControl.abort(1).encode();
        badType[0] = 9;
        assertThatThrownBy(() -> KvControl.decode(badType)).hasMessageContaining("type 9");
        byte[] badVersion = KvControl.abort(1).encode();
        badVersion[1] = 2;
        assertThatThrownBy(() -> KvControl.decode(badVersion)).hasMessageContaining("version 2");
        byte[] trailing = Arrays.copyOf(KvControl.abort(1).encode(), 25);
        assertThatThrownBy(() -> KvControl.decode(trailing)).hasMessageContaining("25 bytes");
        byte[] shortName = KvControl.claim(1, "abc").encode();
        assertThatThrownBy(() -> KvControl.decode(Arrays.copyOf(shortName, shortName.length - 1)))
                .hasMessageContaining("name length");
        assertThatThrownBy(() -> KvControl.claim(1, "../x")).hasMessageContaining("segment name");
        assertThatThrownBy(() -> KvControl.commit(1, 0)).hasMessageContaining(">= 1");
    }

    @Test
    void aPrefillResultIsCheckedBeforeUse() {
        PrefillResult ok = new PrefillResult(1, 5, -0.1f, 0, 0, 0.1, 10, 0.01);
        assertThat(ok.validate(1, 10, 100)).isSameAs(ok);
        assertThatThrownBy(() -> ok.validate(2, 10, 100)).hasMessageContaining("reservation 1");
        assertThatThrownBy(() -> new PrefillResult(1, 100, 0f, 0, 0, 0.1, 10, 0.01).validate(1, 10, 100))
                .hasMessageContaining("first token 100");
        assertThatThrownBy(() -> new PrefillResult(1, -1, 0f, 0, 0, 0.1, 10, 0.01).validate(1, 10, 100))
                .hasMessageContaining("first token -1");
        assertThatThrownBy(() -> new PrefillResult(1, 5, 0f, 10, 0, 0.1, 10, 0.01).validate(1, 10, 100))
                .hasMessageContaining("cached tokens 10");
        assertThatThrownBy(() -> new PrefillResult(1, 5, 0f, 0, 0, Double.NaN, 10, 0.01).validate(1, 10, 100))
                .hasMessageContaining("times");
        assertThatThrownBy(() -> new PrefillResult(1, 5, 0f, 4, 5, 0.1, 10, 0.01).validate(1, 10, 100))
                .hasMessageContaining("fetched tokens 5");
        assertThatThrownBy(() -> new PrefillResult(1, 5, Float.NaN, 0, 0, 0.1, 10, 0.01).validate(1, 10, 100))
                .hasMessageContaining("logprob");
    }
}
