package dev.mooncakej.kvtransfer.verbs;

import static java.lang.foreign.MemoryLayout.paddingLayout;
import static java.lang.foreign.MemoryLayout.sequenceLayout;
import static java.lang.foreign.MemoryLayout.structLayout;
import static java.lang.foreign.MemoryLayout.unionLayout;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * Hand-written layouts of the libibverbs structs the RDMA transport touches (rdma-core 44, x86-64;
 * jextract is not available here). {@code VerbsLayoutsTest} compiles a C program against
 * {@code infiniband/verbs.h} and checks every size and every named field's offset against these.
 * Padding stands where the transport reads nothing.
 *
 * <pre>
 * ibv_context  328 B: device@0, ops@8 (32 function pointers: poll_cq@96, req_notify_cq@104,
 *                     post_send@208, post_recv@216), cmd_fd@264, async_fd@268, num_comp_vectors@272
 * ibv_qp       160 B: context@0, qp_num@52, state@56, qp_type@60
 * ibv_send_wr  128 B: wr_id@0, next@8, sg_list@16, num_sge@24, opcode@28, send_flags@32,
 *                     wr.rdma.remote_addr@40, wr.rdma.rkey@48
 * ibv_sge       16 B, ibv_wc 48 B, ibv_mr 48 B (lkey@36, rkey@40), ibv_qp_attr 144 B
 * </pre>
 */
public final class VerbsLayouts {
    private VerbsLayouts() {}

    public static final StructLayout IBV_SGE = structLayout(
                    JAVA_LONG.withName("addr"), JAVA_INT.withName("length"), JAVA_INT.withName("lkey"))
            .withName("ibv_sge");

    public static final StructLayout IBV_MR = structLayout(
                    ADDRESS.withName("context"),
                    ADDRESS.withName("pd"),
                    ADDRESS.withName("addr"),
                    JAVA_LONG.withName("length"),
                    JAVA_INT.withName("handle"),
                    JAVA_INT.withName("lkey"),
                    JAVA_INT.withName("rkey"),
                    paddingLayout(4))
            .withName("ibv_mr");

    public static final StructLayout IBV_WC = structLayout(
                    JAVA_LONG.withName("wr_id"),
                    JAVA_INT.withName("status"),
                    JAVA_INT.withName("opcode"),
                    JAVA_INT.withName("vendor_err"),
                    JAVA_INT.withName("byte_len"),
                    JAVA_INT.withName("imm_data"),
                    JAVA_INT.withName("qp_num"),
                    JAVA_INT.withName("src_qp"),
                    JAVA_INT.withName("wc_flags"),
                    JAVA_SHORT.withName("pkey_index"),
                    JAVA_SHORT.withName("slid"),
                    JAVA_BYTE.withName("sl"),
                    JAVA_BYTE.withName("dlid_path_bits"),
                    paddingLayout(2))
            .withName("ibv_wc");

    public static final StructLayout IBV_SEND_WR = structLayout(
                    JAVA_LONG.withName("wr_id"),
                    ADDRESS.withName("next"),
                    ADDRESS.withName("sg_list"),
                    JAVA_INT.withName("num_sge"),
                    JAVA_INT.withName("opcode"),
                    JAVA_INT.withName("send_flags"),
                    JAVA_INT.withName("imm_data"),
                    unionLayout(
                                    structLayout(
                                                    JAVA_LONG.withName("remote_addr"),
                                                    JAVA_INT.withName("rkey"),
                                                    paddingLayout(4))
                                            .withName("rdma"),
                                    structLayout(
                                                    JAVA_LONG.withName("remote_addr"),
                                                    JAVA_LONG.withName("compare_add"),
                                                    JAVA_LONG.withName("swap"),
                                                    JAVA_INT.withName("rkey"),
                                                    paddingLayout(4))
                                            .withName("atomic"),
                                    structLayout(
                                                    ADDRESS.withName("ah"),
                                                    JAVA_INT.withName("remote_qpn"),
                                                    JAVA_INT.withName("remote_qkey"))
                                            .withName("ud"))
                            .withName("wr"),
                    JAVA_INT.withName("qp_type_xrc_remote_srqn"),
                    paddingLayout(4),
                    paddingLayout(48) /* union { bind_mw; tso; } */)
            .withName("ibv_send_wr");

    private static final MemoryLayout PTHREAD_MUTEX = paddingLayout(40);
    private static final MemoryLayout PTHREAD_COND = paddingLayout(48);

    public static final StructLayout IBV_QP = structLayout(
                    ADDRESS.withName("context"),
                    ADDRESS.withName("qp_context"),
                    ADDRESS.withName("pd"),
                    ADDRESS.withName("send_cq"),
                    ADDRESS.withName("recv_cq"),
                    ADDRESS.withName("srq"),
                    JAVA_INT.withName("handle"),
                    JAVA_INT.withName("qp_num"),
                    JAVA_INT.withName("state"),
                    JAVA_INT.withName("qp_type"),
                    PTHREAD_MUTEX,
                    PTHREAD_COND,
                    JAVA_INT.withName("events_completed"),
                    paddingLayout(4))
            .withName("ibv_qp");

