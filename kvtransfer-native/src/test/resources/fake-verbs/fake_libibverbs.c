/*
 * A fake libibverbs for tests on machines without an RDMA device (this one has no InfiniBand in its
 * kernel). It exports the verbs the rdma transport binds, with rdma-core's own struct layouts, and
 * behaves the way real providers do where the transport has to cope with them:
 *
 * - four devices: fakeib0 / fakeib1 (InfiniBand, LIDs 1 and 2, active MTU 4096 and 2048) and
 *   fakeroce0 / fakeroce1 (Ethernet, no LID, active MTU 1024, a GID table with RoCE v1 and v2 entries
 *   for a link-local and an IPv4 address, as the kernel lists them);
 * - RC queue pairs that must go RESET -> INIT -> RTR -> RTS with the right masks; RTR refuses a path
 *   MTU above either port's active MTU, an InfiniBand LID that is not the peer's, and on RoCE a route
 *   that is not global, a source GID that is not RoCE v2 or a destination GID the peer does not have;
 *   read depth above the device's limit is refused; a send queue deeper than max_send_wr is ENOMEM;
 * - one-sided RDMA WRITE / READ done by a "wire" thread of its own, after the post returned, checking
 *   the local lkey, the remote rkey (with the access flag the operation needs) and both bounds;
 * - a failed work request puts its QP in ERROR and every later or queued request on it completes with
 *   IBV_WC_WR_FLUSH_ERR, as does work posted to a QP already in error;
 * - a completion pushed into a full CQ is lost, the CQ is in error (poll returns -1 from then on) and
 *   IBV_EVENT_CQ_ERR is raised; async events are read from context->async_fd as the real library does;
 * - faults on demand: fake_verbs_inject(seed, per_million) fails work requests with
 *   IBV_WC_RETRY_EXC_ERR at that rate from a seeded generator, fake_verbs_fail(n) fails the next n,
 *   fake_verbs_port(dev, up) takes a port down (QPs on it to ERROR, IBV_EVENT_PORT_ERR) or up,
 *   fake_verbs_qp_fatal(qpn) raises IBV_EVENT_QP_FATAL; fake_verbs_caps() lowers device limits;
 *   fake_verbs_pause(1) holds the wire so that work is surely in flight while a test acts;
 * - counters (fake_verbs_stat) for what must not leak: live QPs, MRs, CQs and contexts, QPs destroyed
 *   with work still queued, CQ overruns.
 */
#define _GNU_SOURCE
#include <infiniband/verbs.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#undef ibv_reg_mr
#undef ibv_query_port

#define NDEV 4
#define MAXMR 4096
#define MAXQP 8192
#define MAXCTX 64

struct fake_cq { struct ibv_cq cq; pthread_mutex_t lock; struct ibv_wc *ring; int cap, head, count, overrun; };
struct fake_qp { struct ibv_qp qp; int dest, state, dev, max_wr, queued, sge; };
struct fake_ctx { struct ibv_context ctx; int pipe[2]; int ev_type[64]; void *ev_el[64]; int ev_head, ev_count; };
struct op { struct op *next; uint32_t qpn; uint64_t id; int write, signaled, flush; uint64_t laddr, raddr; uint32_t lkey, rkey, len; };

static struct ibv_device devices[NDEV];
static const char *names[NDEV] = {"fakeib0", "fakeib1", "fakeroce0", "fakeroce1"};
static const int mtus[NDEV] = {IBV_MTU_4096, IBV_MTU_2048, IBV_MTU_1024, IBV_MTU_1024};
static int port_state[NDEV] = {IBV_PORT_ACTIVE, IBV_PORT_ACTIVE, IBV_PORT_ACTIVE, IBV_PORT_ACTIVE};
static struct ibv_mr *mrs[MAXMR];
static struct fake_qp *qps[MAXQP];
static struct fake_ctx *ctxs[MAXCTX];
static struct fake_cq *cqs[MAXCTX];
static pthread_mutex_t registry = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER;
static struct op *q_head, *q_tail;
static pthread_t wire;
static int wire_started;
static uint32_t next_key = 0x100, next_qpn = 1;
static int paused = 0;
static int fail_next = 0, inject_ppm = 0, max_qp_wr = 8192, max_cqe = 1 << 20;
static uint64_t rng = 1;
static long st_rtr_poller, st_posted, st_overruns, st_flushed, st_injected, st_busy_destroy, st_completed, st_live_qp, st_live_mr,
    st_live_cq, st_live_ctx;

