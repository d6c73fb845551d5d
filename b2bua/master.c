/*
 * master — supervision of the workers and of the management process
 * (nginx-style life cycle).  The master forks, reaps, restarts, signals
 * and switches control messages; it serves no client and waits on nobody.
 *
 * Order of start-up, and why:
 *   1. the config was validated by main.c: nothing starts on a bad file;
 *   2. the call table (shm) and the workers' hand-over queues
 *      (shm/handover.h) are mapped before fork, so every worker and every
 *      restarted worker sees the same memory;
 *   3. the CLI socket is bound: a second daemon on the same socket is
 *      refused here, before it could fight over SIP ports.  The master keeps
 *      it open but never accepts on it: the management process does (mgmt.h);
 *   4. this host's life begins (hosts.h): a new epoch, the first heartbeat,
 *      and the answered calls its previous life left are closed, before any
 *      worker could meet their stale max_calls entries (the only time the
 *      master waits on Redis, bounded by the store's 1 s timeouts);
 *   5. the management process and the workers are forked; each worker
 *      initialises Sofia-SIP itself, after fork.
 *
 * Signals become flags: they are blocked and read from a signalfd in the
 * master's poll loop, never handled asynchronously.
 *   SIGCHLD          reap; a child that died (worker or management process)
 *                    is logged and restarted (at once the first time, then
 *                    with growing back-off if it keeps dying young)
 *   SIGTERM, SIGINT  drain: workers refuse new calls, existing calls get up
 *                    to drain_timeout; when the last worker has stopped the
 *                    management process is stopped too.  Children still
 *                    alive after drain_timeout + MASTER_KILL_GRACE_S are
 *                    killed, so no process is ever left behind
 *   SIGHUP           reload: the same as `b2bua-cli reload` (below)
 *
 * Reload (SIGHUP, or CTL_RELOAD from the management process for `b2bua-cli
 * reload`).  The master reads and checks the file once; a bad file changes
 * nothing anywhere and the answer (and the log) says why, "file:line: key:
 * why".  Otherwise config_reload_plan() (config_reload.h) compares it with
 * the running configuration key by key: keys on its short restart-only
 * list (sockets, the call table's size, node_id, the Redis connections...)
 * keep their running values and are named `restart_needed`; every other
 * key that changed is `applied`.  The master takes the result itself,
 * publishes it on the board (shm/board.h) and sends CTL_RELOAD with the
 * board's generation to every child; each copies exactly those bytes (never
 * the file again, which may have changed since) at a safe point of its own
 * loop and answers.  The reload is over when every child answered or after
 * MASTER_RELOAD_WAIT_MS; the answer names the children that did not, or
 * refused (a late one takes the settings when it gets to the message; a
 * restarted child is forked with them).  The master never waits for it: its
 * loop goes on, and the answer goes out from master_reload_finish().  One
 * reload at a time: a SIGHUP meanwhile runs once this one is over, a
 * `b2bua-cli reload` is refused as busy.
 *
 * Under systemd (Type=notify) the master tells it READY, STATUS, STOPPING
 * and feeds its watchdog only while every worker answers its pings
 * (b2bua/notify.h has the rule); without NOTIFY_SOCKET it sends nothing.
 *
 * Control channels: each child has a SOCK_SEQPACKET socketpair to the
 * master, made before its fork.  Messages are typed (b2bua/ctl.h); the
 * master passes each one to its addressee's channel without waiting, and
 * answers a request itself only when its addressee is not running.
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

#include "b2bua/config_reload.h"
#include "b2bua/ctl.h"
#include "b2bua/hosts.h"
#include "b2bua/log.h"
#include "b2bua/mgmt.h"
#include "b2bua/mono.h"
#include "b2bua/notify.h"
#include "cli/cli_server.h"
#include "shm/board.h"
#include "shm/handover.h"
#include "shm/shm.h"
#include "worker/worker.h"

#define MASTER_KILL_GRACE_S 5
#define MASTER_YOUNG_DEATH_MS 5000    /* died sooner than this: back off */
#define MASTER_BACKOFF_MAX_MS 5000
#define MASTER_RELOAD_WAIT_MS 2000    /* every child must take a reload within */