    /** The ops table of ibv_context, in header order; the transport calls the inline verbs through it. */
    public static final List<String> CONTEXT_OPS = List.of(
            "_compat_query_device",
            "_compat_query_port",
            "_compat_alloc_pd",
            "_compat_dealloc_pd",
            "_compat_reg_mr",
            "_compat_rereg_mr",
            "_compat_dereg_mr",
            "alloc_mw",
            "bind_mw",
            "dealloc_mw",
            "_compat_create_cq",
            "poll_cq",
            "req_notify_cq",
            "_compat_cq_event",
            "_compat_resize_cq",
            "_compat_destroy_cq",
            "_compat_create_srq",
            "_compat_modify_srq",
            "_compat_query_srq",
            "_compat_destroy_srq",
            "post_srq_recv",
            "_compat_create_qp",
            "_compat_query_qp",
            "_compat_modify_qp",
            "_compat_destroy_qp",
            "post_send",
            "post_recv",
            "_compat_create_ah",
            "_compat_destroy_ah",
            "_compat_attach_mcast",
            "_compat_detach_mcast",
            "_compat_async_event");

    public static final StructLayout IBV_CONTEXT_OPS = structLayout(opsFields()).withName("ibv_context_ops");

    public static final StructLayout IBV_CONTEXT = structLayout(
                    ADDRESS.withName("device"),
                    IBV_CONTEXT_OPS.withName("ops"),
                    JAVA_INT.withName("cmd_fd"),
                    JAVA_INT.withName("async_fd"),
                    JAVA_INT.withName("num_comp_vectors"),
                    paddingLayout(4),
                    PTHREAD_MUTEX,
                    ADDRESS.withName("abi_compat"))
            .withName("ibv_context");

    /** union ibv_gid: 16 raw bytes, or subnet prefix and interface id (8-byte aligned). */
    private static final MemoryLayout IBV_GID = unionLayout(
            sequenceLayout(16, JAVA_BYTE).withName("raw"),
            structLayout(JAVA_LONG.withName("subnet_prefix"), JAVA_LONG.withName("interface_id"))
                    .withName("global"));

    public static final StructLayout IBV_GLOBAL_ROUTE = structLayout(
                    IBV_GID.withName("dgid"),
                    JAVA_INT.withName("flow_label"),
                    JAVA_BYTE.withName("sgid_index"),
                    JAVA_BYTE.withName("hop_limit"),
                    JAVA_BYTE.withName("traffic_class"),
                    paddingLayout(1))
            .withName("ibv_global_route");

    public static final StructLayout IBV_AH_ATTR = structLayout(
                    IBV_GLOBAL_ROUTE.withName("grh"),
                    JAVA_SHORT.withName("dlid"),
                    JAVA_BYTE.withName("sl"),
                    JAVA_BYTE.withName("src_path_bits"),
                    JAVA_BYTE.withName("static_rate"),
                    JAVA_BYTE.withName("is_global"),
                    JAVA_BYTE.withName("port_num"),
                    paddingLayout(1))
            .withName("ibv_ah_attr");

    public static final StructLayout IBV_QP_CAP = structLayout(
                    JAVA_INT.withName("max_send_wr"),
                    JAVA_INT.withName("max_recv_wr"),
                    JAVA_INT.withName("max_send_sge"),
                    JAVA_INT.withName("max_recv_sge"),
                    JAVA_INT.withName("max_inline_data"))
            .withName("ibv_qp_cap");

    public static final StructLayout IBV_QP_ATTR = structLayout(
                    JAVA_INT.withName("qp_state"),
                    JAVA_INT.withName("cur_qp_state"),
                    JAVA_INT.withName("path_mtu"),
                    JAVA_INT.withName("path_mig_state"),
                    JAVA_INT.withName("qkey"),
                    JAVA_INT.withName("rq_psn"),
                    JAVA_INT.withName("sq_psn"),
                    JAVA_INT.withName("dest_qp_num"),
                    JAVA_INT.withName("qp_access_flags"),
                    IBV_QP_CAP.withName("cap"),
                    IBV_AH_ATTR.withName("ah_attr"),
                    IBV_AH_ATTR.withName("alt_ah_attr"),
                    JAVA_SHORT.withName("pkey_index"),
                    JAVA_SHORT.withName("alt_pkey_index"),
                    JAVA_BYTE.withName("en_sqd_async_notify"),
                    JAVA_BYTE.withName("sq_draining"),
                    JAVA_BYTE.withName("max_rd_atomic"),
                    JAVA_BYTE.withName("max_dest_rd_atomic"),
                    JAVA_BYTE.withName("min_rnr_timer"),
                    JAVA_BYTE.withName("port_num"),
                    JAVA_BYTE.withName("timeout"),
                    JAVA_BYTE.withName("retry_cnt"),
                    JAVA_BYTE.withName("rnr_retry"),
                    JAVA_BYTE.withName("alt_port_num"),
                    JAVA_BYTE.withName("alt_timeout"),
                    paddingLayout(1),
                    JAVA_INT.withName("rate_limit"),
                    paddingLayout(4))
            .withName("ibv_qp_attr");