static int is_eth(int dev) { return dev >= 2; }
static int dev_index(struct ibv_context *c) { return (int) (c->device - devices); }

/* GID table of a device: InfiniBand has its port GID at 0; RoCE lists v1, v2 for fe80::<dev> and v1, v2 for
 * ::ffff:10.9.0.<dev>, so index 0 is RoCE v1 link-local and 3 is the routable RoCE v2 one. */
static int gid_of(int dev, int index, union ibv_gid *g) {
  memset(g, 0, sizeof *g);
  if (!is_eth(dev)) {
    if (index != 0) return EINVAL;
    g->raw[0] = 0xfe; g->raw[1] = 0x80; g->raw[15] = (uint8_t) (1 + dev);
    return 0;
  }
  if (index < 0 || index > 3) return EINVAL;
  if (index < 2) { g->raw[0] = 0xfe; g->raw[1] = 0x80; g->raw[15] = (uint8_t) (1 + dev); }
  else { g->raw[10] = 0xff; g->raw[11] = 0xff; g->raw[12] = 10; g->raw[13] = 9; g->raw[15] = (uint8_t) (1 + dev); }
  return 0;
}
static int gid_is_v2(int index) { return index == 1 || index == 3; }

void fake_verbs_fail(int n) { pthread_mutex_lock(&registry); fail_next = n; pthread_mutex_unlock(&registry); }
void fake_verbs_inject(long seed, int per_million) {
  pthread_mutex_lock(&registry); rng = (uint64_t) seed * 2654435761u + 1; inject_ppm = per_million; pthread_mutex_unlock(&registry);
}
/* Holds the wire (nothing completes) until resumed: a test can then act while work is surely in flight. */
void fake_verbs_pause(int on) {
  pthread_mutex_lock(&registry); paused = on; pthread_cond_broadcast(&work); pthread_mutex_unlock(&registry);
}
void fake_verbs_caps(int qp_wr, int cqe) { max_qp_wr = qp_wr; max_cqe = cqe; }
long fake_verbs_posted(void) { return st_posted; }

long fake_verbs_stat(const char *what) {
  pthread_mutex_lock(&registry);
  long v = !strcmp(what, "posted") ? st_posted : !strcmp(what, "overruns") ? st_overruns : !strcmp(what, "flushed") ? st_flushed
      : !strcmp(what, "injected") ? st_injected : !strcmp(what, "busy_destroy") ? st_busy_destroy
      : !strcmp(what, "completed") ? st_completed : !strcmp(what, "live_qps") ? st_live_qp : !strcmp(what, "live_mrs") ? st_live_mr
      : !strcmp(what, "rtr_on_poller") ? st_rtr_poller : !strcmp(what, "live_cqs") ? st_live_cq : !strcmp(what, "live_contexts") ? st_live_ctx : -1;
  pthread_mutex_unlock(&registry);
  return v;
}

