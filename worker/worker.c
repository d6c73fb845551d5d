/*
 * worker — life cycle of a worker process.  See worker.h.
 *
 * Signals are turned into flags: SIGTERM/SIGINT/SIGHUP are blocked and read
 * from a signalfd that sits on the worker's io_uring ring like any other
 * event.  A once-a-second Sofia timer publishes counters and drives the
 * drain:
 *
 *   running --SIGTERM--> draining: new INVITEs get 503; calls end by themselves
 *   draining --no calls left, or drain_timeout--> hang up what is left, stop
 *
 * The worker also stops when the master disappears (PR_SET_PDEATHSIG), so
 * no worker outlives its supervisor.  The tick also ends calls older than
 * max_call_duration, and gives freed memory back to the system once the
 * worker is quiet (worker_trim_when_quiet).
 *
 * Reload (CTL_RELOAD from the master, after SIGHUP or `b2bua-cli reload`):
 * the new configuration is copied from the board the master published it
 * on into the worker's own struct config, which every module reads when it
 * uses a setting, and what was derived from it at start is derived again
 * (b2b_reload, registrar_reload, keepalive_reload).  It happens in the
 * control channel's handler, i.e. between two completions of the loop, with
 * no SIP handler on the stack: no message is ever handled half with the old
 * settings and half with the new.  A call in progress keeps what was
 * decided when it was set up (its route and B-leg, its invite_timeout
 * deadline, its session interval); what a call checks later reads the new
 * values (max_call_duration, forwarding on no answer, the log level).
 *
 * Start-up order: Sofia's root on our io_uring port, signals and the
 * master's control socket on the same ring, the NTA agent (b2b), Redis and
 * the CDR writer, then the calls a dead predecessor of this index left in
 * the call table are taken over (b2b_adopt_calls).
 */
#include "worker/worker.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sofia-sip/su.h>
#include <sofia-sip/su_log.h>
#include <sofia-sip/su_wait.h>

#include "b2bua/ctl.h"
#include "b2bua/log.h"
#include "b2bua/mono.h"
#include "worker/b2b.h"
#include "worker/cdr.h"
#include "worker/conn.h"
#include "worker/dgram.h"
#include "worker/rds.h"
#include "worker/registrar.h"
#include "worker/keepalive.h"
#include "worker/uport.h"
#include "worker/mem.h"

#define WORKER_RING_ENTRIES 4096
#define WORKER_TICK_MS 1000
/* After hanging up what was left at the drain deadline, let the BYEs go out. */
#define WORKER_FINAL_GRACE_S 2
/* Once quiet, free memory goes back to the system every WORKER_TRIM_EVERY_S
 * for WORKER_TRIM_FOR_S: NTA keeps ended transactions 32 s (64×T1). */
#define WORKER_TRIM_QUIET_MSGS 200
#define WORKER_TRIM_EVERY_S 5
#define WORKER_TRIM_FOR_S 45

struct worker {
	struct config *cfg;       /* our own copy (fork): a reload writes it */
	const board_t *board;     /* where a reloaded configuration waits */
	shm_t *shm;
	handover_t *ho;           /* datagrams to and from the other workers */
	dgram_t *dgram;           /* the SIP sockets' I/O (worker/dgram.h) */
	unsigned idx;
	su_root_t *root;
	uport_t *port;
	b2b_t *b2b;
	rds_t *rds;               /* subscribers, registrations, CDRs */
	cdr_writer_t *cdr;
	registrar_t *reg;         /* NULL when no domain is served (static routes only) */
	keepalive_t *ka;          /* NAT keepalives; NULL without a registrar */
	su_timer_t *tick;
	int sigfd;
	struct uport_event sig_ev;
	int ctl;                  /* control socket from the master (SOCK_SEQPACKET) */
	struct uport_event ctl_ev;
	int stop_requested;       /* flag set from the signal event */
	time_t drain_deadline;    /* 0 while not draining */
	time_t stop_at;           /* 0 until the final grace period started */
	uint64_t msgs_seen;       /* SHM_CTR_MSGS_IN at the last tick */
	time_t busy_at;           /* the last tick with more than WORKER_TRIM_QUIET_MSGS */
	time_t rested_at;         /* the last tick that brought calls to rest (freed dialogs) */
	time_t trimmed_at;        /* last mem_trim() */
	uint64_t tick_due_us;     /* when the next tick is due (mono_us), 0 before the first */
};

static struct worker worker;   /* one per process */

