/*
 * A fake libibverbs for tests on machines without an RDMA device (this one has no InfiniBand in its
 * kernel). It exports the verbs the rdma transport binds, with rdma-core's own struct layouts, and
 * emulates two devices in one process: RC queue pairs that must go RESET -> INIT -> RTR -> RTS with
 * the right attribute masks, memory regions with lkeys and rkeys, and one-sided RDMA WRITE / READ done
 * with memcpy after checking the local lkey, the remote rkey (registered on the peer QP's device, with
 * the access flag the operation needs) and both bounds. Completions go to the QP's send CQ and are
 * reaped through the context's ops table (poll_cq), as the real inline verbs do. fake_verbs_fail(n)
 * makes the next n work requests complete with IBV_WC_RETRY_EXC_ERR.
 */
#include <infiniband/verbs.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#undef ibv_reg_mr
#undef ibv_query_port

#define NDEV 2
#define MAXMR 1024
#define MAXQP 4096

struct fake_cq { struct ibv_cq cq; pthread_mutex_t lock; struct ibv_wc *ring; int cap, head, count; };
struct fake_qp { struct ibv_qp qp; int dest, state, port, access; int dev; };

static struct ibv_device devices[NDEV];
static struct ibv_mr *mrs[MAXMR];
static struct fake_qp *qps[MAXQP];
static pthread_mutex_t registry = PTHREAD_MUTEX_INITIALIZER;
static uint32_t next_key = 0x100;
static uint32_t next_qpn = 1;
static int fail_next = 0;
static long wrs_posted = 0, modify_errors = 0;

void fake_verbs_fail(int n) { pthread_mutex_lock(&registry); fail_next = n; pthread_mutex_unlock(&registry); }
long fake_verbs_posted(void) { return wrs_posted; }
long fake_verbs_modify_errors(void) { return modify_errors; }

static int dev_index(struct ibv_context *c) { return (int) (c->device - devices); }

static struct ibv_mr *find_mr(uint32_t key, int is_rkey, uint64_t addr, uint64_t len, struct ibv_context *ctx, int access) {
  for (int i = 0; i < MAXMR; i++) {
    struct ibv_mr *m = mrs[i];
    if (!m || (is_rkey ? m->rkey : m->lkey) != key || m->context != ctx) continue;
    if (addr < (uint64_t) m->addr || addr + len > (uint64_t) m->addr + m->length) return NULL;
    if (access && !(m->handle & access)) return NULL; /* handle holds the access flags here */
    return m;
  }
  return NULL;
}

static void push(struct ibv_cq *cq, uint64_t id, enum ibv_wc_status st, enum ibv_wc_opcode op, uint32_t len, uint32_t qpn) {
  struct fake_cq *f = (struct fake_cq *) cq;
  pthread_mutex_lock(&f->lock);
  if (f->count < f->cap) {
    struct ibv_wc *w = &f->ring[(f->head + f->count) % f->cap];
    memset(w, 0, sizeof *w);
    w->wr_id = id; w->status = st; w->opcode = op; w->byte_len = len; w->qp_num = qpn;
    f->count++;
  }
  pthread_mutex_unlock(&f->lock);
}