static uint64_t next_random(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

/* Under the registry lock. */
static void raise_event(struct ibv_context *c, int type, void *element) {
  struct fake_ctx *f = (struct fake_ctx *) c;
  if (f->ev_count == 64) return;
  int i = (f->ev_head + f->ev_count++) % 64;
  f->ev_type[i] = type; f->ev_el[i] = element;
  char b = 1;
  ssize_t ignored = write(f->pipe[1], &b, 1);
  (void) ignored;
}

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

/* Under the registry lock. A full CQ loses the completion and goes into error, as hardware does. */
static void push(struct ibv_cq *cq, uint64_t id, enum ibv_wc_status st, enum ibv_wc_opcode op, uint32_t len, uint32_t qpn) {
  struct fake_cq *f = (struct fake_cq *) cq;
  pthread_mutex_lock(&f->lock);
  if (f->count < f->cap && !f->overrun) {
    struct ibv_wc *w = &f->ring[(f->head + f->count) % f->cap];
    memset(w, 0, sizeof *w);
    w->wr_id = id; w->status = st; w->opcode = op; w->byte_len = len; w->qp_num = qpn;
    f->count++;
    pthread_mutex_unlock(&f->lock);
  } else {
    int first = !f->overrun;
    f->overrun = 1;
    pthread_mutex_unlock(&f->lock);
    st_overruns++;
    if (first) raise_event(cq->context, IBV_EVENT_CQ_ERR, cq);
  }
}

/* The wire: executes queued work requests in order, after the post that queued them returned. */
static void *wire_loop(void *unused) {
  (void) unused;
  pthread_mutex_lock(&registry);
  for (;;) {
    while (!q_head || paused) pthread_cond_wait(&work, &registry);
    struct op *o = q_head;
    q_head = o->next;
    if (!q_head) q_tail = NULL;
    struct fake_qp *q = o->qpn < MAXQP ? qps[o->qpn] : NULL;
    if (q) {
      enum ibv_wc_status st;
      if (o->flush || q->state == IBV_QPS_ERR) { st = IBV_WC_WR_FLUSH_ERR; st_flushed++; }
      else {
        int fail = fail_next > 0 ? (fail_next--, 1) : 0;
        if (!fail && inject_ppm > 0 && (int) (next_random() % 1000000) < inject_ppm) fail = 1;
        struct fake_qp *peer = q->dest > 0 && q->dest < MAXQP ? qps[q->dest] : NULL;
        struct ibv_mr *lm = find_mr(o->lkey, 0, o->laddr, o->len, q->qp.context, o->write ? 0 : IBV_ACCESS_LOCAL_WRITE);
        struct ibv_mr *rm = peer ? find_mr(o->rkey, 1, o->raddr, o->len, peer->qp.context,
                                           o->write ? IBV_ACCESS_REMOTE_WRITE : IBV_ACCESS_REMOTE_READ) : NULL;
        if (fail) st_injected++;
        st = fail ? IBV_WC_RETRY_EXC_ERR : !peer ? IBV_WC_RETRY_EXC_ERR : !lm ? IBV_WC_LOC_PROT_ERR
            : !rm ? IBV_WC_REM_ACCESS_ERR : IBV_WC_SUCCESS;
        if (st == IBV_WC_SUCCESS) {
          if (o->write) memcpy((void *) o->raddr, (void *) o->laddr, o->len);
          else memcpy((void *) o->laddr, (void *) o->raddr, o->len);
          st_completed++;
        } else {
          q->state = IBV_QPS_ERR; q->qp.state = IBV_QPS_ERR;
        }
      }
      q->queued--;
      if (o->signaled || st != IBV_WC_SUCCESS)
        push(q->qp.send_cq, o->id, st, o->write ? IBV_WC_RDMA_WRITE : IBV_WC_RDMA_READ, o->len, q->qp.qp_num);
    }
    free(o);
    if (!q_head) { pthread_mutex_unlock(&registry); usleep(20); pthread_mutex_lock(&registry); }
  }
  return NULL;
}

static int fake_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad) {
  struct fake_qp *q = (struct fake_qp *) qp;
  pthread_mutex_lock(&registry);
  for (; wr; wr = wr->next) {
    if ((q->state != IBV_QPS_RTS && q->state != IBV_QPS_ERR) || wr->num_sge != 1 || wr->num_sge > q->sge
        || (wr->opcode != IBV_WR_RDMA_WRITE && wr->opcode != IBV_WR_RDMA_READ)) {
      *bad = wr; pthread_mutex_unlock(&registry); return EINVAL;
    }
    if (q->queued >= q->max_wr) { *bad = wr; pthread_mutex_unlock(&registry); return ENOMEM; }
    struct op *o = calloc(1, sizeof *o);
    o->qpn = qp->qp_num; o->id = wr->wr_id; o->write = wr->opcode == IBV_WR_RDMA_WRITE;
    o->signaled = (wr->send_flags & IBV_SEND_SIGNALED) != 0; o->flush = q->state == IBV_QPS_ERR;
    o->laddr = wr->sg_list[0].addr; o->lkey = wr->sg_list[0].lkey; o->len = wr->sg_list[0].length;
    o->raddr = wr->wr.rdma.remote_addr; o->rkey = wr->wr.rdma.rkey;
    if (q_tail) q_tail->next = o; else q_head = o;
    q_tail = o;
    q->queued++;
    st_posted++;
  }
  pthread_cond_signal(&work);
  pthread_mutex_unlock(&registry);
  *bad = NULL;
  return 0;
}