/* A child process: a worker, or the management process (id CTL_MGMT). */
struct master_proc {
	unsigned id;             /* worker index, or CTL_MGMT */
	pid_t pid;               /* 0 when not running */
	unsigned generation;     /* how many times it was started */
	uint64_t started_ms;
	uint64_t restart_at_ms;  /* when to fork it again; 0 = not scheduled */
	unsigned backoff_ms;
	int ctl;                 /* our end of its control channel, -1 if none */
};

/* The reload in progress (see the top of this file). */
struct master_reload {
	int active;
	int again;               /* a SIGHUP came meanwhile: reload again after */
	const char *by;          /* "SIGHUP" or "reload" (the CLI), for the log */
	uint32_t seq;            /* of the CTL_RELOAD sent to the children */
	uint64_t deadline_ms;
	pid_t waiting[CONFIG_MAX_WORKERS + 1]; /* workers, then the management process */
	int cli;                 /* asked by the management process: answer `request` */
	struct ctl_msg request;
	char plan[CTL_TEXT_MAX]; /* config_reload_format()'s lines */
	char refused[CTL_TEXT_MAX / 2]; /* "worker 2 (why), ..." */
};

struct master {
	struct config *cfg;      /* main's: a reload writes it, and children fork with it */
	board_t *board;          /* where a reload's configuration goes to the children */
	struct master_reload reload;
	shm_t *shm;
	handover_t *ho;          /* the workers' datagram queues; never freed */
	cli_server_t *cli;
	notify_t *notify;        /* what systemd is told (notify.h) */
	int sigfd;
	int stopping;
	int mgmt_stopped;        /* SIGTERM sent to the management process at the end */
	int exit_code;           /* what master_run returns */
	uint64_t kill_at_ms;
	uint32_t seq;            /* of the master's own control requests */
	struct master_proc workers[CONFIG_MAX_WORKERS];
	struct master_proc mgmt;
};

static void master_begin_stop(struct master *m, int sig);
static void master_reload_gone(struct master *m, const struct master_proc *p, pid_t pid);

/* "worker 3" or "the management process", for log lines. */
static const char *master_name(const struct master_proc *p, char *buf, size_t size)
{
	if (p->id == CTL_MGMT)
		return "the management process";
	snprintf(buf, size, "worker %u", p->id);
	return buf;
}

/* ------------------------------------------------------------ processes */

/* The own SIP port of worker `idx`, as shown in the call table's worker list. */
static uint16_t master_worker_port(const struct master *m, unsigned idx)
{
	return (uint16_t)(m->cfg->worker_port_base + (int)idx);
}

static void master_close_channels(struct master *m)
{
	for (int i = 0; i < m->cfg->workers; i++)
		if (m->workers[i].ctl >= 0)
			close(m->workers[i].ctl);
	if (m->mgmt.ctl >= 0)
		close(m->mgmt.ctl);
}

/* In the child: keep nothing of the master but the config, the shm, our
 * own channel and (management process only) the CLI socket. */
static void master_become_child(struct master *m, struct master_proc *p, int ctl)
{
	sigset_t none;

	close(m->sigfd);
	master_close_channels(m);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (p->id == CTL_MGMT)
		mgmt_run(m->cfg, m->board, m->cli, ctl);
	close(cli_server_fd(m->cli));
	worker_run(m->cfg, m->shm, m->ho, m->board, p->id, ctl);
}

static void master_spawn(struct master *m, struct master_proc *p)
{
	char name[32];
	pid_t pid;
	int sv[2];

	if (p->ctl >= 0)
		close(p->ctl);
	p->ctl = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_error("cannot make %s's control channel: %m; retrying in 1 s",
			  master_name(p, name, sizeof name));
		p->restart_at_ms = shm_now_ms() + 1000;
		return;
	}
	pid = fork();
	if (pid < 0) {
		log_error("cannot fork %s: %m; retrying in 1 s", master_name(p, name, sizeof name));
		close(sv[0]);
		close(sv[1]);
		p->restart_at_ms = shm_now_ms() + 1000;
		return;
	}
	if (pid == 0) {
		close(sv[0]);
		master_become_child(m, p, sv[1]);
	}
	close(sv[1]);
	p->ctl = sv[0];
	p->pid = pid;
	p->started_ms = shm_now_ms();
	p->restart_at_ms = 0;
	notify_started(m->notify, p->id, mono_ms());
	if (p->id != CTL_MGMT)
		shm_worker_set(m->shm, p->id, pid, master_worker_port(m, p->id), p->generation > 0,
			       p->started_ms);
	p->generation++;
}