/* Sofia-SIP's own logs (exported by the library, declared in no header). */
extern su_log_t nta_log[];
extern su_log_t tport_log[];

/*
 * Sofia writes its log lines in pieces; gather them and emit whole lines
 * through log.h, so they carry our timestamp and role like every other line.
 */
static void worker_sofia_log(void *stream, char const *fmt, va_list ap)
{
	static char line[1024];
	static size_t len;
	char *nl;

	(void)stream;
	if (len < sizeof line - 1) {
		int n = vsnprintf(line + len, sizeof line - len, fmt, ap);
		if (n > 0)
			len = len + (size_t)n < sizeof line - 1 ? len + (size_t)n : sizeof line - 1;
	}
	while ((nl = memchr(line, '\n', len)) != NULL) {
		*nl = '\0';
		if (nl > line)   /* garbage from anyone: rate-limited per kind */
			log_limited_shape(LOG_WARN, "sofia: %s", line);
		len -= (size_t)(nl + 1 - line);
		memmove(line, nl + 1, len);
	}
	if (len == sizeof line - 1) {   /* an endless line: flush it */
		line[len] = '\0';
		log_limited_shape(LOG_WARN, "sofia: %s", line);
		len = 0;
	}
}

static void worker_on_signal(struct uport_event *ev, int res);

static void worker_arm_signals(void)
{
	if (uport_poll_add(worker.port, &worker.sig_ev, worker.sigfd, POLLIN) < 0)
		log_error("cannot watch signals");
}