static int fake_poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc) {
  struct fake_cq *f = (struct fake_cq *) cq;
  pthread_mutex_lock(&f->lock);
  if (f->overrun) { pthread_mutex_unlock(&f->lock); return -1; }
  int k = 0;
  while (k < n && f->count > 0) { wc[k++] = f->ring[f->head]; f->head = (f->head + 1) % f->cap; f->count--; }
  pthread_mutex_unlock(&f->lock);
  return k;
}

struct ibv_device **ibv_get_device_list(int *num) {
  struct ibv_device **list = calloc(NDEV + 1, sizeof *list);
  for (int i = 0; i < NDEV; i++) {
    strcpy(devices[i].name, names[i]);
    list[i] = &devices[i];
  }
  if (num) *num = NDEV;
  return list;
}
void ibv_free_device_list(struct ibv_device **list) { free(list); }
const char *ibv_get_device_name(struct ibv_device *d) { return d->name; }

struct ibv_context *ibv_open_device(struct ibv_device *d) {
  struct fake_ctx *f = calloc(1, sizeof *f);
  if (pipe(f->pipe) != 0) { free(f); return NULL; }
  f->ctx.device = d;
  f->ctx.async_fd = f->pipe[0];
  f->ctx.ops.post_send = fake_post_send;
  f->ctx.ops.poll_cq = fake_poll_cq;
  pthread_mutex_lock(&registry);
  if (!wire_started) { pthread_create(&wire, NULL, wire_loop, NULL); pthread_detach(wire); wire_started = 1; }
  for (int i = 0; i < MAXCTX; i++) if (!ctxs[i]) { ctxs[i] = f; break; }
  st_live_ctx++;
  pthread_mutex_unlock(&registry);
  return &f->ctx;
}
int ibv_close_device(struct ibv_context *c) {
  struct fake_ctx *f = (struct fake_ctx *) c;
  pthread_mutex_lock(&registry);
  for (int i = 0; i < MAXCTX; i++) if (ctxs[i] == f) ctxs[i] = NULL;
  st_live_ctx--;
  pthread_mutex_unlock(&registry);
  close(f->pipe[0]); close(f->pipe[1]);
  free(f);
  return 0;
}

int ibv_get_async_event(struct ibv_context *c, struct ibv_async_event *ev) {
  struct fake_ctx *f = (struct fake_ctx *) c;
  char b;
  if (read(f->pipe[0], &b, 1) != 1) return -1;
  pthread_mutex_lock(&registry);
  if (f->ev_count == 0) { pthread_mutex_unlock(&registry); return -1; }
  int i = f->ev_head;
  f->ev_head = (f->ev_head + 1) % 64; f->ev_count--;
  memset(ev, 0, sizeof *ev);
  ev->event_type = f->ev_type[i];
  if (ev->event_type == IBV_EVENT_PORT_ERR || ev->event_type == IBV_EVENT_PORT_ACTIVE) ev->element.port_num = 1;
  else ev->element.qp = f->ev_el[i];
  pthread_mutex_unlock(&registry);
  return 0;
}
void ibv_ack_async_event(struct ibv_async_event *ev) { (void) ev; }