static void master_log_exit(const struct master_proc *p, int status)
{
	char name[32];
	const char *who = master_name(p, name, sizeof name);

	if (WIFSIGNALED(status))
		log_warn("%s (pid %d) killed by signal %d (%s)", who, (int)p->pid,
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
	else if (WEXITSTATUS(status) != 0)
		log_warn("%s (pid %d) exited with status %d", who, (int)p->pid,
			 WEXITSTATUS(status));
	else
		log_info("%s (pid %d) exited", who, (int)p->pid);
}

/* A child is gone: restart it unless we are stopping. */
static void master_child_died(struct master *m, struct master_proc *p, int status)
{
	uint64_t now = shm_now_ms();
	char name[32];
	int start_failed;
	pid_t dead;

	master_log_exit(p, status);
	dead = p->pid;
	p->pid = 0;
	notify_died(m->notify, p->id, mono_ms());
	if (p->ctl >= 0) {
		close(p->ctl);   /* its peer is gone: poll() would report it for ever */
		p->ctl = -1;
	}
	master_reload_gone(m, p, dead);
	if (p->id != CTL_MGMT) {
		shm_worker_set(m->shm, p->id, 0, master_worker_port(m, p->id), 0, now);
		/* New calls go to the other workers until it is back and ready. */
		handover_set_ready(m->ho, p->id, 0);
	}
	if (m->stopping)
		return;
	start_failed = p->id == CTL_MGMT ? MGMT_EXIT_START : WORKER_EXIT_START;
	if (WIFEXITED(status) && WEXITSTATUS(status) == start_failed && p->generation == 1) {
		/* The very first start failed (a port in use, a spool directory
		 * that cannot be made...): retrying would only repeat it. */
		log_error("%s could not start (see above): stopping b2bua",
			  master_name(p, name, sizeof name));
		m->exit_code = 1;
		master_begin_stop(m, SIGTERM);
		return;
	}
	if (now - p->started_ms < MASTER_YOUNG_DEATH_MS)
		p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : 100;
	else
		p->backoff_ms = 0;
	if (p->backoff_ms > MASTER_BACKOFF_MAX_MS)
		p->backoff_ms = MASTER_BACKOFF_MAX_MS;
	p->restart_at_ms = now + p->backoff_ms;
}

/* The child with control id `id` (a worker index or CTL_MGMT), or NULL. */
static struct master_proc *master_proc_of(struct master *m, unsigned id)
{
	if (id == CTL_MGMT)
		return &m->mgmt;
	if (id < (unsigned)m->cfg->workers)
		return &m->workers[id];
	return NULL;
}

static struct master_proc *master_proc_by_pid(struct master *m, pid_t pid)
{
	for (int i = 0; i < m->cfg->workers; i++)
		if (m->workers[i].pid == pid)
			return &m->workers[i];
	return m->mgmt.pid == pid ? &m->mgmt : NULL;
}

static void master_reap(struct master *m)
{
	struct master_proc *p;
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		if ((p = master_proc_by_pid(m, pid)) != NULL)
			master_child_died(m, p, status);
}

static unsigned master_workers_alive(const struct master *m)
{
	unsigned n = 0;

	for (int i = 0; i < m->cfg->workers; i++)
		n += m->workers[i].pid != 0;
	return n;
}

static unsigned master_alive(const struct master *m)
{
	return master_workers_alive(m) + (m->mgmt.pid != 0);
}

static void master_signal_workers(struct master *m, int sig)
{
	for (int i = 0; i < m->cfg->workers; i++)
		if (m->workers[i].pid > 0)
			kill(m->workers[i].pid, sig);
}

/* ------------------------------------------------------------ control messages */

/* Send without waiting; a full or closed channel loses the message, said in the log. */
static int master_send(struct master *m, struct master_proc *p, const struct ctl_msg *msg)
{
	static struct log_limit drop_limit = { .what = "control: messages not delivered" };
	char name[32];
	int err = p->ctl >= 0 ? ctl_send(p->ctl, msg) : -ESRCH;

	if (err == 0)
		return 0;
	log_limited(&drop_limit, LOG_WARN, "control: %s message for %s not delivered (%s)",
		    ctl_type_name(msg->hdr.type), master_name(p, name, sizeof name),
		    strerror(-err));
	return err;
}

static void master_reload_answer(struct master *m, const struct master_proc *p,
				 const struct ctl_msg *msg);
static void master_reload_begin(struct master *m, const char *by, const struct ctl_msg *req);

/* A message for the master itself: a child's answer to our reload, or the
 * management process asking for one (b2bua-cli reload). */
static void master_on_answer(struct master *m, const struct ctl_msg *msg)
{
	struct master_proc *p = master_proc_of(m, msg->hdr.from);

	if (msg->hdr.type == CTL_RELOAD && msg->hdr.from == CTL_MGMT)
		master_reload_begin(m, "reload", msg);
	else if (msg->hdr.type == CTL_REPLY && p != NULL)
		master_reload_answer(m, p, msg);
	else
		log_warn("control: unexpected %s message for the master",
			 ctl_type_name(msg->hdr.type));
}

/* Pass msg from `from` to its addressee; answer a request whose addressee is not running. */
static void master_route(struct master *m, struct master_proc *from, struct ctl_msg *msg)
{
	struct master_proc *to;
	struct ctl_msg answer;
	char name[32];

	msg->hdr.from = (uint16_t)from->id;   /* a child speaks only for itself */
	if (msg->hdr.to == CTL_MASTER) {
		master_on_answer(m, msg);
		return;
	}
	to = master_proc_of(m, msg->hdr.to);
	if (to != NULL && to->pid != 0 && master_send(m, to, msg) == 0)
		return;
	if (to == NULL)
		log_warn("control: %s message from %s for unknown peer %u dropped",
			 ctl_type_name(msg->hdr.type), master_name(from, name, sizeof name),
			 (unsigned)msg->hdr.to);
	if (ctl_is_request(msg->hdr.type)) {
		ctl_reply_to(msg, -ESRCH, "not running", &answer);
		answer.hdr.from = CTL_MASTER;
		master_send(m, from, &answer);
	}
}

/* What master_on_ctl() hands to master_route(): the master and the sender. */
struct master_from {
	struct master *m;
	struct master_proc *p;
};

/* ctl_handle_f: one message from a child. */
static void master_on_message(void *arg, const struct ctl_msg *msg)
{
	struct master_from *from = arg;
	struct ctl_msg copy = *msg;

	master_route(from->m, from->p, &copy);
}

/* A child's channel is readable: switch what it sent.  A closed channel
 * needs nothing here: SIGCHLD follows. */
static void master_on_ctl(struct master *m, struct master_proc *p)
{
	struct master_from from = { m, p };
	char name[32];

	if (ctl_read_all(p->ctl, master_name(p, name, sizeof name), master_on_message, &from) < 0)
		return;
	/* Its loop turns; a worker's counts once it takes calls (notify.h). */
	if (p->id == CTL_MGMT || handover_ready(m->ho, p->id))
		notify_heard(m->notify, p->id, mono_ms());
}

/* Send a copy of *tmpl to every running worker (when `workers`) and to the
 * management process (when `mgmt`), each with its own addressee. */
static void master_tell_all(struct master *m, const struct ctl_msg *tmpl, int workers, int mgmt)
{
	struct ctl_msg msg = *tmpl;

	for (int i = 0; workers && i < m->cfg->workers; i++) {
		if (m->workers[i].pid == 0)
			continue;
		msg.hdr.to = (uint16_t)i;
		master_send(m, &m->workers[i], &msg);
	}
	if (mgmt && m->mgmt.pid != 0) {
		msg.hdr.to = CTL_MGMT;
		master_send(m, &m->mgmt, &msg);
	}
}

/* Ping every running child when notify.h's rounds say so; the answers come
 * back through master_on_ctl() like any message. */
static void master_ping(struct master *m)
{
	struct ctl_msg ping;

	if (!notify_ping_due(m->notify, mono_ms()))
		return;
	ctl_init(&ping, CTL_PING, CTL_MASTER, 0, ++m->seq);
	master_tell_all(m, &ping, 1, 1);
}

/* ------------------------------------------------------------ signals */

static void master_begin_stop(struct master *m, int sig)
{
	struct ctl_msg drain;

	if (m->stopping)
		return;
	m->stopping = 1;
	notify_stopping(m->notify, shm_call_count(m->shm));
	m->kill_at_ms = shm_now_ms() +
			(uint64_t)(m->cfg->drain_timeout + MASTER_KILL_GRACE_S) * 1000u;
	log_info("%s: draining %u calls for up to %d s, then stopping", strsignal(sig),
		 shm_call_count(m->shm), m->cfg->drain_timeout);
	ctl_init(&drain, CTL_DRAIN, CTL_MASTER, CTL_MGMT, ++m->seq);
	master_tell_all(m, &drain, 0, 1);
	master_signal_workers(m, SIGTERM);
}

/* ------------------------------------------------------------ reload */

/* The child slot of p in reload.waiting: workers by index, then the management process. */
static unsigned master_reload_slot(const struct master_proc *p)
{
	return p->id == CTL_MGMT ? CONFIG_MAX_WORKERS : p->id;
}

/*
 * Every reload ends here, whatever happened (applied, nothing to apply, a
 * bad file): the answer to the management process when b2bua-cli asked,
 * and the SIGHUP that came meanwhile, if any.
 */
static void master_reload_end(struct master *m, int status, const char *text)
{
	struct master_reload *r = &m->reload;
	struct ctl_msg answer;

	if (r->cli) {
		ctl_reply_to(&r->request, status, text, &answer);
		answer.hdr.from = CTL_MASTER;
		master_send(m, &m->mgmt, &answer);
	}
	r->cli = 0;
	r->active = 0;
	notify_ready(m->notify);        /* ends RELOADING=1; nothing before READY or when draining */
	if (r->again) {
		r->again = 0;
		master_reload_begin(m, "SIGHUP", NULL);
	}
}

/* Append "worker 2" (and " (why)") to the list in buf. */
static void master_reload_note(char *buf, size_t size, const char *who, const char *why)
{
	size_t len = strlen(buf);

	snprintf(buf + len, size - len, "%s%s%s%s%s", len ? ", " : "", who,
		 why ? " (" : "", why ? why : "", why ? ")" : "");
}

/*
 * The reload is over: every child answered, or MASTER_RELOAD_WAIT_MS
 * passed.  One log line, and the answer for b2bua-cli: the plan's lines,
 * then "not_acknowledged ..." and "refused ..." lines when it applies.
 */
static void master_reload_finish(struct master *m)
{
	struct master_reload *r = &m->reload;
	char late[CTL_TEXT_MAX / 4] = "", name[32], text[CTL_TEXT_MAX];
	size_t len;

	for (unsigned i = 0; i <= CONFIG_MAX_WORKERS; i++) {
		const struct master_proc *p = i < CONFIG_MAX_WORKERS ? &m->workers[i] : &m->mgmt;

		if (r->waiting[i] != 0)
			master_reload_note(late, sizeof late, master_name(p, name, sizeof name),
					   NULL);
	}
	len = (size_t)snprintf(text, sizeof text, "%s", r->plan);
	if (late[0] && len < sizeof text)
		len += (size_t)snprintf(text + len, sizeof text - len,
					"not_acknowledged %s\n", late);
	if (r->refused[0] && len < sizeof text)
		snprintf(text + len, sizeof text - len, "refused %s\n", r->refused);
	if (late[0] || r->refused[0])
		log_warn("%s: %s: in force in the master; not acknowledged within %d ms: %s; "
			 "refused: %s", r->by, m->cfg->path, MASTER_RELOAD_WAIT_MS,
			 late[0] ? late : "none", r->refused[0] ? r->refused : "none");
	master_reload_end(m, 0, text);
}

static int master_reload_done(const struct master *m)
{
	for (unsigned i = 0; i <= CONFIG_MAX_WORKERS; i++)
		if (m->reload.waiting[i] != 0)
			return 0;
	return 1;
}

/* A child's CTL_REPLY: to the reload in progress, or a stale one. */
static void master_reload_answer(struct master *m, const struct master_proc *p,
				 const struct ctl_msg *msg)
{
	struct master_reload *r = &m->reload;
	unsigned slot = master_reload_slot(p);
	char name[32];

	if (!r->active || msg->hdr.seq != r->seq || r->waiting[slot] == 0) {
		log_debug("control: late answer %u from %s dropped", (unsigned)msg->hdr.seq,
			  master_name(p, name, sizeof name));
		return;
	}
	r->waiting[slot] = 0;
	if (msg->u.reply.status < 0)
		master_reload_note(r->refused, sizeof r->refused,
				   master_name(p, name, sizeof name),
				   msg->u.reply.text[0] ? msg->u.reply.text
							: strerror(-msg->u.reply.status));
	if (master_reload_done(m))
		master_reload_finish(m);
}

/* Child p (pid `pid`) died during a reload: its successor forks with the
 * new configuration. */
static void master_reload_gone(struct master *m, const struct master_proc *p, pid_t pid)
{
	struct master_reload *r = &m->reload;

	if (!r->active || r->waiting[master_reload_slot(p)] != pid)
		return;
	r->waiting[master_reload_slot(p)] = 0;
	if (master_reload_done(m))
		master_reload_finish(m);
}

/* A reload that cannot start: said in the log, and to the CLI when it asked. */
static void master_reload_refuse(struct master *m, const char *by, int status, const char *why)
{
	log_error("%s: %s", by, why);
	master_reload_end(m, status, why);
}

/* Send the new configuration's generation to every running child. */
static void master_reload_tell(struct master *m, uint32_t gen)
{
	struct ctl_msg msg;
	char name[32];

	m->reload.seq = ++m->seq;
	memset(m->reload.waiting, 0, sizeof m->reload.waiting);
	ctl_init(&msg, CTL_RELOAD, CTL_MASTER, 0, m->reload.seq);
	msg.u.reload.generation = gen;
	for (unsigned i = 0; i <= (unsigned)m->cfg->workers; i++) {
		struct master_proc *p = i < (unsigned)m->cfg->workers ? &m->workers[i] : &m->mgmt;

		if (p->pid == 0)
			continue;
		msg.hdr.to = (uint16_t)p->id;
		if (master_send(m, p, &msg) == 0)
			m->reload.waiting[master_reload_slot(p)] = p->pid;
		else
			master_reload_note(m->reload.refused, sizeof m->reload.refused,
					   master_name(p, name, sizeof name), "not delivered");
	}
	m->reload.deadline_ms = shm_now_ms() + MASTER_RELOAD_WAIT_MS;
}

/* Append " KEY KEY..." (or " none") to buf. */
static void master_reload_keys(char *buf, size_t size, const char *const *keys, size_t n)
{
	size_t len = strlen(buf);

	if (n == 0)
		snprintf(buf + len, size - len, " none");
	for (size_t i = 0; i < n && len < size; i++) {
		snprintf(buf + len, size - len, " %s", keys[i]);
		len = strlen(buf);
	}
}

/* One line: "SIGHUP: FILE: applied: KEY...; restart_needed: KEY...". */
static void master_reload_log(const char *by, const char *path,
			      const struct config_reload_plan *plan)
{
	char line[CTL_TEXT_MAX] = "applied:";

	master_reload_keys(line, sizeof line, plan->applied, plan->n_applied);
	snprintf(line + strlen(line), sizeof line - strlen(line), "; restart_needed:");
	master_reload_keys(line, sizeof line, plan->restart_needed, plan->n_restart);
	if (plan->n_restart > 0)
		log_warn("%s: %s: %s (those wait for a restart)", by, path, line);
	else
		log_info("%s: %s: %s", by, path, line);
}

/* A second b2bua-cli reload while one is in progress. */
static void master_reload_refuse_busy(struct master *m, const struct ctl_msg *req)
{
	struct ctl_msg answer;

	ctl_reply_to(req, -EBUSY, "a reload is in progress: nothing changed, try again",
		     &answer);
	answer.hdr.from = CTL_MASTER;
	master_send(m, &m->mgmt, &answer);
}

/* Read the file, take what changed, and tell the children (top of this file). */
static void master_reload_begin(struct master *m, const char *by, const struct ctl_msg *req)
{
	static struct config next;   /* large: not on the stack */
	struct master_reload *r = &m->reload;
	struct config_reload_plan plan;
	char err[512], why[640];
	uint32_t gen;
	int ret;

	if (r->active) {
		if (req == NULL)
			r->again = 1;
		else
			master_reload_refuse_busy(m, req);
		return;
	}
	memset(r, 0, sizeof *r);
	r->by = by;
	if (req != NULL) {
		r->cli = 1;
		r->request = *req;
	}
	if (m->stopping) {
		master_reload_refuse(m, by, -ECANCELED, "draining: nothing changed");
		return;
	}
	notify_reloading(m->notify);    /* READY=1 again in master_reload_end() */
	if (config_load(m->cfg->path, &next, err, sizeof err) < 0) {
		snprintf(why, sizeof why, "%s: nothing changed", err);
		master_reload_refuse(m, by, -EINVAL, why);
		return;
	}
	config_reload_plan(m->cfg, &next, &plan);
	if (config_reload_format(&plan, r->plan, sizeof r->plan) < 0)
		snprintf(r->plan, sizeof r->plan, "applied (too many keys to list)\n");
	master_reload_log(by, m->cfg->path, &plan);
	if (plan.n_applied == 0) {
		master_reload_end(m, 0, r->plan);
		return;
	}
	ret = board_put(m->board, &next, sizeof next, &gen);
	if (ret < 0) {
		master_reload_refuse(m, by, ret, "cannot publish the configuration: nothing changed");
		return;
	}
	*m->cfg = next;
	log_set_level(m->cfg->log_level);
	r->active = 1;
	master_reload_tell(m, gen);
	if (master_reload_done(m))
		master_reload_finish(m);
}

/* Called every turn of the loop: a reload whose children are late ends here. */
static void master_reload_timer(struct master *m, uint64_t now)
{
	if (m->reload.active && now >= m->reload.deadline_ms)
		master_reload_finish(m);
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
			master_reload_begin(m, "SIGHUP", NULL);
			break;
		}
	}
}

