/*
 * master — supervision of the workers (nginx-style life cycle).
 *
 * Order of start-up, and why:
 *   1. the config was validated by main.c: nothing starts on a bad file;
 *   2. the call table (shm) is mapped before fork, so every worker and every
 *      restarted worker sees the same memory;
 *   3. the CLI socket is opened: a second daemon on the same socket is
 *      refused here, before it could fight over SIP ports;
 *   4. workers are forked; each initialises Sofia-SIP itself, after fork.
 *
 * Signals become flags: they are blocked and read from a signalfd in the
 * master's poll loop, never handled asynchronously.
 *   SIGCHLD          reap; a worker that died is logged and restarted
 *                    (at once the first time, then with growing back-off if
 *                    it keeps dying young)
 *   SIGTERM, SIGINT  drain: workers refuse new calls, existing calls get up
 *                    to drain_timeout; then everything stops.  Workers still
 *                    alive after drain_timeout + MASTER_KILL_GRACE_S are
 *                    killed, so no process is ever left behind
 *   SIGHUP           re-read the configuration file: log_level takes effect
 *                    at once in the master and every worker; any other
 *                    change is named in the log and waits for a restart
 *                    (ports, the call table and the workers' dialogs cannot
 *                    change under live calls); a bad file changes nothing
 *
 * Each worker also has a control socket (a SOCK_SEQPACKET pair made before
 * its fork): the CLI asks a worker, through the master, what only the
 * worker can do, one request and one answer at a time (e.g. "kill ID").
 * A worker may also send "fwd N MESSAGE": the master passes MESSAGE on to
 * worker N, unanswered (a CANCEL that reached the wrong worker).
 */
#include "b2bua/master.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "b2bua/log.h"
#include "cli/cli_server.h"
#include "shm/shm.h"
#include "worker/worker.h"

#define MASTER_KILL_GRACE_S 5
#define MASTER_YOUNG_DEATH_MS 5000    /* died sooner than this: back off */
#define MASTER_BACKOFF_MAX_MS 5000

struct master_worker {
	pid_t pid;               /* 0 when not running */
	unsigned generation;     /* how many times this index was started */
	uint64_t started_ms;
	uint64_t restart_at_ms;  /* when to fork it again; 0 = not scheduled */
	unsigned backoff_ms;
	int ctl;                 /* our end of its control socket, -1 if none */
};

struct master {
	const struct config *cfg;
	shm_t *shm;
	cli_server_t *cli;
	int sigfd;
	int stopping;
	int exit_code;           /* what master_run returns */
	uint64_t kill_at_ms;
	struct master_worker workers[CONFIG_MAX_WORKERS];
};

static void master_begin_stop(struct master *m, int sig);
static int master_worker_request(void *arg, unsigned idx, const char *request,
				 char *reply, size_t size);

static void master_spawn(struct master *m, unsigned idx)
{
	struct master_worker *w = &m->workers[idx];
	sigset_t none;
	pid_t pid;

	int sv[2];

	if (w->ctl >= 0)
		close(w->ctl);
	w->ctl = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_error("cannot make worker %u's control socket: %m; retrying in 1 s", idx);
		w->restart_at_ms = shm_now_ms() + 1000;
		return;
	}
	pid = fork();
	if (pid < 0) {
		log_error("cannot fork worker %u: %m; retrying in 1 s", idx);
		close(sv[0]);
		close(sv[1]);
		w->restart_at_ms = shm_now_ms() + 1000;
		return;
	}
	if (pid == 0) {
		/* The child keeps nothing of the master but the config, the shm
		 * and its own end of its control socket. */
		close(m->sigfd);
		close(cli_server_fd(m->cli));
		for (int i = 0; i < m->cfg->workers; i++)
			if (m->workers[i].ctl >= 0)
				close(m->workers[i].ctl);
		close(sv[0]);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		worker_run(m->cfg, m->shm, idx, w->generation, sv[1]);
	}
	close(sv[1]);
	w->ctl = sv[0];
	w->pid = pid;
	w->started_ms = shm_now_ms();
	w->restart_at_ms = 0;
	shm_worker_set(m->shm, idx, pid, (uint16_t)(m->cfg->worker_port_base + (int)idx),
		       w->generation > 0, w->started_ms);
	w->generation++;
}