static void worker_on_signal(struct uport_event *ev, int res)
{
	struct signalfd_siginfo si;

	(void)ev;
	while (read(worker.sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			worker.stop_requested = 1;
		/* SIGHUP: the master re-reads the config and tells us. */
	}
	if (res < 0 && res != -ECANCELED)
		log_warn("signal poll: %s", strerror(-res));
	worker_arm_signals();
	if (worker.stop_requested && worker.drain_deadline == 0) {
		worker.drain_deadline = time(NULL) + worker.cfg->drain_timeout;
		b2b_set_draining(worker.b2b, 1);
		log_info("draining: %u calls up, up to %d s", b2b_active_calls(worker.b2b),
			 worker.cfg->drain_timeout);
	}
}

static void worker_arm_ctl(void)
{
	if (uport_poll_add(worker.port, &worker.ctl_ev, worker.ctl, POLLIN) < 0)
		log_error("cannot watch the control socket");
}

/*
 * CTL_RELOAD: take generation `gen` of the board into *worker.cfg and derive
 * again what was derived from it.  Any failure leaves the old
 * configuration in force, here as everywhere in this worker.
 */
static int worker_reload(uint32_t gen)
{
	static struct config next, old;   /* large: not on the stack */
	int ret;

	if (worker.b2b == NULL)
		return -EAGAIN;   /* still starting: it forked with the new one anyway */
	ret = board_get(worker.board, gen, &next, sizeof next);
	if (ret < 0)
		return ret;
	old = *worker.cfg;
	*worker.cfg = next;
	ret = b2b_reload(worker.b2b, &old);
	if (ret < 0) {
		*worker.cfg = old;
		return ret;
	}
	registrar_reload(worker.reg);
	if (keepalive_reload(worker.ka) < 0)
		log_warn("reload: nat_keepalive_interval: cannot start the keepalive timer");
	log_set_level(worker.cfg->log_level);
	return 0;
}

static void worker_take_reload(const struct ctl_msg *m)
{
	int ret = worker_reload(m->u.reload.generation);

	if (ret < 0)
		log_error("reload: the running configuration stays in force: %s",
			  strerror(-ret));
	else
		log_debug("reload: generation %u in force", (unsigned)m->u.reload.generation);
	ctl_answer(worker.ctl, m, ret, ret < 0 ? strerror(-ret) : NULL);
}

/* ctl_handle_f: one message from the control channel (types: b2bua/ctl.h). */
static void worker_on_message(void *arg, const struct ctl_msg *m)
{
	int ret;

	(void)arg;
	switch (m->hdr.type) {
	case CTL_KILL_CALL:
		ret = b2b_kill(worker.b2b, m->u.kill_call.id);
		ctl_answer(worker.ctl, m, ret, ret == 0 ? NULL : "no such call");
		return;
	case CTL_RELOAD:
		worker_take_reload(m);
		return;
	case CTL_PING:   /* the master's watchdog (b2bua/notify.h): our loop turns */
		ctl_answer(worker.ctl, m, 0, NULL);
		return;
	default:
		log_warn("control channel: unexpected %s message from %u",
			 ctl_type_name(m->hdr.type), (unsigned)m->hdr.from);
	}
}

static void worker_on_ctl(struct uport_event *ev, int res)
{
	(void)ev;
	(void)res;
	if (ctl_read_all(worker.ctl, "the master", worker_on_message, NULL) == -ECONNRESET) {
		log_warn("control channel closed by the master");
		return;   /* not re-armed: the master is gone (PDEATHSIG follows) */
	}
	worker_arm_ctl();
}

/*
 * After a burst the heap stays at its high-water mark: the memory of calls,
 * of the transactions NTA keeps 32 s after them, of Sofia's messages and of
 * the dialogs of calls at rest is free but not returned (glibc keeps it;
 * mimalloc decommits only at a later allocation), and the worker's RSS
 * stays where the peak left it.  mem_trim() gives back the free pages.  It
 * walks the heaps, so only on a quiet worker (at most
 * WORKER_TRIM_QUIET_MSGS SIP messages in the last tick, calls may be up),
 * every WORKER_TRIM_EVERY_S for WORKER_TRIM_FOR_S after the last busy tick
 * (long enough for NTA's lingering transactions to go) or the last tick
 * that brought calls to rest.
 */
static void worker_trim_when_quiet(time_t now)
{
	struct shm_worker_info info;
	uint64_t in;

	if (shm_worker_read(worker.shm, worker.idx, &info) < 0)
		return;
	in = info.counters[SHM_CTR_MSGS_IN] - worker.msgs_seen;
	worker.msgs_seen = info.counters[SHM_CTR_MSGS_IN];
	if (in > WORKER_TRIM_QUIET_MSGS || worker.busy_at == 0) {
		worker.busy_at = now;
		return;
	}
	if ((now - worker.busy_at > WORKER_TRIM_FOR_S &&
	     now - worker.rested_at > WORKER_TRIM_FOR_S) ||
	    now - worker.trimmed_at < WORKER_TRIM_EVERY_S)
		return;
	mem_trim();
	worker.trimmed_at = now;
}

/*
 * The event loop's lag, for the metrics: how late this tick ran.  Sofia
 * re-arms the tick WORKER_TICK_MS after it fires, so it is due then; a
 * loop busy with other work (or a timer slack, uport.c) runs it late.
 */
static void worker_note_lag(void)
{
	uint64_t now = mono_us();

	if (worker.tick_due_us != 0)
		shm_hist_observe(worker.shm, worker.idx, SHM_HIST_LOOP_LAG,
				 now > worker.tick_due_us ? now - worker.tick_due_us : 0);
	worker.tick_due_us = now + WORKER_TICK_MS * 1000u;
}

static void worker_on_tick(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
	time_t now = time(NULL);

	(void)magic; (void)t; (void)arg;
	worker_note_lag();
	b2b_publish_stats(worker.b2b);
	b2b_expire_calls(worker.b2b);
	if (b2b_rest_calls(worker.b2b) > 0)
		worker.rested_at = now;
	conn_tick();
	worker_trim_when_quiet(now);
	log_limit_flush();
	if (worker.drain_deadline == 0)
		return;
	if (b2b_active_calls(worker.b2b) == 0) {
		su_root_break(worker.root);
		return;
	}
	if (worker.stop_at == 0 && now >= worker.drain_deadline) {
		log_warn("drain timeout: hanging up %u calls", b2b_active_calls(worker.b2b));
		b2b_hangup_all(worker.b2b);
		worker.stop_at = now + WORKER_FINAL_GRACE_S;
	} else if (worker.stop_at && now >= worker.stop_at) {
		su_root_break(worker.root);
	}
}

static int worker_setup_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	worker.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (worker.sigfd < 0)
		return -errno;
	worker.sig_ev.cb = worker_on_signal;
	worker_arm_signals();
	return 0;
}

/* Redis connects in the background and reconnects by itself; CDRs wait in
 * this worker's spool file meanwhile.  The registrar serves cfg->domain. */