/* ------------------------------------------------------------ timers and the loop */

static void master_restart_due(struct master *m, struct master_proc *p, uint64_t now)
{
	char name[32];

	if (p->pid != 0 || p->restart_at_ms == 0 || now < p->restart_at_ms)
		return;
	master_spawn(m, p);
	if (p->pid > 0)
		log_info("%s restarted as pid %d (restart %u)", master_name(p, name, sizeof name),
			 (int)p->pid, p->generation - 1);
}

/* Milliseconds until the next thing the master must do by itself. */
static int master_next_timeout(const struct master *m, uint64_t now)
{
	uint64_t next = now + 1000;
	int ping_ms = notify_next_ms(m->notify, mono_ms());

	for (int i = 0; i <= m->cfg->workers; i++) {
		const struct master_proc *p = i < m->cfg->workers ? &m->workers[i] : &m->mgmt;
		if (!m->stopping && p->restart_at_ms && p->restart_at_ms < next)
			next = p->restart_at_ms;
	}
	if (m->stopping && m->kill_at_ms < next)
		next = m->kill_at_ms;
	if (m->reload.active && m->reload.deadline_ms < next)
		next = m->reload.deadline_ms;
	if (ping_ms >= 0 && now + (uint64_t)ping_ms < next)
		next = now + (uint64_t)ping_ms;
	return next > now ? (int)(next - now) : 0;
}