void fake_verbs_port(int dev, int up) {
  pthread_mutex_lock(&registry);
  port_state[dev] = up ? IBV_PORT_ACTIVE : IBV_PORT_DOWN;
  if (!up)
    for (int i = 0; i < MAXQP; i++)
      if (qps[i] && qps[i]->dev == dev) { qps[i]->state = IBV_QPS_ERR; qps[i]->qp.state = IBV_QPS_ERR; }
  for (int i = 0; i < MAXCTX; i++)
    if (ctxs[i] && dev_index(&ctxs[i]->ctx) == dev) raise_event(&ctxs[i]->ctx, up ? IBV_EVENT_PORT_ACTIVE : IBV_EVENT_PORT_ERR, NULL);
  pthread_mutex_unlock(&registry);
}

void fake_verbs_qp_fatal(int qpn) {
  pthread_mutex_lock(&registry);
  struct fake_qp *q = qpn > 0 && qpn < MAXQP ? qps[qpn] : NULL;
  if (q) { q->state = IBV_QPS_ERR; q->qp.state = IBV_QPS_ERR; raise_event(q->qp.context, IBV_EVENT_QP_FATAL, &q->qp); }
  pthread_mutex_unlock(&registry);
}

/* Every CQ of a device goes into error, as after an overrun: poll returns -1, IBV_EVENT_CQ_ERR is raised. */
void fake_verbs_cq_error(int dev) {
  pthread_mutex_lock(&registry);
  for (int i = 0; i < MAXCTX; i++) {
    struct fake_cq *f = cqs[i];
    if (!f || dev_index(f->cq.context) != dev) continue;
    pthread_mutex_lock(&f->lock); f->overrun = 1; pthread_mutex_unlock(&f->lock);
    raise_event(f->cq.context, IBV_EVENT_CQ_ERR, &f->cq);
  }
  pthread_mutex_unlock(&registry);
}

/* IBV_EVENT_QP_FATAL for every queue pair of a device (they go to ERROR first). */
void fake_verbs_qp_fatal_dev(int dev) {
  pthread_mutex_lock(&registry);
  for (int i = 0; i < MAXQP; i++) {
    struct fake_qp *q = qps[i];
    if (q && q->dev == dev && q->state == IBV_QPS_RTS) {
      q->state = IBV_QPS_ERR; q->qp.state = IBV_QPS_ERR; raise_event(q->qp.context, IBV_EVENT_QP_FATAL, &q->qp);
    }
  }
  pthread_mutex_unlock(&registry);
}

int ibv_query_device(struct ibv_context *c, struct ibv_device_attr *a) {
  (void) c;
  memset(a, 0, sizeof *a);
  strcpy(a->fw_ver, "fake-1.0");
  a->max_qp = MAXQP; a->max_qp_wr = max_qp_wr; a->max_sge = 30; a->max_cq = 1024; a->max_cqe = max_cqe;
  a->max_mr = MAXMR; a->max_pd = 64; a->max_qp_rd_atom = 16; a->max_qp_init_rd_atom = 16; a->phys_port_cnt = 1;
  return 0;
}

struct ibv_pd *ibv_alloc_pd(struct ibv_context *c) { struct ibv_pd *p = calloc(1, sizeof *p); p->context = c; return p; }
int ibv_dealloc_pd(struct ibv_pd *p) { free(p); return 0; }

struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t len, int access) {
  if (!addr || !len || (!(access & IBV_ACCESS_LOCAL_WRITE) && (access & IBV_ACCESS_REMOTE_WRITE))) { errno = EINVAL; return NULL; }
  struct ibv_mr *m = calloc(1, sizeof *m);
  m->context = pd->context; m->pd = pd; m->addr = addr; m->length = len; m->handle = (uint32_t) access;
  pthread_mutex_lock(&registry);
  m->lkey = next_key++; m->rkey = next_key++;
  int placed = 0;
  for (int i = 0; i < MAXMR; i++) if (!mrs[i]) { mrs[i] = m; placed = 1; break; }
  if (!placed) { pthread_mutex_unlock(&registry); free(m); errno = ENOMEM; return NULL; }
  st_live_mr++;
  pthread_mutex_unlock(&registry);
  return m;
}
int ibv_dereg_mr(struct ibv_mr *m) {
  pthread_mutex_lock(&registry);
  for (int i = 0; i < MAXMR; i++) if (mrs[i] == m) { mrs[i] = NULL; st_live_mr--; }
  pthread_mutex_unlock(&registry);
  free(m);
  return 0;
}

struct ibv_cq *ibv_create_cq(struct ibv_context *c, int cqe, void *ctx, struct ibv_comp_channel *ch, int vec) {
  (void) ctx; (void) ch; (void) vec;
  if (cqe < 1 || cqe > max_cqe) { errno = EINVAL; return NULL; }
  struct fake_cq *f = calloc(1, sizeof *f);
  f->cq.context = c; f->cq.cqe = cqe; f->cap = cqe; f->ring = calloc(cqe, sizeof *f->ring);
  pthread_mutex_init(&f->lock, NULL);
  pthread_mutex_lock(&registry);
  st_live_cq++;
  for (int i = 0; i < MAXCTX; i++) if (!cqs[i]) { cqs[i] = f; break; }
  pthread_mutex_unlock(&registry);
  return &f->cq;
}
int ibv_destroy_cq(struct ibv_cq *cq) {
  struct fake_cq *f = (struct fake_cq *) cq;
  pthread_mutex_lock(&registry);
  st_live_cq--;
  for (int i = 0; i < MAXCTX; i++) if (cqs[i] == f) cqs[i] = NULL;
  pthread_mutex_unlock(&registry);
  free(f->ring); free(f);
  return 0;
}

struct ibv_qp *ibv_create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *a) {
  if (a->qp_type != IBV_QPT_RC || !a->send_cq || a->cap.max_send_wr < 1 || a->cap.max_send_sge < 1
      || (int) a->cap.max_send_wr > max_qp_wr || a->cap.max_send_sge > 30) { errno = EINVAL; return NULL; }
  struct fake_qp *q = calloc(1, sizeof *q);
  q->qp.context = pd->context; q->qp.pd = pd; q->qp.send_cq = a->send_cq; q->qp.recv_cq = a->recv_cq; q->qp.qp_type = a->qp_type;
  q->state = IBV_QPS_RESET; q->dev = dev_index(pd->context); q->max_wr = (int) a->cap.max_send_wr; q->sge = (int) a->cap.max_send_sge;
  pthread_mutex_lock(&registry);
  q->qp.qp_num = next_qpn++;
  if (q->qp.qp_num >= MAXQP) { pthread_mutex_unlock(&registry); free(q); errno = ENOMEM; return NULL; }
  qps[q->qp.qp_num] = q;
  st_live_qp++;
  pthread_mutex_unlock(&registry);
  return &q->qp;
}
int ibv_destroy_qp(struct ibv_qp *qp) {
  struct fake_qp *q = (struct fake_qp *) qp;
  pthread_mutex_lock(&registry);
  if (q->queued > 0) st_busy_destroy++; /* its queued work will never complete: the hazard the transport must avoid */
  struct op **p = &q_head;
  q_tail = NULL;
  while (*p) {
    if ((*p)->qpn == qp->qp_num) { struct op *dead = *p; *p = dead->next; free(dead); }
    else { q_tail = *p; p = &(*p)->next; }
  }
  qps[qp->qp_num] = NULL;
  st_live_qp--;
  pthread_mutex_unlock(&registry);
  free(qp);
  return 0;
}