static void master_log_exit(unsigned idx, pid_t pid, int status)
{
	if (WIFSIGNALED(status))
		log_warn("worker %u (pid %d) killed by signal %d (%s)", idx, (int)pid,
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
	else if (WEXITSTATUS(status) != 0)
		log_warn("worker %u (pid %d) exited with status %d", idx, (int)pid,
			 WEXITSTATUS(status));
	else
		log_info("worker %u (pid %d) exited", idx, (int)pid);
}

/* A worker is gone: restart it unless we are stopping. */
static void master_worker_died(struct master *m, unsigned idx, int status)
{
	struct master_worker *w = &m->workers[idx];
	uint64_t now = shm_now_ms();

	master_log_exit(idx, w->pid, status);
	w->pid = 0;
	if (w->ctl >= 0) {
		close(w->ctl);   /* its peer is gone: poll() would report it for ever */
		w->ctl = -1;
	}
	shm_worker_set(m->shm, idx, 0, (uint16_t)(m->cfg->worker_port_base + (int)idx), 0, now);
	if (m->stopping)
		return;
	if (WIFEXITED(status) && WEXITSTATUS(status) == WORKER_EXIT_START && w->generation == 1) {
		/* The very first start failed (a port in use, a spool directory
		 * that cannot be made...): retrying would only repeat it. */
		log_error("worker %u could not start (see above): stopping b2bua", idx);
		m->exit_code = 1;
		master_begin_stop(m, SIGTERM);
		return;
	}
	if (now - w->started_ms < MASTER_YOUNG_DEATH_MS)
		w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : 100;
	else
		w->backoff_ms = 0;
	if (w->backoff_ms > MASTER_BACKOFF_MAX_MS)
		w->backoff_ms = MASTER_BACKOFF_MAX_MS;
	w->restart_at_ms = now + w->backoff_ms;
}

static void master_reap(struct master *m)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (int i = 0; i < m->cfg->workers; i++) {
			if (m->workers[i].pid == pid) {
				master_worker_died(m, (unsigned)i, status);
				break;
			}
		}
	}
}

static unsigned master_alive(const struct master *m)
{
	unsigned n = 0;

	for (int i = 0; i < m->cfg->workers; i++)
		n += m->workers[i].pid != 0;
	return n;
}

static void master_signal_workers(struct master *m, int sig)
{
	for (int i = 0; i < m->cfg->workers; i++)
		if (m->workers[i].pid > 0)
			kill(m->workers[i].pid, sig);
}

static void master_begin_stop(struct master *m, int sig)
{
	if (m->stopping)
		return;
	m->stopping = 1;
	m->kill_at_ms = shm_now_ms() +
			(uint64_t)(m->cfg->drain_timeout + MASTER_KILL_GRACE_S) * 1000u;
	cli_server_set_draining(m->cli, 1);
	log_info("%s: draining %u calls for up to %d s, then stopping", strsignal(sig),
		 shm_call_count(m->shm), m->cfg->drain_timeout);
	master_signal_workers(m, SIGTERM);
}

