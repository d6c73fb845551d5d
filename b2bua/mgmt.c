/*
 * mgmt — the management process.  See mgmt.h.
 *
 * One poll() loop, like the master's: a signalfd (SIGTERM/SIGINT: stop),
 * the CLI socket it inherited, and its control channel to the master
 * (ctl.h), and this host's liveness (hosts.h: the heartbeat, the calls of
 * lost hosts), due every poll timeout, and the metrics endpoint (metrics.h:
 * libmicrohttpd's epoll descriptor in the same poll(), no thread; a scrape
 * reads shm only).  CLI commands that only a worker can carry out (call kill) are
 * typed control requests to that worker, switched by the master, with a
 * bounded wait (ctl_request); whatever else arrives on the channel during
 * that wait is handled as soon as the wait is over.
 *
 * `b2bua-cli reload` is a CTL_RELOAD request to the master, which answers
 * only once every child took the new configuration, this process too: so
 * a CTL_RELOAD that arrives while we wait is taken at once, not kept for
 * after the wait (the master would wait for us while we wait for it).
 */
#include "b2bua/mgmt.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "b2bua/ctl.h"
#include "b2bua/hosts.h"
#include "b2bua/log.h"
#include "b2bua/metrics.h"

/* How long a worker has to answer a control request. */
#define MGMT_REQUEST_TIMEOUT_MS 1000
/* How long the master has to answer a reload: its own wait for every
 * child (MASTER_RELOAD_WAIT_MS, 2 s) and a margin. */
#define MGMT_RELOAD_TIMEOUT_MS 4000
/* Messages that arrived during a request, handled after it. */
#define MGMT_PENDING_MAX 16

struct mgmt {
	struct config *cfg;                  /* our own copy (fork): a reload writes it */
	const board_t *board;                /* where a reloaded configuration waits */
	cli_server_t *cli;
	int ctl;
	int sigfd;
	int stop;
	hosts_t *hosts;                      /* heartbeat, lost hosts' calls */
	metrics_t *metrics;                  /* /metrics; NULL when off */
	uint32_t seq;                        /* of our last request */
	struct ctl_msg pending[MGMT_PENDING_MAX];
	unsigned n_pending;
};

static struct mgmt mgmt;   /* one per process */

/* CTL_RELOAD: take generation N of the board, and what the CLI derived from it. */
static void mgmt_take_reload(const struct ctl_msg *m)
{
	static struct config next;   /* large: not on the stack */
	int ret = board_get(mgmt.board, m->u.reload.generation, &next, sizeof next);

	if (ret == 0) {
		*mgmt.cfg = next;
		cli_server_reload(mgmt.cli, mgmt.cfg);
		log_set_level(mgmt.cfg->log_level);
	} else {
		log_error("reload: the running configuration stays in force: %s",
			  strerror(-ret));
	}
	ctl_answer(mgmt.ctl, m, ret, ret < 0 ? strerror(-ret) : NULL);
}

/* ctl_handle_f: one message from the master's channel, outside a request of ours. */
static void mgmt_on_message(void *arg, const struct ctl_msg *m)
{
	(void)arg;
	switch (m->hdr.type) {
	case CTL_RELOAD:
		mgmt_take_reload(m);
		return;
	case CTL_DRAIN:
		cli_server_set_draining(mgmt.cli, 1);
		return;
	case CTL_PING:   /* the master's readiness check (b2bua/notify.h) */
		ctl_answer(mgmt.ctl, m, 0, NULL);
		return;
	case CTL_REPLY:
		log_debug("control channel: late answer to request %u dropped",
			  (unsigned)m->hdr.seq);
		return;
	default:
		log_warn("control channel: unexpected %s message from %u",
			 ctl_type_name(m->hdr.type), (unsigned)m->hdr.from);
		if (m->hdr.type == CTL_KILL_CALL)
			ctl_answer(mgmt.ctl, m, -EOPNOTSUPP, "not a worker");
	}
}

/* ctl_handle_f: kept for after the request (the CLI client is waiting);
 * a reload at once (see the top of this file). */
static void mgmt_keep(void *arg, const struct ctl_msg *m)
{
	(void)arg;
	if (m->hdr.type == CTL_RELOAD)
		mgmt_take_reload(m);
	else if (mgmt.n_pending < MGMT_PENDING_MAX)
		mgmt.pending[mgmt.n_pending++] = *m;
	else
		log_warn("control channel: %s message dropped during a request",
			 ctl_type_name(m->hdr.type));
}