static int fake_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad) {
  struct fake_qp *q = (struct fake_qp *) qp;
  for (; wr; wr = wr->next) {
    if (q->state != IBV_QPS_RTS || wr->num_sge != 1 || (wr->opcode != IBV_WR_RDMA_WRITE && wr->opcode != IBV_WR_RDMA_READ)) { *bad = wr; return EINVAL; }
    pthread_mutex_lock(&registry);
    wrs_posted++;
    int fail = fail_next > 0 ? (fail_next--, 1) : 0;
    struct fake_qp *peer = q->dest > 0 && q->dest < MAXQP ? qps[q->dest] : NULL;
    int write = wr->opcode == IBV_WR_RDMA_WRITE;
    struct ibv_sge *s = &wr->sg_list[0];
    struct ibv_mr *lm = find_mr(s->lkey, 0, s->addr, s->length, qp->context, write ? 0 : IBV_ACCESS_LOCAL_WRITE);
    struct ibv_mr *rm = peer ? find_mr(wr->wr.rdma.rkey, 1, wr->wr.rdma.remote_addr, s->length, peer->qp.context,
                                       write ? IBV_ACCESS_REMOTE_WRITE : IBV_ACCESS_REMOTE_READ) : NULL;
    enum ibv_wc_status st = fail ? IBV_WC_RETRY_EXC_ERR : !lm ? IBV_WC_LOC_PROT_ERR : !rm ? IBV_WC_REM_ACCESS_ERR : IBV_WC_SUCCESS;
    pthread_mutex_unlock(&registry);
    if (st == IBV_WC_SUCCESS) {
      if (write) memcpy((void *) wr->wr.rdma.remote_addr, (void *) s->addr, s->length);
      else memcpy((void *) s->addr, (void *) wr->wr.rdma.remote_addr, s->length);
    } else {
      q->state = IBV_QPS_ERR;
    }
    if ((wr->send_flags & IBV_SEND_SIGNALED) || st != IBV_WC_SUCCESS)
      push(qp->send_cq, wr->wr_id, st, write ? IBV_WC_RDMA_WRITE : IBV_WC_RDMA_READ, s->length, qp->qp_num);
  }
  *bad = NULL;
  return 0;
}

static int fake_poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc) {
  struct fake_cq *f = (struct fake_cq *) cq;
  pthread_mutex_lock(&f->lock);
  int k = 0;
  while (k < n && f->count > 0) { wc[k++] = f->ring[f->head]; f->head = (f->head + 1) % f->cap; f->count--; }
  pthread_mutex_unlock(&f->lock);
  return k;
}

struct ibv_device **ibv_get_device_list(int *num) {
  struct ibv_device **list = calloc(NDEV + 1, sizeof *list);
  for (int i = 0; i < NDEV; i++) {
    strcpy(devices[i].name, i == 0 ? "fakeib0" : "fakeib1");
    list[i] = &devices[i];
  }
  if (num) *num = NDEV;
  return list;
}
void ibv_free_device_list(struct ibv_device **list) { free(list); }
const char *ibv_get_device_name(struct ibv_device *d) { return d->name; }

struct ibv_context *ibv_open_device(struct ibv_device *d) {
  struct ibv_context *c = calloc(1, sizeof *c);
  c->device = d;
  c->ops.post_send = fake_post_send;
  c->ops.poll_cq = fake_poll_cq;
  return c;
}
int ibv_close_device(struct ibv_context *c) { free(c); return 0; }

struct ibv_pd *ibv_alloc_pd(struct ibv_context *c) { struct ibv_pd *p = calloc(1, sizeof *p); p->context = c; return p; }
int ibv_dealloc_pd(struct ibv_pd *p) { free(p); return 0; }

struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t len, int access) {
  if (!addr || !len || (!(access & IBV_ACCESS_LOCAL_WRITE) && (access & IBV_ACCESS_REMOTE_WRITE))) { errno = EINVAL; return NULL; }
  struct ibv_mr *m = calloc(1, sizeof *m);
  m->context = pd->context; m->pd = pd; m->addr = addr; m->length = len; m->handle = (uint32_t) access;
  pthread_mutex_lock(&registry);
  m->lkey = next_key++; m->rkey = next_key++;
  for (int i = 0; i < MAXMR; i++) if (!mrs[i]) { mrs[i] = m; break; }
  pthread_mutex_unlock(&registry);
  return m;
}
int ibv_dereg_mr(struct ibv_mr *m) {
  pthread_mutex_lock(&registry);
  for (int i = 0; i < MAXMR; i++) if (mrs[i] == m) mrs[i] = NULL;
  pthread_mutex_unlock(&registry);
  free(m);
  return 0;
}

