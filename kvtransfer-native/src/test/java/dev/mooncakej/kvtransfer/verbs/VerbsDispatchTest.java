package dev.mooncakej.kvtransfer.verbs;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * This machine has no RDMA device (no InfiniBand support in the kernel), so the verbs that need one
 * are exercised against a fake provider: a small C library, built here, whose ibv_context ops table
 * points at functions that record their arguments. That checks that posting and polling through the
 * ops table pass the right pointers and struct fields; and device discovery reports "no device"
 * cleanly instead of failing.
 */
@Timeout(value = 2, unit = TimeUnit.MINUTES)
class VerbsDispatchTest {
    private static final String FAKE_PROVIDER = """
            #include <infiniband/verbs.h>
            #include <stddef.h>
            static struct ibv_context ctx; static struct ibv_qp qp; static struct ibv_cq cq;
            static void *seen_qp, *seen_wr, *seen_cq; static uint64_t seen_wr_id, seen_remote_addr, seen_sge_addr;
            static uint32_t seen_rkey, seen_lkey, seen_len; static int seen_n, seen_num_sge, seen_opcode;
            static int fake_post_send(struct ibv_qp *q, struct ibv_send_wr *wr, struct ibv_send_wr **bad) {
              seen_qp = q; seen_wr = wr; seen_wr_id = wr->wr_id; seen_remote_addr = wr->wr.rdma.remote_addr;
              seen_rkey = wr->wr.rdma.rkey; seen_num_sge = wr->num_sge; seen_opcode = wr->opcode;
              seen_sge_addr = wr->sg_list[0].addr; seen_len = wr->sg_list[0].length; seen_lkey = wr->sg_list[0].lkey;
              *bad = NULL; return 0;
            }
            static int fake_poll_cq(struct ibv_cq *c, int n, struct ibv_wc *wc) {
              seen_cq = c; seen_n = n;
              wc[0].wr_id = 4242; wc[0].status = IBV_WC_SUCCESS; wc[0].byte_len = 65536; wc[0].qp_num = 77;
              return 1;
            }
            static void init(void) {
              ctx.ops.post_send = fake_post_send; ctx.ops.poll_cq = fake_poll_cq;
              qp.context = &ctx; qp.qp_num = 77; cq.context = &ctx;
            }
            struct ibv_qp *fake_qp(void) { init(); return &qp; }
            struct ibv_cq *fake_cq(void) { init(); return &cq; }
            uint64_t seen(int what) {
              switch (what) {
                case 0: return (uint64_t) seen_qp; case 1: return (uint64_t) seen_wr; case 2: return seen_wr_id;
                case 3: return seen_remote_addr; case 4: return seen_rkey; case 5: return seen_lkey;
                case 6: return seen_len; case 7: return seen_sge_addr; case 8: return (uint64_t) seen_num_sge;
                case 9: return (uint64_t) seen_opcode;
                case 10: return (uint64_t) seen_cq; case 11: return (uint64_t) seen_n; default: return 0;
              }
            }
            """;

    @TempDir
    Path dir;