/* SIGHUP: see the design note at the top. */
static void master_reload(struct master *m)
{
	static struct config next;   /* large: not on the stack */
	struct config cmp;
	char err[512], req[64], reply[64];

	if (config_load(m->cfg->path, &next, err, sizeof err) < 0) {
		log_error("SIGHUP: %s: the running configuration stays in force", err);
		return;
	}
	if (next.log_level != log_get_level()) {
		log_set_level(next.log_level);
		snprintf(req, sizeof req, "log_level %d", (int)next.log_level);
		for (int i = 0; i < m->cfg->workers; i++)
			if (master_worker_request(m, (unsigned)i, req, reply, sizeof reply) < 0)
				log_warn("SIGHUP: worker %d did not take the new log_level", i);
		log_info("SIGHUP: log_level is now %s", log_level_name(next.log_level));
	}
	/* Anything else that differs needs a restart. */
	cmp = next;
	cmp.log_level = m->cfg->log_level;
	memcpy(cmp.auth_secret, m->cfg->auth_secret, sizeof cmp.auth_secret);
	if (next.auth_secret[0] != '\0' &&
	    strcmp(next.auth_secret, m->cfg->auth_secret) != 0)
		memset(cmp.auth_secret, 0, sizeof cmp.auth_secret);   /* really changed */
	if (memcmp(&cmp, m->cfg, sizeof cmp) != 0)
		log_warn("SIGHUP: %s has other changes: they take effect at the next restart",
			 m->cfg->path);
	else
		log_info("SIGHUP: %s re-read", m->cfg->path);
}

static void master_on_signals(struct master *m)
{
	struct signalfd_siginfo si;

	while (read(m->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			master_reap(m);
			break;
		case SIGTERM:
		case SIGINT:
			master_begin_stop(m, (int)si.ssi_signo);
			break;
		case SIGHUP:
			master_reload(m);
			break;
		}
	}
}