static int worker_redis_start(const struct config *cfg, unsigned idx)
{
	struct rds_config rc;
	char spool[PATH_MAX + 128];
	int ret;

	memset(&rc, 0, sizeof rc);
	snprintf(rc.address, sizeof rc.address, "%s", cfg->redis_address);
	snprintf(rc.password, sizeof rc.password, "%s", cfg->redis_password);
	rc.db = cfg->redis_db;
	rc.timeout_ms = cfg->redis_timeout;
	snprintf(rc.prefix, sizeof rc.prefix, "%s", cfg->redis_prefix);
	/* With sentinels, the primary is asked of them (redis_address unused). */
	_Static_assert(CONFIG_MAX_SENTINELS <= RDS_SENTINELS_MAX, "rds takes every sentinel");
	rc.n_sentinels = cfg->n_redis_sentinels;
	for (size_t i = 0; i < cfg->n_redis_sentinels; i++)
		snprintf(rc.sentinels[i], sizeof rc.sentinels[i], "%s", cfg->redis_sentinels[i]);
	snprintf(rc.master_name, sizeof rc.master_name, "%s", cfg->redis_master_name);
	ret = rds_create(worker.root, &rc, &worker.rds);
	if (ret < 0)
		return ret;
	rds_set_counters(worker.rds, worker.shm, idx);

	snprintf(spool, sizeof spool, "%s/cdr-%s-w%u.spool", cfg->cdr_spool_dir, cfg->node_id, idx);
	ret = cdr_writer_create(worker.root, worker.rds, cfg->redis_prefix, cfg->cdr_stream,
				spool, &worker.cdr);
	if (ret < 0)
		return ret;
	cdr_writer_set_counters(worker.cdr, worker.shm, idx);
	ret = cdr_writer_set_wait(worker.cdr, cfg->redis_wait_replicas, cfg->redis_wait_timeout);
	if (ret < 0)
		return ret;
	b2b_set_cdr_writer(worker.b2b, worker.cdr);

	if (cfg->domain[0] == '\0')
		return 0;
	ret = registrar_create(cfg, worker.rds, idx, &worker.reg);
	if (ret < 0)
		return ret;
	registrar_set_counters(worker.reg, worker.shm);
	b2b_set_registrar(worker.b2b, worker.reg);
	ret = b2b_keepalive_create(worker.b2b, worker.rds, &worker.ka);
	if (ret < 0)
		return ret;
	registrar_set_keepalive(worker.reg, worker.ka);
	return 0;
}

/* The agent's UDP sockets now exist (a public and an own one per listen
 * address): from here the ring reads and sends them, and routes the public
 * ports' datagrams to their owners. */
static int worker_dgram_start(const struct config *cfg, unsigned idx)
{
	int pub_fd[CONFIG_MAX_LISTEN], own_fd[CONFIG_MAX_LISTEN];
	int ret;

	_Static_assert(CONFIG_MAX_LISTEN <= DGRAM_MAX_ADDRS, "dgram reads every listen address");
	for (size_t k = 0; k < cfg->n_listen; k++) {
		pub_fd[k] = uport_find_udp_fd_at(worker.port, cfg->listen[k], cfg->sip_port);
		own_fd[k] = uport_find_udp_fd_at(worker.port, cfg->listen[k],
						 cfg->worker_port_base + (int)idx);
		if (pub_fd[k] < 0 || own_fd[k] < 0) {
			log_error("the SIP sockets of %s (ports %d and %d) are not on the loop",
				  cfg->listen[k], cfg->sip_port, cfg->worker_port_base + (int)idx);
			return -ENOENT;
		}
	}
	ret = dgram_create(worker.port, worker.shm, worker.ho, idx, cfg->node_id,
			   cfg->socket_io, &worker.dgram);
	if (ret == 0)
		ret = dgram_start(worker.dgram, pub_fd, own_fd, (unsigned)cfg->n_listen);
	if (ret == 0)
		ret = b2b_overload_start(worker.b2b, worker.dgram, pub_fd[0]);
	return ret;
}