    @Test
    void postSendAndPollCqGoThroughTheProvidersOpsTableWithTheRightArguments() throws Throwable {
        Path src = dir.resolve("fake.c"), lib = dir.resolve("libfakeverbs.so");
        Files.writeString(src, FAKE_PROVIDER);
        Process cc = new ProcessBuilder("gcc", "-shared", "-fPIC", "-O1", "-o", lib.toString(), src.toString())
                .redirectErrorStream(true)
                .start();
        String out = new String(cc.getInputStream().readAllBytes());
        assertThat(cc.waitFor()).as("gcc: %s", out).isZero();
        try (Arena arena = Arena.ofConfined()) {
            SymbolLookup fake = SymbolLookup.libraryLookup(lib, arena);
            Linker linker = Linker.nativeLinker();
            MethodHandle fakeQp = linker.downcallHandle(
                    fake.find("fake_qp").orElseThrow(), FunctionDescriptor.of(ValueLayout.ADDRESS));
            MethodHandle fakeCq = linker.downcallHandle(
                    fake.find("fake_cq").orElseThrow(), FunctionDescriptor.of(ValueLayout.ADDRESS));
            MethodHandle seen = linker.downcallHandle(
                    fake.find("seen").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));
            MemorySegment qp = (MemorySegment) fakeQp.invokeExact();

            MemorySegment buffer = arena.allocate(65536, 64);
            MemorySegment sge = arena.allocate(VerbsLayouts.IBV_SGE);
            sge.set(
                    ValueLayout.JAVA_LONG,
                    VerbsLayouts.IBV_SGE.byteOffset(PathElement.groupElement("addr")),
                    buffer.address());
            sge.set(ValueLayout.JAVA_INT, VerbsLayouts.IBV_SGE.byteOffset(PathElement.groupElement("length")), 65536);
            sge.set(ValueLayout.JAVA_INT, VerbsLayouts.IBV_SGE.byteOffset(PathElement.groupElement("lkey")), 0x1234);
            MemorySegment wr = arena.allocate(VerbsLayouts.IBV_SEND_WR);
            var l = VerbsLayouts.IBV_SEND_WR;
            wr.set(ValueLayout.JAVA_LONG, l.byteOffset(PathElement.groupElement("wr_id")), 99L);
            wr.set(ValueLayout.ADDRESS, l.byteOffset(PathElement.groupElement("sg_list")), sge);
            wr.set(ValueLayout.JAVA_INT, l.byteOffset(PathElement.groupElement("num_sge")), 1);
            wr.set(ValueLayout.JAVA_INT, l.byteOffset(PathElement.groupElement("opcode")), 0); // IBV_WR_RDMA_WRITE
            wr.set(
                    ValueLayout.JAVA_LONG,
                    l.byteOffset(
                            PathElement.groupElement("wr"),
                            PathElement.groupElement("rdma"),
                            PathElement.groupElement("remote_addr")),
                    0x7f00_1000L);
            wr.set(
                    ValueLayout.JAVA_INT,
                    l.byteOffset(
                            PathElement.groupElement("wr"),
                            PathElement.groupElement("rdma"),
                            PathElement.groupElement("rkey")),
                    0xBEEF);
            MemorySegment bad = arena.allocate(ValueLayout.ADDRESS);

            assertThat(VerbsOps.postSend(qp, wr, bad)).isZero();
            assertThat((long) seen.invokeExact(0)).as("qp pointer").isEqualTo(qp.address());
            assertThat((long) seen.invokeExact(1)).as("wr pointer").isEqualTo(wr.address());
            assertThat((long) seen.invokeExact(2)).as("wr_id").isEqualTo(99L);
            assertThat((long) seen.invokeExact(3)).as("wr.rdma.remote_addr").isEqualTo(0x7f00_1000L);
            assertThat((long) seen.invokeExact(4)).as("wr.rdma.rkey").isEqualTo(0xBEEFL);
            assertThat((long) seen.invokeExact(5)).as("sg_list[0].lkey").isEqualTo(0x1234L);
            assertThat((long) seen.invokeExact(6)).as("sg_list[0].length").isEqualTo(65536L);
            assertThat((long) seen.invokeExact(7)).as("sg_list[0].addr").isEqualTo(buffer.address());
            assertThat((long) seen.invokeExact(8)).as("num_sge").isEqualTo(1L);
            assertThat(bad.get(ValueLayout.ADDRESS, 0)).as("bad_wr").isEqualTo(MemorySegment.NULL);

            MemorySegment cq = (MemorySegment) fakeCq.invokeExact();
            MemorySegment wc = arena.allocate(VerbsLayouts.IBV_WC.byteSize() * 4, 8);
            assertThat(VerbsOps.pollCq(cq, 4, wc)).isEqualTo(1);
            assertThat((long) seen.invokeExact(10)).as("cq pointer").isEqualTo(cq.address());
            assertThat((long) seen.invokeExact(11)).as("entries asked for").isEqualTo(4L);
            var w = VerbsLayouts.IBV_WC;
            assertThat(wc.get(ValueLayout.JAVA_LONG, w.byteOffset(PathElement.groupElement("wr_id"))))
                    .isEqualTo(4242L);
            assertThat(wc.get(ValueLayout.JAVA_INT, w.byteOffset(PathElement.groupElement("byte_len"))))
                    .isEqualTo(65536);
            assertThat(wc.get(ValueLayout.JAVA_INT, w.byteOffset(PathElement.groupElement("qp_num"))))
                    .isEqualTo(77);
        }
    }

    @Test
    void withoutADeviceDiscoveryReportsWhyInsteadOfFailing() {
        Verbs.Probe p = Verbs.probe();
        System.out.println("RDMA device probe on this machine: " + p);
        if (p.available()) {
            assertThat(p.devices()).isPositive();
        } else {
            assertThat(p.devices()).isZero();
            assertThat(p.reason()).isNotBlank();
        }
    }
}