static int bad_modify(void) { return EINVAL; }

int ibv_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *a, int mask) {
  struct fake_qp *q = (struct fake_qp *) qp;
  if (!(mask & IBV_QP_STATE)) return bad_modify();
  pthread_mutex_lock(&registry);
  int rc = 0;
  switch (a->qp_state) {
    case IBV_QPS_INIT:
      if (q->state != IBV_QPS_RESET || (mask & (IBV_QP_PORT | IBV_QP_ACCESS_FLAGS | IBV_QP_PKEY_INDEX)) != (IBV_QP_PORT | IBV_QP_ACCESS_FLAGS | IBV_QP_PKEY_INDEX)
          || a->port_num != 1) rc = bad_modify();
      break;
    case IBV_QPS_RTR: {
      int need = IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
      struct fake_qp *peer = a->dest_qp_num > 0 && a->dest_qp_num < MAXQP ? qps[a->dest_qp_num] : NULL;
      if (q->state != IBV_QPS_INIT || (mask & need) != need || !peer || a->ah_attr.port_num != 1
          || a->max_dest_rd_atomic > 16 || a->ah_attr.sl > 15) { rc = bad_modify(); break; }
      if ((int) a->path_mtu > mtus[q->dev] || (int) a->path_mtu > mtus[peer->dev]) { rc = bad_modify(); break; }
      if (is_eth(q->dev) != is_eth(peer->dev)) { rc = bad_modify(); break; }
      if (is_eth(q->dev)) {
        union ibv_gid g;
        int match = 0;
        for (int i = 1; i <= 3; i += 2)
          if (gid_of(peer->dev, i, &g) == 0 && !memcmp(g.raw, a->ah_attr.grh.dgid.raw, 16)) match = 1;
        if (!a->ah_attr.is_global || !gid_is_v2(a->ah_attr.grh.sgid_index) || !match || a->ah_attr.grh.hop_limit < 1) {
          rc = bad_modify(); break;
        }
      } else {
        if (a->ah_attr.dlid != 1 + peer->dev) { rc = bad_modify(); break; }
      }
      q->dest = a->dest_qp_num;
      char tn[16] = {0};
      pthread_getname_np(pthread_self(), tn, sizeof tn);
      if (!strncmp(tn, "transfer-rdma-p", 15)) st_rtr_poller++; /* a handshake on the completion poller */
      break;
    }
    case IBV_QPS_RTS: {
      int need = IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC;
      if (q->state != IBV_QPS_RTR || (mask & need) != need || a->max_rd_atomic > 16) rc = bad_modify();
      break;
    }
    case IBV_QPS_ERR: break;
    default: rc = bad_modify();
  }
  if (rc == 0) { q->state = a->qp_state; q->qp.state = a->qp_state; }
  pthread_mutex_unlock(&registry);
  return rc;
}

int ibv_query_port(struct ibv_context *c, uint8_t port, struct _compat_ibv_port_attr *attr) {
  if (port != 1) return EINVAL;
  int d = dev_index(c);
  struct ibv_port_attr *a = (struct ibv_port_attr *) attr;
  memset(a, 0, sizeof *a);
  a->state = port_state[d]; a->active_mtu = mtus[d]; a->max_mtu = IBV_MTU_4096;
  a->lid = is_eth(d) ? 0 : (uint16_t) (1 + d);
  a->link_layer = is_eth(d) ? IBV_LINK_LAYER_ETHERNET : IBV_LINK_LAYER_INFINIBAND;
  a->gid_tbl_len = is_eth(d) ? 4 : 1;
  return 0;
}

int ibv_query_gid(struct ibv_context *c, uint8_t port, int index, union ibv_gid *gid) {
  if (port != 1) return EINVAL;
  return gid_of(dev_index(c), index, gid);
}