static int worker_start(struct config *cfg, shm_t *shm, unsigned idx)
{
	int ret;

	worker.cfg = cfg;
	worker.shm = shm;
	worker.idx = idx;
	if (su_init() != 0)
		return -EIO;
	su_log_redirect(su_log_default, worker_sofia_log, NULL);
	su_log_redirect(nta_log, worker_sofia_log, NULL);
	su_log_redirect(tport_log, worker_sofia_log, NULL);
	ret = uport_create(WORKER_RING_ENTRIES, &worker.port);
	if (ret < 0)
		return ret;
	worker.root = uport_root_create(worker.port, NULL);
	if (worker.root == NULL)
		return -ENOMEM;
	ret = worker_setup_signals();
	if (ret < 0)
		return ret;
	worker.ctl_ev.cb = worker_on_ctl;
	worker_arm_ctl();

	ret = reuseport_configure(cfg->listen[0], cfg->sip_port, cfg->worker_port_base + (int)idx,
				  cfg->udp_rcvbuf);
	for (size_t k = 1; ret == 0 && k < cfg->n_listen; k++)
		ret = reuseport_add(cfg->listen[k]);
	if (ret == 0)
		ret = reuseport_configure_tls(cfg->transports & CONFIG_TP_TLS ? cfg->tls_port : 0);
	if (ret < 0)
		return ret;
	ret = conn_configure(cfg, shm, idx);
	if (ret < 0)
		return ret;
	ret = b2b_create(worker.root, cfg, shm, idx, &worker.b2b);
	if (ret < 0)
		return ret;
	ret = worker_dgram_start(cfg, idx);
	if (ret < 0)
		return ret;
	ret = worker_redis_start(cfg, idx);
	if (ret < 0)
		return ret;
	/* After the CDR writer: calls that cannot be continued get their CDR. */
	b2b_adopt_calls(worker.b2b);

	worker.tick = su_timer_create(su_root_task(worker.root), WORKER_TICK_MS);
	if (worker.tick == NULL || su_timer_set_for_ever(worker.tick, worker_on_tick, NULL) < 0)
		return -ENOMEM;
	return 0;
}

/*
 * The order matters.  Whatever still waits on Redis is answered first
 * (rds_close: a REGISTER gets its 503, a call its refusal and its CDR),
 * while the SIP agent, the registrar and the calls those answers go to
 * still exist; destroying the agent first left the callbacks replying on
 * freed transactions (SIGSEGV).  Then the CDR writer syncs its spool and
 * releases the calls waiting for their CDR to be durable, and from then on
 * releases each at once (the loop does not turn again); then the calls that
 * are left end, then the rest.
 */
static void worker_stop(void)
{
	if (worker.tick)
		su_timer_destroy(worker.tick);
	/* What is queued on the ring goes out now, and whatever the agent
	 * sends while it is destroyed goes out at once: its sockets close. */
	dgram_stop(worker.dgram);
	if (worker.rds)
		rds_close(worker.rds);
	cdr_writer_flush(worker.cdr);
	keepalive_destroy(worker.ka);   /* its OPTIONS go with the agent */
	b2b_destroy(worker.b2b);
	registrar_destroy(worker.reg);
	cdr_writer_destroy(worker.cdr);
	rds_destroy(worker.rds);
	if (worker.root)
		su_root_destroy(worker.root);
	dgram_destroy(worker.dgram);
	su_deinit();
}

void worker_run(struct config *cfg, shm_t *shm, handover_t *ho, const board_t *board,
		unsigned idx, int ctl)
{
	char role[32], sip[CONFIG_MAX_LISTEN * 72];
	int ret;

	worker.ctl = ctl;
	worker.ho = ho;
	worker.board = board;
	snprintf(role, sizeof role, "worker %u", idx);
	log_set_role(role);
	/* What ps, top and pgrep show (at most 15 bytes): b2bua-w0, b2bua-w1... */
	snprintf(role, sizeof role, "b2bua-w%u", idx);
	prctl(PR_SET_NAME, role);
	/* Die with the master: no orphan workers, ever. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		exit(1);   /* the master died before prctl took effect */

	/* The calls this index's previous process counted are counted again
	 * as they are taken over (b2b_adopt_calls, once the agent exists). */
	{
		struct shm_worker_info info;

		if (shm_worker_read(shm, idx, &info) == 0 && info.counters[SHM_CTR_ACTIVE] != 0)
			shm_counter_add(shm, idx, SHM_CTR_ACTIVE,
					-(int64_t)info.counters[SHM_CTR_ACTIVE]);
	}

	if (mem_init() < 0)
		log_warn("no heap of its own for long-lived call state: one heap serves all (worker/mem.c)");
	ret = worker_start(cfg, shm, idx);
	if (ret < 0) {
		log_error("cannot start: %s", strerror(-ret));
		exit(WORKER_EXIT_START);
	}
	/* Calls may now be handed to us (rendezvous hashing counts us in). */
	dgram_ready(worker.dgram);
	config_listen_text(cfg, cfg->sip_port, sip, sizeof sip);
	log_info("worker %u ready: sip %s, own port %d, event loop io_uring, socket I/O %s, malloc %s",
		 idx, sip, cfg->worker_port_base + (int)idx,
		 dgram_io_name(worker.dgram), mem_allocator());
	su_root_run(worker.root);
	log_info("stopped (%u calls left)", b2b_active_calls(worker.b2b));
	worker_stop();
	exit(0);
}