/* "fwd N MESSAGE" from a worker: pass MESSAGE to worker N.  1 if it was one. */
static int master_ctl_forward(struct master *m, unsigned from, const char *msg)
{
	unsigned to;
	int skip = 0;

	if (sscanf(msg, "fwd %u %n", &to, &skip) != 1 || skip == 0)
		return 0;
	if (to >= (unsigned)m->cfg->workers || m->workers[to].ctl < 0 ||
	    send(m->workers[to].ctl, msg + skip, strlen(msg + skip),
		 MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_warn("worker %u's message for worker %u not delivered", from, to);
	return 1;
}

/* A worker's control socket is readable outside a request: forwards only. */
static void master_on_ctl(struct master *m, unsigned idx)
{
	char msg[512];
	ssize_t n;

	while ((n = recv(m->workers[idx].ctl, msg, sizeof msg - 1, MSG_DONTWAIT)) > 0) {
		msg[n] = '\0';
		master_ctl_forward(m, idx, msg);   /* anything else is a late answer */
	}
}

/* cli_worker_request_f: one request to a worker, one answer back (1 s). */
static int master_worker_request(void *arg, unsigned idx, const char *request,
				 char *reply, size_t size)
{
	struct master *m = arg;
	struct master_worker *w;
	struct pollfd pfd;
	char stale[256];
	ssize_t n;

	if (idx >= (unsigned)m->cfg->workers)
		return -ESRCH;
	w = &m->workers[idx];
	if (w->pid == 0 || w->ctl < 0)
		return -ESRCH;
	/* An answer that came after an earlier request timed out is stale;
	 * a message to forward is passed on. */
	while ((n = recv(w->ctl, stale, sizeof stale - 1, MSG_DONTWAIT)) > 0) {
		stale[n] = '\0';
		master_ctl_forward(m, idx, stale);
	}
	if (send(w->ctl, request, strlen(request), MSG_NOSIGNAL) < 0)
		return -errno;
	pfd.fd = w->ctl;
	pfd.events = POLLIN;
	for (;;) {
		if (poll(&pfd, 1, 1000) <= 0)
			return -ETIMEDOUT;
		n = recv(w->ctl, reply, size - 1, 0);
		if (n <= 0)
			return n < 0 ? -errno : -ECONNRESET;
		reply[n] = '\0';
		if (!master_ctl_forward(m, idx, reply))
			return 0;
	}
}

/* Milliseconds until the next thing the master must do by itself. */
static int master_next_timeout(const struct master *m, uint64_t now)
{
	uint64_t next = now + 1000;

	for (int i = 0; i < m->cfg->workers; i++) {
		uint64_t at = m->workers[i].restart_at_ms;
		if (!m->stopping && at && at < next)
			next = at;
	}
	if (m->stopping && m->kill_at_ms < next)
		next = m->kill_at_ms;
	return next > now ? (int)(next - now) : 0;
}

static void master_on_timers(struct master *m)
{
	uint64_t now = shm_now_ms();

	if (m->stopping) {
		if (now >= m->kill_at_ms && master_alive(m) > 0) {
			log_warn("%u workers still running after the drain: killing them",
				 master_alive(m));
			master_signal_workers(m, SIGKILL);
			m->kill_at_ms = now + 1000;
		}
		return;
	}
	for (int i = 0; i < m->cfg->workers; i++) {
		struct master_worker *w = &m->workers[i];
		if (w->pid == 0 && w->restart_at_ms && now >= w->restart_at_ms) {
			master_spawn(m, (unsigned)i);
			if (w->pid > 0)
				log_info("worker %d restarted as pid %d (restart %u)", i,
					 (int)w->pid, w->generation - 1);
		}
	}
}

static int master_setup(struct master *m)
{
	sigset_t set;
	int ret;

	ret = shm_create(m->cfg->call_capacity, (unsigned)m->cfg->workers, &m->shm);
	if (ret < 0) {
		log_error("cannot create the call table for %u calls: %s",
			  m->cfg->call_capacity, strerror(-ret));
		return ret;
	}
	ret = cli_server_open(m->cfg, m->shm, &m->cli);
	if (ret < 0)
		return ret;
	cli_server_set_worker_request(m->cli, master_worker_request, m);
	for (int i = 0; i < CONFIG_MAX_WORKERS; i++)
		m->workers[i].ctl = -1;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	m->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return m->sigfd < 0 ? -errno : 0;
}

int master_run(const struct config *cfg)
{
	static struct master m;
	int ret;

	log_set_role("master");
	m.cfg = cfg;
	ret = master_setup(&m);
	if (ret < 0) {
		if (m.cli)
			cli_server_close(m.cli);
		if (m.shm)
			shm_destroy(m.shm);
		return 1;
	}
	for (int i = 0; i < cfg->workers; i++)
		master_spawn(&m, (unsigned)i);
	log_info("master ready: %d workers, sip %s:%d, call capacity %u, cli %s "
		 "(call table %zu bytes)", cfg->workers, cfg->listen, cfg->sip_port,
		 cfg->call_capacity, cfg->cli_socket, shm_size(m.shm));

	while (!m.stopping || master_alive(&m) > 0) {
		struct pollfd pfd[2 + CONFIG_MAX_WORKERS];
		int nfd = 2, n;

		pfd[0] = (struct pollfd){ .fd = m.sigfd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = cli_server_fd(m.cli), .events = POLLIN };
		for (int i = 0; i < cfg->workers; i++)
			pfd[nfd++] = (struct pollfd){ .fd = m.workers[i].ctl, .events = POLLIN };
		n = poll(pfd, (nfds_t)nfd, master_next_timeout(&m, shm_now_ms()));
		if (n < 0 && errno != EINTR) {
			log_error("poll: %m");
			break;
		}
		if (n > 0 && (pfd[0].revents & POLLIN))
			master_on_signals(&m);
		if (n > 0 && (pfd[1].revents & POLLIN))
			cli_server_handle(m.cli);
		for (int i = 0; n > 0 && i < cfg->workers; i++)
			if (pfd[2 + i].fd >= 0 && (pfd[2 + i].revents & POLLIN))
				master_on_ctl(&m, (unsigned)i);
		master_on_timers(&m);
	}
	log_info("stopped");
	cli_server_close(m.cli);
	shm_destroy(m.shm);
	close(m.sigfd);
	return m.exit_code;
}