static void master_on_timers(struct master *m)
{
	uint64_t now = shm_now_ms();

	master_reload_timer(m, now);
	master_ping(m);
	if (m->stopping) {
		notify_draining(m->notify, shm_call_count(m->shm));
		/* The workers are done: the management process may go too. */
		if (master_workers_alive(m) == 0 && m->mgmt.pid != 0 && !m->mgmt_stopped) {
			kill(m->mgmt.pid, SIGTERM);
			m->mgmt_stopped = 1;
		}
		if (now >= m->kill_at_ms && master_alive(m) > 0) {
			log_warn("%u processes still running after the drain: killing them",
				 master_alive(m));
			master_signal_workers(m, SIGKILL);
			if (m->mgmt.pid)
				kill(m->mgmt.pid, SIGKILL);
			m->kill_at_ms = now + 1000;
		}
		return;
	}
	for (int i = 0; i < m->cfg->workers; i++)
		master_restart_due(m, &m->workers[i], now);
	master_restart_due(m, &m->mgmt, now);
}

static int master_setup(struct master *m)
{
	sigset_t set;
	int ret;

	for (int i = 0; i < CONFIG_MAX_WORKERS; i++)
		m->workers[i] = (struct master_proc){ .id = (unsigned)i, .ctl = -1 };
	m->mgmt = (struct master_proc){ .id = CTL_MGMT, .ctl = -1 };
	ret = shm_create(m->cfg->call_capacity, (unsigned)m->cfg->workers, &m->shm);
	if (ret < 0) {
		log_error("cannot create the call table for %u calls: %s",
			  m->cfg->call_capacity, strerror(-ret));
		return ret;
	}
	/* The queues through which workers pass each other datagrams:
	 * made before fork, like the call table (shm/handover.h). */
	ret = handover_create((unsigned)m->cfg->workers, &m->ho);
	if (ret < 0) {
		log_error("cannot create the hand-over queues for %d workers: %s",
			  m->cfg->workers, strerror(-ret));
		return ret;
	}
	/* Where a reloaded configuration goes to the children: mapped before fork. */
	ret = board_create(sizeof *m->cfg, &m->board);
	if (ret < 0) {
		log_error("cannot map the reload board: %s", strerror(-ret));
		return ret;
	}
	ret = cli_server_open(m->cfg, m->shm, &m->cli);
	if (ret < 0)
		return ret;
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

/* One turn of the loop: wait for signals and control messages, or a timer. */
static int master_poll(struct master *m)
{
	struct pollfd pfd[2 + CONFIG_MAX_WORKERS];
	struct master_proc *who[2 + CONFIG_MAX_WORKERS];
	int nfd = 1, n;

	pfd[0] = (struct pollfd){ .fd = m->sigfd, .events = POLLIN };
	for (int i = 0; i <= m->cfg->workers; i++) {
		struct master_proc *p = i < m->cfg->workers ? &m->workers[i] : &m->mgmt;
		if (p->ctl < 0)
			continue;
		who[nfd] = p;
		pfd[nfd++] = (struct pollfd){ .fd = p->ctl, .events = POLLIN };
	}
	n = poll(pfd, (nfds_t)nfd, master_next_timeout(m, shm_now_ms()));
	if (n < 0 && errno != EINTR) {
		log_error("poll: %m");
		return -1;
	}
	/* Messages first: a child that wrote and then died is reaped after. */
	for (int i = 1; n > 0 && i < nfd; i++)
		if (pfd[i].revents & POLLIN && who[i]->ctl == pfd[i].fd)
			master_on_ctl(m, who[i]);
	if (n > 0 && (pfd[0].revents & POLLIN))
		master_on_signals(m);
	master_on_timers(m);
	log_limit_flush();
	return 0;
}

/* A new life of this host (hosts.h): its epoch, its first heartbeat, and
 * the calls its previous life left closed before any worker serves.  The
 * master waits on Redis only here, before it supervises anything. */
static void master_start_life(const struct config *cfg)
{
	hosts_t *h;

	if (hosts_create(cfg, &h) < 0) {
		log_error("host liveness: out of memory");
		return;
	}
	hosts_start(h);
	hosts_destroy(h);
}

int master_run(struct config *cfg)
{
	static struct master m;
	char sip[CONFIG_MAX_LISTEN * 72];
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
	if (notify_create((unsigned)cfg->workers, mono_ms(), &m.notify) < 0) {
		log_error("systemd notifications: out of memory");
		cli_server_close(m.cli);
		shm_destroy(m.shm);
		return 1;
	}
	master_start_life(cfg);
	master_spawn(&m, &m.mgmt);
	for (int i = 0; i < cfg->workers; i++)
		master_spawn(&m, &m.workers[i]);
	config_listen_text(cfg, cfg->sip_port, sip, sizeof sip);
	log_info("master ready: %d workers, sip %s, call capacity %u, cli %s "
		 "(call table %zu bytes)", cfg->workers, sip,
		 cfg->call_capacity, cfg->cli_socket, shm_size(m.shm));

	while (!m.stopping || master_alive(&m) > 0)
		if (master_poll(&m) < 0)
			break;
	log_info("stopped");
	cli_server_close(m.cli);
	shm_destroy(m.shm);
	board_destroy(m.board);
	close(m.sigfd);
	notify_destroy(m.notify);
	return m.exit_code;
}