static void mgmt_run_pending(void)
{
	for (unsigned i = 0; i < mgmt.n_pending; i++)
		mgmt_on_message(NULL, &mgmt.pending[i]);
	mgmt.n_pending = 0;
}

/*
 * cli_ctl_request_f: a control request of the CLI (call kill) to a worker,
 * switched by the master, answered within MGMT_REQUEST_TIMEOUT_MS; or a
 * reload, to the master, within MGMT_RELOAD_TIMEOUT_MS.  The master itself
 * answers -ESRCH when that worker is not running.
 */
static int mgmt_ctl_request(void *arg, struct ctl_msg *req, struct ctl_msg *reply)
{
	int wait = req->hdr.type == CTL_RELOAD ? MGMT_RELOAD_TIMEOUT_MS : MGMT_REQUEST_TIMEOUT_MS;
	int err;

	(void)arg;
	req->hdr.from = CTL_MGMT;
	req->hdr.seq = ++mgmt.seq;
	err = ctl_request(mgmt.ctl, req, reply, wait, mgmt_keep, NULL);
	if (err < 0)
		return err;
	if (reply->hdr.from == CTL_MASTER && reply->u.reply.status == -ESRCH)
		return -ESRCH;
	return 0;
}

static void mgmt_on_ctl(void)
{
	if (ctl_read_all(mgmt.ctl, "the master", mgmt_on_message, NULL) == -ECONNRESET) {
		log_warn("control channel closed by the master: stopping");
		mgmt.stop = 1;
	}
}

static void mgmt_on_signals(void)
{
	struct signalfd_siginfo si;

	while (read(mgmt.sigfd, &si, sizeof si) == (ssize_t)sizeof si)
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			mgmt.stop = 1;
	/* SIGHUP: the master re-reads the config and tells us what changed. */
}

static int mgmt_setup_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	mgmt.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return mgmt.sigfd < 0 ? -errno : 0;
}

void mgmt_run(struct config *cfg, const board_t *board, cli_server_t *cli, int ctl)
{
	log_set_role("mgmt");
	prctl(PR_SET_NAME, "b2bua-mgmt");   /* what ps, top and pgrep show */
	/* Die with the master, like the workers. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		exit(1);
	mgmt.cfg = cfg;
	mgmt.board = board;
	mgmt.cli = cli;
	mgmt.ctl = ctl;
	/* A late answer to a request of our dead predecessor must not match
	 * one of ours: start the sequence numbers where it could not have. */
	mgmt.seq = (uint32_t)getpid() << 12;
	if (mgmt_setup_signals() < 0) {
		log_error("cannot set up signals: %m");
		exit(MGMT_EXIT_START);
	}
	cli_server_set_ctl_request(cli, mgmt_ctl_request, NULL);
	if (hosts_create(cfg, &mgmt.hosts) < 0) {
		log_error("cannot set up host liveness: out of memory");
		exit(MGMT_EXIT_START);
	}
	/* A metrics_address that cannot be listened on is logged: the CLI goes on. */
	metrics_create(cfg, cli_server_shm(cli), &mgmt.metrics);
	log_info("management process ready: cli %s", cfg->cli_socket);

	while (!mgmt.stop) {
		struct pollfd pfd[4] = {
			{ .fd = mgmt.sigfd, .events = POLLIN },
			{ .fd = cli_server_fd(cli), .events = POLLIN },
			{ .fd = mgmt.ctl, .events = POLLIN },
			{ .fd = metrics_fd(mgmt.metrics), .events = POLLIN },   /* -1: ignored */
		};
		int n = poll(pfd, 4, metrics_timeout_ms(mgmt.metrics, hosts_tick(mgmt.hosts)));

		if (n < 0 && errno != EINTR) {
			log_error("poll: %m");
			break;
		}
		/* Scrapers that are ready, and their connections' timeouts. */
		metrics_run(mgmt.metrics);
		if (n <= 0)
			continue;
		if (pfd[0].revents & POLLIN)
			mgmt_on_signals();
		if (pfd[2].revents & (POLLIN | POLLHUP | POLLERR))
			mgmt_on_ctl();
		if (!mgmt.stop && (pfd[1].revents & POLLIN))
			cli_server_handle(cli);
		mgmt_run_pending();
	}
	/* The socket file is the master's: it stays for the next management process. */
	metrics_destroy(mgmt.metrics);
	hosts_stop(mgmt.hosts);
	hosts_destroy(mgmt.hosts);
	log_info("stopped");
	exit(0);
}