struct ibv_cq *ibv_create_cq(struct ibv_context *c, int cqe, void *ctx, struct ibv_comp_channel *ch, int vec) {
  if (cqe < 1) { errno = EINVAL; return NULL; }
  struct fake_cq *f = calloc(1, sizeof *f);
  f->cq.context = c; f->cq.cqe = cqe; f->cap = cqe; f->ring = calloc(cqe, sizeof *f->ring);
  pthread_mutex_init(&f->lock, NULL);
  return &f->cq;
}
int ibv_destroy_cq(struct ibv_cq *cq) { struct fake_cq *f = (struct fake_cq *) cq; free(f->ring); free(f); return 0; }

struct ibv_qp *ibv_create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *a) {
  if (a->qp_type != IBV_QPT_RC || !a->send_cq || a->cap.max_send_wr < 1 || a->cap.max_send_sge < 1) { errno = EINVAL; return NULL; }
  struct fake_qp *q = calloc(1, sizeof *q);
  q->qp.context = pd->context; q->qp.pd = pd; q->qp.send_cq = a->send_cq; q->qp.recv_cq = a->recv_cq; q->qp.qp_type = a->qp_type;
  q->state = IBV_QPS_RESET; q->dev = dev_index(pd->context);
  pthread_mutex_lock(&registry);
  q->qp.qp_num = next_qpn++;
  if (q->qp.qp_num < MAXQP) qps[q->qp.qp_num] = q;
  pthread_mutex_unlock(&registry);
  return &q->qp;
}
int ibv_destroy_qp(struct ibv_qp *qp) {
  pthread_mutex_lock(&registry);
  if (qp->qp_num < MAXQP) qps[qp->qp_num] = NULL;
  pthread_mutex_unlock(&registry);
  free(qp);
  return 0;
}

static int bad_modify(void) { modify_errors++; return EINVAL; }

int ibv_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *a, int mask) {
  struct fake_qp *q = (struct fake_qp *) qp;
  if (!(mask & IBV_QP_STATE)) return bad_modify();
  switch (a->qp_state) {
    case IBV_QPS_INIT:
      if (q->state != IBV_QPS_RESET || (mask & (IBV_QP_PORT | IBV_QP_ACCESS_FLAGS | IBV_QP_PKEY_INDEX)) != (IBV_QP_PORT | IBV_QP_ACCESS_FLAGS | IBV_QP_PKEY_INDEX)
          || a->port_num != 1) return bad_modify();
      q->access = a->qp_access_flags; break;
    case IBV_QPS_RTR: {
      int need = IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
      if (q->state != IBV_QPS_INIT || (mask & need) != need || a->dest_qp_num == 0 || a->dest_qp_num >= MAXQP || !qps[a->dest_qp_num]) return bad_modify();
      struct fake_qp *peer = qps[a->dest_qp_num];
      if (a->ah_attr.dlid != 1 + peer->dev || a->ah_attr.port_num != 1) return bad_modify();
      if (a->ah_attr.is_global && (a->ah_attr.grh.dgid.raw[15] != 1 + peer->dev || a->ah_attr.grh.dgid.raw[0] != 0xfe)) return bad_modify();
      q->dest = a->dest_qp_num; break;
    }
    case IBV_QPS_RTS: {
      int need = IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC;
      if (q->state != IBV_QPS_RTR || (mask & need) != need) return bad_modify();
      break;
    }
    default: return bad_modify();
  }
  q->state = a->qp_state;
  q->qp.state = a->qp_state;
  return 0;
}

int ibv_query_port(struct ibv_context *c, uint8_t port, struct _compat_ibv_port_attr *attr) {
  if (port != 1) return EINVAL;
  struct ibv_port_attr *a = (struct ibv_port_attr *) attr;
  memset(a, 0, sizeof *a);
  a->state = IBV_PORT_ACTIVE; a->active_mtu = IBV_MTU_4096; a->max_mtu = IBV_MTU_4096; a->lid = (uint16_t) (1 + dev_index(c));
  return 0;
}

int ibv_query_gid(struct ibv_context *c, uint8_t port, int index, union ibv_gid *gid) {
  if (port != 1 || index != 0) return EINVAL;
  memset(gid, 0, sizeof *gid);
  gid->raw[0] = 0xfe; gid->raw[1] = 0x80; gid->raw[15] = (uint8_t) (1 + dev_index(c));
  return 0;
}