    public static final StructLayout IBV_QP_INIT_ATTR = structLayout(
                    ADDRESS.withName("qp_context"),
                    ADDRESS.withName("send_cq"),
                    ADDRESS.withName("recv_cq"),
                    ADDRESS.withName("srq"),
                    IBV_QP_CAP.withName("cap"),
                    JAVA_INT.withName("qp_type"),
                    JAVA_INT.withName("sq_sig_all"),
                    paddingLayout(4))
            .withName("ibv_qp_init_attr");

    public static final StructLayout IBV_PORT_ATTR = structLayout(
                    JAVA_INT.withName("state"),
                    JAVA_INT.withName("max_mtu"),
                    JAVA_INT.withName("active_mtu"),
                    JAVA_INT.withName("gid_tbl_len"),
                    JAVA_INT.withName("port_cap_flags"),
                    JAVA_INT.withName("max_msg_sz"),
                    JAVA_INT.withName("bad_pkey_cntr"),
                    JAVA_INT.withName("qkey_viol_cntr"),
                    JAVA_SHORT.withName("pkey_tbl_len"),
                    JAVA_SHORT.withName("lid"),
                    JAVA_SHORT.withName("sm_lid"),
                    JAVA_BYTE.withName("lmc"),
                    JAVA_BYTE.withName("max_vl_num"),
                    JAVA_BYTE.withName("sm_sl"),
                    JAVA_BYTE.withName("subnet_timeout"),
                    JAVA_BYTE.withName("init_type_reply"),
                    JAVA_BYTE.withName("active_width"),
                    JAVA_BYTE.withName("active_speed"),
                    JAVA_BYTE.withName("phys_state"),
                    JAVA_BYTE.withName("link_layer"),
                    JAVA_BYTE.withName("flags"),
                    JAVA_SHORT.withName("port_cap_flags2"),
                    paddingLayout(2))
            .withName("ibv_port_attr");

    /** ibv_device_attr (ibv_query_device): the limits queue sizes and read depth are taken from. */
    public static final StructLayout IBV_DEVICE_ATTR = structLayout(
                    sequenceLayout(64, JAVA_BYTE).withName("fw_ver"),
                    JAVA_LONG.withName("node_guid"),
                    JAVA_LONG.withName("sys_image_guid"),
                    JAVA_LONG.withName("max_mr_size"),
                    JAVA_LONG.withName("page_size_cap"),
                    JAVA_INT.withName("vendor_id"),
                    JAVA_INT.withName("vendor_part_id"),
                    JAVA_INT.withName("hw_ver"),
                    JAVA_INT.withName("max_qp"),
                    JAVA_INT.withName("max_qp_wr"),
                    JAVA_INT.withName("device_cap_flags"),
                    JAVA_INT.withName("max_sge"),
                    JAVA_INT.withName("max_sge_rd"),
                    JAVA_INT.withName("max_cq"),
                    JAVA_INT.withName("max_cqe"),
                    JAVA_INT.withName("max_mr"),
                    JAVA_INT.withName("max_pd"),
                    JAVA_INT.withName("max_qp_rd_atom"),
                    JAVA_INT.withName("max_ee_rd_atom"),
                    JAVA_INT.withName("max_res_rd_atom"),
                    JAVA_INT.withName("max_qp_init_rd_atom"),
                    paddingLayout(4 * 15),
                    JAVA_INT.withName("max_srq_sge"),
                    JAVA_SHORT.withName("max_pkeys"),
                    JAVA_BYTE.withName("local_ca_ack_delay"),
                    JAVA_BYTE.withName("phys_port_cnt"),
                    paddingLayout(4))
            .withName("ibv_device_attr");

    /** ibv_async_event: the element (cq, qp or port number, by event type) and the event type. */
    public static final StructLayout IBV_ASYNC_EVENT = structLayout(
                    unionLayout(ADDRESS.withName("cq"), ADDRESS.withName("qp"), JAVA_INT.withName("port_num"))
                            .withName("element"),
                    JAVA_INT.withName("event_type"),
                    paddingLayout(4))
            .withName("ibv_async_event");

    /** Every layout checked against the C headers, by C struct name. */
    public static final List<StructLayout> ALL = List.of(
            IBV_SGE,
            IBV_MR,
            IBV_WC,
            IBV_SEND_WR,
            IBV_QP,
            IBV_CONTEXT_OPS,
            IBV_CONTEXT,
            IBV_GLOBAL_ROUTE,
            IBV_AH_ATTR,
            IBV_QP_CAP,
            IBV_QP_ATTR,
            IBV_QP_INIT_ATTR,
            IBV_PORT_ATTR,
            IBV_DEVICE_ATTR,
            IBV_ASYNC_EVENT);

    private static MemoryLayout[] opsFields() {
        List<MemoryLayout> f = new ArrayList<>();
        for (String name : CONTEXT_OPS) f.add(ADDRESS.withName(name));
        return f.toArray(new MemoryLayout[0]);
    }
}
