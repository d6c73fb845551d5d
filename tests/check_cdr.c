/*
 * check_cdr — CDR encoding, the spool line format, and the writer against
 * a real redis-server on the worker's io_uring port.
 *
 * Design note.  The harness is tests/testenv, as in check_rds: each test
 * gets a fresh directory under one base directory (removed by the runner),
 * its own redis-server when it needs one (a Unix socket in the test
 * directory, killed by PID in the teardown or with the test process through
 * PR_SET_PDEATHSIG), and a Sofia root on a uport stepped with
 * su_root_step() until a condition holds or a deadline passes.  A blocking
 * hiredis client looks at the server side.
 *
 * Losing a reply on purpose.  To prove that a record Redis stored but whose
 * reply never came back is not stored twice, one test puts a small relay
 * process between rds and redis-server: after SIGUSR1 it swallows
 * everything Redis sends, then it is killed, so the connection drops with
 * the XADD done and unacknowledged.
 *
 * Without redis-server the program skips (exit 77).
 */
#define _GNU_SOURCE

#include "worker/cdr.h"
#include "worker/rds.h"
#include "tests/testenv.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <sofia-sip/su_wait.h>

#include "b2bua/log.h"

#define CONNECT_MS      2000    /* rds is up within this once the server answers */
#define RECONNECT_MS    7000    /* rds's backoff (at most 5 s) plus the handshake */
/* How long a test waits for something that must happen (a reply, a replay,
 * a lost connection noticed): long, so that a loaded machine does not fail
 * it; a test that passes returns as soon as the condition holds. */
#define T_WAIT_MS 10000
#define PREFIX          "test:"
#define STREAM          PREFIX "cdr"
#define SEEN            "test:cdr:seen:"

static char t_proxy_sock[128];
static char t_spool[160];     /* inside a directory the writer has to create */
static char t_rejected[176];
static pid_t t_proxy = -1;
static rds_t *t_rds;
static cdr_writer_t *t_writer;
static pid_t t_replica = -1;  /* a redis-server replicating this test's one */
static int t_replica_port;
static shm_t *t_shm;          /* the counters show stats reads */

/* ------------------------------------------------------------ redis-server */

/* With aof, every write is on disk before its reply: a restart keeps it. */
static void redis_start(int aof)
{
	const char *const extra[] = {
		"--appendonly", aof ? "yes" : "no", "--appendfsync", "always", NULL,
	};

	testenv_redis_start(0, extra);
}

/* One blocking command on a fresh connection; the reply is the caller's. */
static redisReply *probe(const char *fmt, ...)
{
	redisContext *c = testenv_redis_connect(NULL);
	redisReply *r;
	va_list ap;

	ck_assert_ptr_nonnull(c);
	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	ck_assert_ptr_nonnull(r);
	redisFree(c);
	return r;
}

static long long probe_int(const char *fmt, const char *arg)
{
	redisReply *r = probe(fmt, arg);
	long long v;

	ck_assert_msg(r->type == REDIS_REPLY_INTEGER, "%s %s: reply type %d (%s)", fmt, arg,
		      r->type, r->str ? r->str : "");
	v = r->integer;
	freeReplyObject(r);
	return v;
}

static long long xlen(void)
{
	return probe_int("XLEN %s", STREAM);
}

/* ------------------------------------------------------------ the relay */

/* The test directories are short: a socket path always fits. */
static void unix_sockaddr(struct sockaddr_un *sa, const char *path)
{
	size_t len = strlen(path);

	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	if (len >= sizeof sa->sun_path)
		abort();
	memcpy(sa->sun_path, path, len + 1);
}

static volatile sig_atomic_t t_swallow;

static void on_usr1(int sig)
{
	(void)sig;
	t_swallow = 1;
}

/* Copy one read's worth from `from` to `to` (dropped when `drop`); 0 at EOF. */
static int relay_once(int from, int to, int drop)
{
	char buf[65536];
	ssize_t n = read(from, buf, sizeof buf);

	if (n <= 0)
		return n < 0 && errno == EINTR;
	if (!drop && write(to, buf, (size_t)n) != n)
		return 0;
	return 1;
}

static void relay(int client)
{
	struct sockaddr_un sa;
	int server = socket(AF_UNIX, SOCK_STREAM, 0);
	struct pollfd pfd[2];

	unix_sockaddr(&sa, testenv_redis_sock());
	if (server < 0 || connect(server, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(client);
		if (server >= 0)
			close(server);
		return;
	}
	pfd[0] = (struct pollfd){ .fd = client, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = server, .events = POLLIN };
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if ((pfd[0].revents & (POLLIN | POLLHUP)) && !relay_once(client, server, 0))
			break;
		if ((pfd[1].revents & (POLLIN | POLLHUP)) && !relay_once(server, client, t_swallow))
			break;
	}
	close(client);
	close(server);
}

/* A relay from t_proxy_sock to redis-server, one connection at a time. */
static void proxy_start(void)
{
	struct sockaddr_un sa;
	struct sigaction act = { .sa_handler = on_usr1 };
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(lfd, 0);
	unix_sockaddr(&sa, t_proxy_sock);
	unlink(t_proxy_sock);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(lfd, 8), 0);
	t_proxy = testenv_fork(lfd);
	if (t_proxy > 0) {
		close(lfd);
		return;
	}
	t_swallow = 0;
	sigaction(SIGUSR1, &act, NULL);
	for (;;) {
		int client = accept(lfd, NULL, NULL);

		if (client >= 0)
			relay(client);
		else if (errno != EINTR)
			_exit(1);
	}
}

static void proxy_kill(void)
{
	if (t_proxy <= 0)
		return;
	kill(t_proxy, SIGKILL);
	waitpid(t_proxy, NULL, 0);
	t_proxy = -1;
}

/* ------------------------------------------------------------ fixture */

static void setup(void)
{
	testenv_setup();
	snprintf(t_proxy_sock, sizeof t_proxy_sock, "%s/proxy.sock", testenv_dir());
	snprintf(t_spool, sizeof t_spool, "%s/spool/cdr-node1-w3.spool", testenv_dir());
	snprintf(t_rejected, sizeof t_rejected, "%s.rejected", t_spool);
	log_set_level(LOG_INFO);
}

static void teardown(void)
{
	testenv_log_capture_stop();
	cdr_writer_destroy(t_writer);   /* before its rds */
	t_writer = NULL;
	rds_destroy(t_rds);             /* before its root */
	t_rds = NULL;
	proxy_kill();
	if (t_replica > 0) {
		kill(t_replica, SIGKILL);
		waitpid(t_replica, NULL, 0);
		t_replica = -1;
	}
	shm_destroy(t_shm);
	t_shm = NULL;
	testenv_teardown();
}

/* ------------------------------------------------------------ conditions */

static int is_up(void *arg)
{
	return rds_connected(arg);
}

static int is_down(void *arg)
{
	return !rds_connected(arg);
}

static int spool_empty(void *arg)
{
	return cdr_spooled(arg) == 0;
}

static long long file_size(const char *path);

/* Confirmed and cut off (at once after an outage, else once idle). */
static int spool_file_empty(void *arg)
{
	(void)arg;
	return file_size(t_spool) == 0;
}

static int spool_holds_one(void *arg)
{
	return cdr_spooled(arg) == 1;
}

static int stream_has(void *arg)
{
	return xlen() >= (long long)(intptr_t)arg;
}

static int plainstream_has_one(void *arg)
{
	(void)arg;
	return probe_int("XLEN %s", "plainstream") == 1;
}

static int file_lines(const char *path, char *buf, size_t size);

static int rejected_has(void *arg)
{
	char buf[8192];

	return file_lines(t_rejected, buf, sizeof buf) >= (int)(intptr_t)arg;
}

/* ------------------------------------------------------------ helpers */

static rds_t *start_rds_timeout(const char *sock, int timeout_ms)
{
	struct rds_config cfg = { .db = 0, .timeout_ms = timeout_ms };
	rds_t *rds = NULL;

	snprintf(cfg.address, sizeof cfg.address, "unix:%s", sock);
	snprintf(cfg.prefix, sizeof cfg.prefix, "test:");
	ck_assert_int_eq(rds_create(testenv_root(), &cfg, &rds), 0);
	t_rds = rds;
	return rds;
}

static rds_t *start_rds(const char *sock)
{
	return start_rds_timeout(sock, 0);
}

static cdr_writer_t *start_writer(rds_t *rds)
{
	cdr_writer_t *w = NULL;

	ck_assert_int_eq(cdr_writer_create(testenv_root(), rds, PREFIX, "cdr", t_spool, &w), 0);
	ck_assert_ptr_nonnull(w);
	t_writer = w;
	return w;
}

/* The usual start: redis-server, rds up on it, and a writer on that rds. */
static cdr_writer_t *start_all(int aof, rds_t **rds)
{
	redis_start(aof);
	*rds = start_rds(testenv_redis_sock());
	ck_assert(testenv_run_until(is_up, *rds, CONNECT_MS));
	return start_writer(*rds);
}

static void stop_writer(void)
{
	cdr_writer_destroy(t_writer);
	t_writer = NULL;
}

/* Record n: distinct ids that sort like n (%06d), realistic values. */
static void make_cdr(struct cdr *c, int n)
{
	memset(c, 0, sizeof *c);
	snprintf(c->id, sizeof c->id, "node1-%06d", n);
	snprintf(c->a_call_id, sizeof c->a_call_id, "a-%d@10.0.0.1", n);
	snprintf(c->b_call_id, sizeof c->b_call_id, "b-%d@10.0.0.2", n);
	snprintf(c->caller, sizeof c->caller, "sip:alice@example.com");
	snprintf(c->callee, sizeof c->callee, "sip:bob@example.com");
	snprintf(c->answered_by, sizeof c->answered_by, "sip:bob@10.0.0.3:5062");
	c->start_ms = 1700000000000ULL + (uint64_t)n * 1000;
	c->ring_ms = c->start_ms + 120;
	c->answer_ms = c->start_ms + 2500;
	c->end_ms = c->start_ms + 62500;
	c->billable_ms = 60000;
	c->disposition = CDR_ANSWERED;
	c->sip_code = 200;
	c->hangup_by = CDR_PARTY_CALLER;
	snprintf(c->host, sizeof c->host, "node1");
	c->worker = 3;
	snprintf(c->a_transport, sizeof c->a_transport, "tcp");
	snprintf(c->b_transport, sizeof c->b_transport, "udp");
}

static void write_range(cdr_writer_t *w, int first, int count)
{
	struct cdr c;

	for (int i = first; i < first + count; i++) {
		make_cdr(&c, i);
		ck_assert_int_eq(cdr_write(w, &c), 0);
	}
}

/* The stream holds exactly records first .. first + count - 1, in order. */
static void assert_stream(int first, int count)
{
	redisReply *r = probe("XRANGE %s - +", STREAM);
	char id[40];

	ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
	ck_assert_uint_eq(r->elements, (size_t)count);
	for (int i = 0; i < count; i++) {
		redisReply *fields = r->element[i]->element[1];

		ck_assert_str_eq(fields->element[0]->str, "id");
		snprintf(id, sizeof id, "node1-%06d", first + i);
		ck_assert_str_eq(fields->element[1]->str, id);
	}
	freeReplyObject(r);
}

/* Record n (the stream's n-th entry) names these transports. */
static void assert_stream_transports(int n, const char *a_tp, const char *b_tp)
{
	redisReply *r = probe("XRANGE %s - +", STREAM);
	redisReply *fields;

	ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
	ck_assert_uint_ge(r->elements, (size_t)n);
	fields = r->element[n - 1]->element[1];
	ck_assert_uint_eq(fields->elements, 2 * CDR_FIELDS);
	ck_assert_str_eq(fields->element[2 * 19]->str, "a_transport");
	ck_assert_str_eq(fields->element[2 * 19 + 1]->str, a_tp);
	ck_assert_str_eq(fields->element[2 * 20]->str, "b_transport");
	ck_assert_str_eq(fields->element[2 * 20 + 1]->str, b_tp);
	freeReplyObject(r);
}

static long long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* Lines of a file, read through its own descriptor. */
static int file_lines(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;
	int lines = 0;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	for (ssize_t i = 0; i < n; i++)
		lines += buf[i] == '\n';
	return lines;
}

static void append_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* ------------------------------------------------------------ pure functions */

START_TEST(test_disposition)
{
	ck_assert_int_eq(cdr_disposition_of(487, 1), CDR_CANCELLED);
	ck_assert_int_eq(cdr_disposition_of(200, 1), CDR_CANCELLED);
	ck_assert_int_eq(cdr_disposition_of(486, 0), CDR_BUSY);
	ck_assert_int_eq(cdr_disposition_of(600, 0), CDR_BUSY);
	ck_assert_int_eq(cdr_disposition_of(408, 0), CDR_NO_ANSWER);
	ck_assert_int_eq(cdr_disposition_of(480, 0), CDR_NO_ANSWER);
	ck_assert_int_eq(cdr_disposition_of(200, 0), CDR_ANSWERED);
	ck_assert_int_eq(cdr_disposition_of(202, 0), CDR_ANSWERED);
	ck_assert_int_eq(cdr_disposition_of(299, 0), CDR_ANSWERED);
	ck_assert_int_eq(cdr_disposition_of(300, 0), CDR_FAILED);
	ck_assert_int_eq(cdr_disposition_of(404, 0), CDR_FAILED);
	ck_assert_int_eq(cdr_disposition_of(487, 0), CDR_FAILED);
	ck_assert_int_eq(cdr_disposition_of(503, 0), CDR_FAILED);
	ck_assert_int_eq(cdr_disposition_of(603, 0), CDR_FAILED);
	ck_assert_int_eq(cdr_disposition_of(0, 0), CDR_FAILED);

	ck_assert_str_eq(cdr_disposition_name(CDR_ANSWERED), "ANSWERED");
	ck_assert_str_eq(cdr_disposition_name(CDR_BUSY), "BUSY");
	ck_assert_str_eq(cdr_disposition_name(CDR_NO_ANSWER), "NO_ANSWER");
	ck_assert_str_eq(cdr_disposition_name(CDR_CANCELLED), "CANCELLED");
	ck_assert_str_eq(cdr_disposition_name(CDR_FAILED), "FAILED");
	ck_assert_str_eq(cdr_disposition_name(CDR_KILLED), "KILLED");
	ck_assert_str_eq(cdr_disposition_name(CDR_REFUSED), "REFUSED");
	ck_assert_str_eq(cdr_party_name(CDR_PARTY_NONE), "none");
	ck_assert_str_eq(cdr_party_name(CDR_PARTY_CALLER), "caller");
	ck_assert_str_eq(cdr_party_name(CDR_PARTY_CALLEE), "callee");
	ck_assert_str_eq(cdr_party_name(CDR_PARTY_SYSTEM), "system");
}
END_TEST

static const char *const t_expected_fields[] = {
	"id", "a_call_id", "b_call_id", "caller", "callee", "answered_by", "forwarded_to",
	"start_ms", "ring_ms", "answer_ms", "end_ms", "billable_ms", "disposition",
	"sip_code", "hangup_by", "host", "worker", "cause", "closed_by", "a_transport",
	"b_transport",
};

/* make_cdr(7) with a forward target, as the stream must show it. */
static const char *const t_expected_values[] = {
	"node1-000007", "a-7@10.0.0.1", "b-7@10.0.0.2", "sip:alice@example.com",
	"sip:bob@example.com", "sip:bob@10.0.0.3:5062", "sip:carol@example.com",
	"1700000007000", "1700000007120", "1700000009500", "1700000069500", "60000",
	"ANSWERED", "200", "caller", "node1", "3", "", "", "tcp", "udp",
};

static void make_cdr7(struct cdr *c)
{
	make_cdr(c, 7);
	snprintf(c->forwarded_to, sizeof c->forwarded_to, "sip:carol@example.com");
}

START_TEST(test_encode)
{
	const char *fields[22];
	const char *values[22];
	char buf[256];
	struct cdr c;
	int n;

	make_cdr7(&c);
	n = cdr_encode(&c, fields, values, 22, buf, sizeof buf);
	ck_assert_int_eq(n, 21);
	for (int i = 0; i < n; i++) {
		ck_assert_str_eq(fields[i], t_expected_fields[i]);
		ck_assert_str_eq(values[i], t_expected_values[i]);
	}

	/* Every enum value by name; extremes of the numbers. */
	c.disposition = CDR_KILLED;
	c.hangup_by = CDR_PARTY_SYSTEM;
	c.sip_code = 0;
	c.start_ms = UINT64_MAX;
	c.worker = 4294967295u;
	ck_assert_int_eq(cdr_encode(&c, fields, values, 21, buf, sizeof buf), 21);
	ck_assert_str_eq(values[7], "18446744073709551615");
	ck_assert_str_eq(values[12], "KILLED");
	ck_assert_str_eq(values[13], "0");
	ck_assert_str_eq(values[14], "system");
	ck_assert_str_eq(values[16], "4294967295");

	/* A refused attempt: its disposition and its cause. */
	c.disposition = CDR_REFUSED;
	snprintf(c.cause, sizeof c.cause, "capacity");
	ck_assert_int_eq(cdr_encode(&c, fields, values, 21, buf, sizeof buf), 21);
	ck_assert_str_eq(values[12], "REFUSED");
	ck_assert_str_eq(fields[17], "cause");
	ck_assert_str_eq(values[17], "capacity");

	/* A call closed by another host after its own was lost. */
	c.disposition = CDR_ANSWERED;
	snprintf(c.cause, sizeof c.cause, CDR_CAUSE_HOST_LOST);
	snprintf(c.closed_by, sizeof c.closed_by, "edge1");
	ck_assert_int_eq(cdr_encode(&c, fields, values, 21, buf, sizeof buf), 21);
	ck_assert_str_eq(values[17], "host_lost");
	ck_assert_str_eq(fields[18], "closed_by");
	ck_assert_str_eq(values[18], "edge1");
	c.closed_by[0] = '\0';
	snprintf(c.cause, sizeof c.cause, "capacity");
	c.disposition = CDR_REFUSED;

	/* Too little room; a malformed record. */
	ck_assert_int_eq(cdr_encode(&c, fields, values, 20, buf, sizeof buf), -ENOSPC);
	ck_assert_int_eq(cdr_encode(&c, fields, values, 21, buf, 40), -ENOSPC);
	c.disposition = (enum cdr_disposition)99;
	ck_assert_int_eq(cdr_encode(&c, fields, values, 21, buf, sizeof buf), -EINVAL);
	make_cdr7(&c);
	memset(c.caller, 'x', sizeof c.caller);   /* no NUL inside */
	ck_assert_int_eq(cdr_encode(&c, fields, values, 21, buf, sizeof buf), -EINVAL);
	make_cdr7(&c);
	memset(c.cause, 'x', sizeof c.cause);     /* no NUL inside */
	ck_assert_int_eq(cdr_encode(&c, fields, values, 21, buf, sizeof buf), -EINVAL);
	make_cdr7(&c);
	memset(c.closed_by, 'x', sizeof c.closed_by);
	ck_assert_int_eq(cdr_encode(&c, fields, values, 21, buf, sizeof buf), -EINVAL);
	make_cdr7(&c);
	c.id[0] = '\0';
	ck_assert_int_eq(cdr_encode(&c, fields, values, 21, buf, sizeof buf), -EINVAL);

	/* Each leg's transport: a name of shm_transport_name(), or "" (no B-leg,
	 * an older record); anything else is no record. */
	make_cdr7(&c);
	snprintf(c.a_transport, sizeof c.a_transport, "%s", shm_transport_name(SHM_TP_TLS));
	c.b_transport[0] = '\0';
	ck_assert_int_eq(cdr_encode(&c, fields, values, 21, buf, sizeof buf), 21);
	ck_assert_str_eq(fields[19], "a_transport");
	ck_assert_str_eq(values[19], "tls");
	ck_assert_str_eq(fields[20], "b_transport");
	ck_assert_str_eq(values[20], "");
	snprintf(c.b_transport, sizeof c.b_transport, "sctp");
	ck_assert_int_eq(cdr_encode(&c, fields, values, 21, buf, sizeof buf), -EINVAL);
	snprintf(c.b_transport, sizeof c.b_transport, "UDP");   /* the names are lower case */
	ck_assert_int_eq(cdr_encode(&c, fields, values, 21, buf, sizeof buf), -EINVAL);
	make_cdr7(&c);
	memset(c.a_transport, 'x', sizeof c.a_transport);        /* no NUL inside */
	ck_assert_int_eq(cdr_encode(&c, fields, values, 21, buf, sizeof buf), -EINVAL);
}
END_TEST

static void assert_same_cdr(const struct cdr *a, const struct cdr *b)
{
	ck_assert_str_eq(a->id, b->id);
	ck_assert_str_eq(a->a_call_id, b->a_call_id);
	ck_assert_str_eq(a->b_call_id, b->b_call_id);
	ck_assert_str_eq(a->caller, b->caller);
	ck_assert_str_eq(a->callee, b->callee);
	ck_assert_str_eq(a->answered_by, b->answered_by);
	ck_assert_str_eq(a->forwarded_to, b->forwarded_to);
	ck_assert_uint_eq(a->start_ms, b->start_ms);
	ck_assert_uint_eq(a->ring_ms, b->ring_ms);
	ck_assert_uint_eq(a->answer_ms, b->answer_ms);
	ck_assert_uint_eq(a->end_ms, b->end_ms);
	ck_assert_uint_eq(a->billable_ms, b->billable_ms);
	ck_assert_int_eq(a->disposition, b->disposition);
	ck_assert_int_eq(a->sip_code, b->sip_code);
	ck_assert_int_eq(a->hangup_by, b->hangup_by);
	ck_assert_str_eq(a->host, b->host);
	ck_assert_uint_eq(a->worker, b->worker);
	ck_assert_str_eq(a->cause, b->cause);
	ck_assert_str_eq(a->closed_by, b->closed_by);
	ck_assert_str_eq(a->a_transport, b->a_transport);
	ck_assert_str_eq(a->b_transport, b->b_transport);
}

static void assert_round_trip(const struct cdr *c)
{
	char line[4096];
	struct cdr back;
	int len = cdr_to_line(c, line, sizeof line);

	ck_assert_int_gt(len, 0);
	ck_assert_uint_eq(strlen(line), (size_t)len);
	ck_assert_ptr_null(strchr(line, '\n'));
	ck_assert_ptr_null(strchr(line, '\r'));
	ck_assert_int_eq(cdr_from_line(line, &back), 0);
	assert_same_cdr(c, &back);
}

START_TEST(test_line_round_trip)
{
	char line[4096];
	struct cdr c, back;
	int tabs = 0;

	make_cdr7(&c);
	assert_round_trip(&c);
	ck_assert_int_gt(cdr_to_line(&c, line, sizeof line), 0);
	ck_assert(strncmp(line, "cdr4\tnode1-000007\ta-7@10.0.0.1\t", 31) == 0);
	for (const char *p = line; *p; p++)
		tabs += *p == '\t';
	ck_assert_int_eq(tabs, 21);
	/* the empty cause and closed_by, then the transports, last */
	ck_assert(strcmp(line + strlen(line) - 10, "\t\t\ttcp\tudp") == 0);

	/* No B-leg (a refused INVITE): its transport is empty. */
	c.b_transport[0] = '\0';
	assert_round_trip(&c);
	ck_assert_int_gt(cdr_to_line(&c, line, sizeof line), 0);
	ck_assert(strcmp(line + strlen(line) - 5, "\ttcp\t") == 0);
	make_cdr7(&c);

	/* A lost host's call closed by another: cause and closed_by come back. */
	snprintf(c.cause, sizeof c.cause, CDR_CAUSE_HOST_LOST);
	snprintf(c.closed_by, sizeof c.closed_by, "edge1");
	c.hangup_by = CDR_PARTY_SYSTEM;
	assert_round_trip(&c);
	ck_assert_int_gt(cdr_to_line(&c, line, sizeof line), 0);
	ck_assert(strcmp(line + strlen(line) - 24, "\thost_lost\tedge1\ttcp\tudp") == 0);
	make_cdr7(&c);

	/* A refused attempt with its cause, escaped like every string. */
	c.disposition = CDR_REFUSED;
	snprintf(c.cause, sizeof c.cause, "rate_limit\t1");
	assert_round_trip(&c);
	ck_assert_int_gt(cdr_to_line(&c, line, sizeof line), 0);
	ck_assert_ptr_nonnull(strstr(line, "\tREFUSED\t"));
	ck_assert_ptr_nonnull(strstr(line, "\trate_limit\\t1"));
	make_cdr7(&c);

	/* Tabs, newlines, quotes, backslashes, control bytes, UTF-8. */
	snprintf(c.caller, sizeof c.caller, "\"Al\tice\" <sip:alice@example.com>;tag=a\\b");
	snprintf(c.callee, sizeof c.callee, "line1\nline2\r\nend\\n\\t\\x41");
	snprintf(c.answered_by, sizeof c.answered_by, "\x01\x1f\x7f 'single' \"double\"");
	snprintf(c.forwarded_to, sizeof c.forwarded_to,
		 "sip:J\xc3\xbcrgen@m\xc3\xbcnchen.de \xe2\x98\x8e \xf0\x9f\x93\x9e");
	snprintf(c.host, sizeof c.host, "h\tost");
	c.sip_code = -1;
	c.hangup_by = CDR_PARTY_NONE;
	c.disposition = CDR_NO_ANSWER;
	c.ring_ms = 0;
	c.answer_ms = UINT64_MAX;
	assert_round_trip(&c);
	ck_assert_int_gt(cdr_to_line(&c, line, sizeof line), 0);
	ck_assert_ptr_nonnull(strstr(line, "\"Al\\tice\""));
	ck_assert_ptr_nonnull(strstr(line, "line1\\nline2\\r\\nend\\\\n\\\\t\\\\x41"));
	ck_assert_ptr_nonnull(strstr(line, "\\x01\\x1f\\x7f"));
	ck_assert_ptr_nonnull(strstr(line, "J\xc3\xbcrgen"));   /* UTF-8 kept as is */

	/* The longest strings, every byte needing an escape. */
	memset(c.a_call_id, '\t', CDR_STR - 1);
	c.a_call_id[CDR_STR - 1] = '\0';
	memset(c.b_call_id, '\x02', CDR_STR - 1);
	c.b_call_id[CDR_STR - 1] = '\0';
	memset(c.id, '\\', sizeof c.id - 1);
	c.id[sizeof c.id - 1] = '\0';
	assert_round_trip(&c);
	ck_assert_int_eq(cdr_to_line(&c, line, 100), -ENOSPC);

	/* Lines that are no record. */
	make_cdr7(&c);
	ck_assert_int_gt(cdr_to_line(&c, line, sizeof line), 0);
	ck_assert_int_eq(cdr_from_line(line, &back), 0);
	{
		static const char *const bad[] = {
			"",
			"cdr1",
			"cdr2\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5\tANSWERED\t200\tcaller\th\t3",
			"cdr1\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5\tANSWERED\t200\tcaller\th",
			"cdr1\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5\tANSWERED\t200\tcaller\th\t3\t",
			"cdr1\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5\tANSWERED\t200\tcaller\th\t3\tx",
			"cdr1\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5\tBUSYISH\t200\tcaller\th\t3",
			"cdr1\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5\tANSWERED\t200\tnobody\th\t3",
			"cdr1\tnode1-1\ta\tb\tc\td\te\tf\t1\t-2\t3\t4\t5\tANSWERED\t200\tcaller\th\t3",
			"cdr1\tnode1-1\ta\tb\tc\td\te\tf\t1\t2x\t3\t4\t5\tANSWERED\t200\tcaller\th\t3",
			"cdr1\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5\tANSWERED\t2 0\tcaller\th\t3",
			"cdr1\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5\tANSWERED\t200\tcaller\th\t-3",
			"cdr1\tnode1-1\ta\tb\tc\td\te\tf\t99999999999999999999\t2\t3\t4\t5\tANSWERED\t200"
				"\tcaller\th\t3",
			"cdr1\tnode1-1\ta\\q\tb\tc\td\te\tf\t1\t2\t3\t4\t5\tANSWERED\t200\tcaller\th\t3",
			"cdr1\tnode1-1\ta\\\tb\tc\td\te\tf\t1\t2\t3\t4\t5\tANSWERED\t200\tcaller\th\t3",
			"cdr1\tnode1-1\ta\\x0\tb\tc\td\te\tf\t1\t2\t3\t4\t5\tANSWERED\t200\tcaller\th\t3",
			"cdr1\tnode1-1\ta\\x00\tb\tc\td\te\tf\t1\t2\t3\t4\t5\tANSWERED\t200\tcaller\th\t3",
			"cdr1\t\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5\tANSWERED\t200\tcaller\th\t3",
			"cdr1\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5\tANSWERED\t200\tcaller\t"
				"a-host-name-longer-than-31-bytes\t3",
		};

		for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
			ck_assert_msg(cdr_from_line(bad[i], &back) == -EINVAL, "accepted: %s",
				      bad[i]);
		/* The same shape, well-formed, is taken (the bad ones fail for their flaw). */
		ck_assert_int_eq(cdr_from_line("cdr1\tnode1-1\ta\\x41\tb\tc\td\te\tf\t1\t2\t3\t4\t5"
					       "\tANSWERED\t200\tcaller\th\t3", &back), 0);
		ck_assert_str_eq(back.a_call_id, "aA");
		ck_assert_str_eq(back.host, "h");
		ck_assert_uint_eq(back.worker, 3);
		ck_assert_str_eq(back.cause, "");   /* a "cdr1" line has none */
		/* The same as "cdr2", with its cause; a cause too long, one field too many. */
		ck_assert_int_eq(cdr_from_line("cdr2\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5"
					       "\tREFUSED\t503\tsystem\th\t3\tcapacity", &back), 0);
		ck_assert_int_eq(back.disposition, CDR_REFUSED);
		ck_assert_str_eq(back.cause, "capacity");
		ck_assert_int_eq(cdr_from_line("cdr2\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5"
					       "\tREFUSED\t503\tsystem\th\t3\t"
					       "a-cause-longer-than-31-bytes-xxxx", &back), -EINVAL);
		ck_assert_int_eq(cdr_from_line("cdr2\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5"
					       "\tREFUSED\t503\tsystem\th\t3\tcapacity\tx", &back),
				 -EINVAL);
		ck_assert_str_eq(back.closed_by, "");   /* a "cdr2" line has none */
		/* "cdr3": closed_by; one too long, one field short, one too many. */
		ck_assert_int_eq(cdr_from_line("cdr3\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5"
					       "\tANSWERED\t200\tsystem\th\t3\thost_lost\tedge1",
					       &back), 0);
		ck_assert_str_eq(back.cause, "host_lost");
		ck_assert_str_eq(back.closed_by, "edge1");
		ck_assert_int_eq(cdr_from_line("cdr3\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5"
					       "\tANSWERED\t200\tsystem\th\t3\thost_lost\t"
					       "a-node-id-longer-than-31-bytes-xx", &back), -EINVAL);
		ck_assert_int_eq(cdr_from_line("cdr3\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5"
					       "\tANSWERED\t200\tsystem\th\t3\thost_lost", &back),
				 -EINVAL);
		ck_assert_int_eq(cdr_from_line("cdr3\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5"
					       "\tANSWERED\t200\tsystem\th\t3\thost_lost\te\tx",
					       &back), -EINVAL);
		ck_assert_int_eq(cdr_from_line("cdr3\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5"
					       "\tANSWERED\t200\tsystem\th\t3\t\t", &back), 0);
		ck_assert_str_eq(back.a_transport, "");   /* a "cdr3" line has none */
		ck_assert_str_eq(back.b_transport, "");
		/* "cdr4": both transports; an unknown name, one field short, one too many. */
		ck_assert_int_eq(cdr_from_line("cdr4\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5"
					       "\tANSWERED\t200\tcaller\th\t3\t\t\ttls\ttcp", &back), 0);
		ck_assert_str_eq(back.a_transport, "tls");
		ck_assert_str_eq(back.b_transport, "tcp");
		ck_assert_int_eq(cdr_from_line("cdr4\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5"
					       "\tREFUSED\t503\tsystem\th\t3\tcapacity\t\tudp\t",
					       &back), 0);
		ck_assert_str_eq(back.a_transport, "udp");
		ck_assert_str_eq(back.b_transport, "");
		ck_assert_int_eq(cdr_from_line("cdr4\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5"
					       "\tANSWERED\t200\tcaller\th\t3\t\t\tws\ttcp", &back),
				 -EINVAL);
		ck_assert_int_eq(cdr_from_line("cdr4\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5"
					       "\tANSWERED\t200\tcaller\th\t3\t\t\tudp-and-more\ttcp",
					       &back), -EINVAL);
		ck_assert_int_eq(cdr_from_line("cdr4\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5"
					       "\tANSWERED\t200\tcaller\th\t3\t\t\tudp", &back),
				 -EINVAL);
		ck_assert_int_eq(cdr_from_line("cdr4\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5"
					       "\tANSWERED\t200\tcaller\th\t3\t\t\tudp\tudp\tx",
					       &back), -EINVAL);
	}
	/* A 128-byte string does not fit a 128-byte array. */
	{
		char longline[1024];
		char s[CDR_STR + 1];

		memset(s, 'y', CDR_STR);
		s[CDR_STR] = '\0';
		snprintf(longline, sizeof longline, "cdr1\tnode1-1\t%s\tb\tc\td\te\tf\t1\t2\t3\t4\t5"
			 "\tANSWERED\t200\tcaller\th\t3", s);
		ck_assert_int_eq(cdr_from_line(longline, &back), -EINVAL);
		s[CDR_STR - 1] = '\0';
		snprintf(longline, sizeof longline, "cdr1\tnode1-1\t%s\tb\tc\td\te\tf\t1\t2\t3\t4\t5"
			 "\tANSWERED\t200\tcaller\th\t3", s);
		ck_assert_int_eq(cdr_from_line(longline, &back), 0);
	}
}
END_TEST

/* An answered call's record (hosts): its text, and back. */
START_TEST(test_record)
{
	char text[CDR_LINE_MAX + 512];
	struct cdr_record r, back;
	int len;

	memset(&r, 0, sizeof r);
	make_cdr7(&r.cdr);
	r.cdr.end_ms = r.cdr.billable_ms = 0;   /* not over yet */
	r.epoch = 1765000000123ULL;
	r.n_names = 2;
	snprintf(r.names[0], sizeof r.names[0], "alice");
	snprintf(r.names[1], sizeof r.names[1], "bob");
	len = cdr_record_to_text(&r, text, sizeof text);
	ck_assert_int_gt(len, 0);
	ck_assert_uint_eq(strlen(text), (size_t)len);
	ck_assert(strncmp(text, "call1\t1765000000123\talice\tbob\ncdr4\tnode1-000007\t",
			  strlen("call1\t1765000000123\talice\tbob\ncdr4\tnode1-000007\t")) == 0);
	ck_assert_int_eq(cdr_record_from_text(text, (size_t)len, &back), 0);
	assert_same_cdr(&r.cdr, &back.cdr);
	ck_assert_uint_eq(back.epoch, r.epoch);
	ck_assert_uint_eq(back.n_names, 2);
	ck_assert_str_eq(back.names[0], "alice");
	ck_assert_str_eq(back.names[1], "bob");

	/* No names: a call that counts against nobody's max_calls. */
	r.n_names = 0;
	len = cdr_record_to_text(&r, text, sizeof text);
	ck_assert_int_gt(len, 0);
	ck_assert_int_eq(cdr_record_from_text(text, (size_t)len, &back), 0);
	ck_assert_uint_eq(back.n_names, 0);

	/* A name the first line cannot hold; too little room. */
	r.n_names = 1;
	snprintf(r.names[0], sizeof r.names[0], "a\tb");
	ck_assert_int_eq(cdr_record_to_text(&r, text, sizeof text), -EINVAL);
	snprintf(r.names[0], sizeof r.names[0], "alice");
	ck_assert_int_eq(cdr_record_to_text(&r, text, 40), -ENOSPC);
	r.n_names = CDR_RECORD_NAMES + 1;
	ck_assert_int_eq(cdr_record_to_text(&r, text, sizeof text), -EINVAL);

	/* Whatever else Redis may hold is no record. */
	{
		static const char *const bad[] = {
			"", "call1", "call1\t123", "call1\t\ncdr3\tx",
			"call2\t123\ncdr3\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5\tANSWERED"
			"\t200\tsystem\th\t3\t\t",
			"call1\tx12\ncdr3\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3\t4\t5\tANSWERED"
			"\t200\tsystem\th\t3\t\t",
			"call1\t12\ta\tb\tc\td\te\ncdr3\tnode1-1\ta\tb\tc\td\te\tf\t1\t2\t3"
			"\t4\t5\tANSWERED\t200\tsystem\th\t3\t\t",
			"call1\t12\ncdr3\tnode1-1\ta\tb",
			"call1\t12\ngarbage",
			"{\"json\": true}",
		};

		for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
			ck_assert_msg(cdr_record_from_text(bad[i], strlen(bad[i]), &back) == -EINVAL,
				      "accepted: %s", bad[i]);
		/* The well-formed shape of the same is taken; a NUL inside is not. */
		static const char good[] = "call1\t12\ta\ncdr3\tnode1-1\ta\tb\tc\td\te\tf\t1\t2"
			"\t3\t4\t5\tANSWERED\t200\tsystem\th\t3\t\t";
		static const char nul[] = "call1\t12\ta\ncdr3\0";

		ck_assert_int_eq(cdr_record_from_text(good, strlen(good), &back), 0);
		ck_assert_uint_eq(back.epoch, 12);
		ck_assert_int_eq(cdr_record_from_text(nul, sizeof nul - 1, &back), -EINVAL);
	}
}
END_TEST

/* ------------------------------------------------------------ the writer */

START_TEST(test_write_up)
{
	redisReply *r;
	rds_t *rds;
	cdr_writer_t *w;
	struct cdr c;
	struct stat st;
	char dir[160];
	char spool2[192];
	long long ttl;

	w = start_all(0, &rds);

	/* The spool and its directory were made, private. */
	ck_assert_int_eq(stat(t_spool, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(st.st_size, 0);
	snprintf(dir, sizeof dir, "%s/spool", testenv_dir());
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);

	make_cdr7(&c);
	ck_assert_int_eq(cdr_write(w, &c), 0);
	/* In the spool at once, until Redis confirms it; then the spool is emptied. */
	ck_assert_uint_eq(cdr_spooled(w), 1);
	ck_assert_int_gt(file_size(t_spool), 0);
	ck_assert(testenv_run_until(stream_has, (void *)1, T_WAIT_MS));
	ck_assert(testenv_run_until(spool_empty, w, T_WAIT_MS));

	r = probe("XRANGE %s - +", STREAM);
	ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
	ck_assert_uint_eq(r->elements, 1);
	ck_assert_uint_eq(r->element[0]->element[1]->elements, 42);
	for (int i = 0; i < 21; i++) {
		redisReply *f = r->element[0]->element[1]->element[2 * i];
		redisReply *v = r->element[0]->element[1]->element[2 * i + 1];

		ck_assert_str_eq(f->str, t_expected_fields[i]);
		ck_assert_str_eq(v->str, t_expected_values[i]);
	}
	freeReplyObject(r);

	/* The dedup key, with its week. */
	ttl = probe_int("TTL %s", SEEN "node1-000007");
	ck_assert_int_gt(ttl, 604800 - 60);
	ck_assert_int_le(ttl, 604800);
	ck_assert(testenv_run_until(spool_file_empty, NULL, T_WAIT_MS));
	ck_assert_int_eq(file_size(t_rejected), -1);

	/* Each stream has its own seen keys.  (Another spool: this one may get
	 * record 7 back if its reply is still due.) */
	stop_writer();
	snprintf(spool2, sizeof spool2, "%s/spool/other.spool", testenv_dir());
	ck_assert_int_eq(cdr_writer_create(testenv_root(), rds, "", "plainstream", spool2, &t_writer), 0);
	make_cdr(&c, 8);
	ck_assert_int_eq(cdr_write(t_writer, &c), 0);
	ck_assert(testenv_run_until(plainstream_has_one, NULL, T_WAIT_MS));
	ck_assert_int_eq(probe_int("EXISTS %s", "plainstream:seen:node1-000008"), 1);
	ck_assert_int_eq(probe_int("EXISTS %s", SEEN "node1-000008"), 0);
}
END_TEST

/* An answered call's record is kept in <p>calls:<host>, and the CDR of the
 * call takes it away in the same script that stores the CDR (hosts). */
START_TEST(test_record_kept)
{
	struct cdr_record r;
	rds_t *rds;
	cdr_writer_t *w;

	w = start_all(0, &rds);
	memset(&r, 0, sizeof r);
	make_cdr(&r.cdr, 5);
	r.epoch = 42;
	ck_assert_int_eq(cdr_writer_keep(w, &r), 0);
	make_cdr(&r.cdr, 6);
	ck_assert_int_eq(cdr_writer_keep(w, &r), 0);
	testenv_run_for(200);
	ck_assert_int_eq(probe_int("HLEN %s", PREFIX "calls:node1"), 2);
	make_cdr(&r.cdr, 5);
	ck_assert_int_eq(cdr_write(w, &r.cdr), 0);
	ck_assert(testenv_run_until(stream_has, (void *)1, T_WAIT_MS));
	ck_assert_int_eq(probe_int("HLEN %s", PREFIX "calls:node1"), 1);
	ck_assert_int_eq(probe_int("HEXISTS " PREFIX "calls:node1 %s", "node1-000006"), 1);
	/* A CDR stored before (a duplicate) takes its record too. */
	ck_assert_int_eq(cdr_writer_keep(w, &r), 0);
	ck_assert_int_eq(cdr_write(w, &r.cdr), 0);
	testenv_run_for(300);
	ck_assert_int_eq(probe_int("HEXISTS " PREFIX "calls:node1 %s", "node1-000005"), 0);
	ck_assert_int_eq(xlen(), 1);
}
END_TEST

START_TEST(test_duplicate)
{
	rds_t *rds;
	cdr_writer_t *w;
	struct cdr c;

	w = start_all(0, &rds);
	make_cdr(&c, 1);
	ck_assert_int_eq(cdr_write(w, &c), 0);
	ck_assert_int_eq(cdr_write(w, &c), 0);   /* pipelined right behind the first */
	testenv_run_for(200);
	ck_assert_int_eq(cdr_write(w, &c), 0);   /* and once more, later */
	make_cdr(&c, 2);
	ck_assert_int_eq(cdr_write(w, &c), 0);
	ck_assert(testenv_run_until(stream_has, (void *)2, T_WAIT_MS));
	testenv_run_for(200);
	assert_stream(1, 2);
	ck_assert_int_eq(file_size(t_spool), 0);
}
END_TEST

/* Redis goes away after a direct write; N records spool; Redis comes back
 * on the same socket; they are replayed in order; the spool is emptied. */
START_TEST(test_spool_and_replay)
{
	static char lines[1 << 16];
	char needle[512];
	const char *log;
	rds_t *rds;
	cdr_writer_t *w;
	struct cdr c, back;
	const int n = 20;

	w = start_all(1, &rds);
	write_range(w, 1, 1);
	ck_assert(testenv_run_until(stream_has, (void *)1, T_WAIT_MS));
	ck_assert(testenv_run_until(spool_file_empty, NULL, T_WAIT_MS));   /* confirmed, cut off */

	testenv_log_capture_start();
	testenv_redis_kill();
	ck_assert(testenv_run_until(is_down, rds, T_WAIT_MS));
	write_range(w, 2, n);
	ck_assert_uint_eq(cdr_spooled(w), (unsigned)n);

	/* On disk, one record a line, readable through another descriptor. */
	ck_assert_int_eq(file_lines(t_spool, lines, sizeof lines), n);
	ck_assert_int_eq(cdr_from_line(strtok(lines, "\n"), &back), 0);
	make_cdr(&c, 2);
	assert_same_cdr(&c, &back);

	testenv_run_for(300);
	ck_assert_uint_eq(cdr_spooled(w), (unsigned)n);   /* nothing to send to */
	redis_start(1);
	ck_assert(testenv_run_until(spool_empty, w, RECONNECT_MS));
	assert_stream(1, n + 1);
	ck_assert_int_eq(file_size(t_spool), 0);
	log = testenv_log_capture_stop();

	snprintf(needle, sizeof needle, "warn: redis unix:%s unreachable: spooling CDRs to %s",
		 testenv_redis_sock(), t_spool);
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
	ck_assert_int_eq(testenv_count_lines(log, "spooling CDRs"), 1);
	snprintf(needle, sizeof needle, "info: replayed %d CDRs from %s\n", n, t_spool);
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
	ck_assert_int_eq(testenv_count_lines(log, "error:"), 0);

	/* Back to normal: confirmed by Redis at once, the spool emptied again. */
	write_range(w, n + 2, 1);
	ck_assert(testenv_run_until(stream_has, (void *)(intptr_t)(n + 2), T_WAIT_MS));
	ck_assert(testenv_run_until(spool_empty, w, T_WAIT_MS));
	ck_assert(testenv_run_until(spool_file_empty, NULL, T_WAIT_MS));
	assert_stream(1, n + 2);
}
END_TEST

static int replay_started(void *arg)
{
	cdr_writer_t *w = arg;

	return cdr_spooled(w) < 1000;
}

/* Records written while a replay is under way join the end of the queue:
 * the spool is not truncated under them, and the order holds. */
START_TEST(test_write_during_replay)
{
	rds_t *rds;
	cdr_writer_t *w;
	unsigned left;

	rds = start_rds(testenv_redis_sock());   /* no server yet */
	w = start_writer(rds);
	log_set_level(LOG_ERROR);
	write_range(w, 1, 1000);
	ck_assert_uint_eq(cdr_spooled(w), 1000);
	redis_start(0);
	ck_assert(testenv_run_until(replay_started, w, RECONNECT_MS));
	left = cdr_spooled(w);
	ck_assert_uint_gt(left, 0);   /* still under way */
	write_range(w, 1001, 10);
	ck_assert_uint_eq(cdr_spooled(w), left + 10);
	ck_assert(testenv_run_until(spool_empty, w, 10000));
	assert_stream(1, 1010);
	ck_assert_int_eq(file_size(t_spool), 0);
}
END_TEST

/* Killed with the XADD queued but not answered: the record goes to the
 * spool and is stored exactly once after the restart. */
START_TEST(test_drop_mid_flight)
{
	rds_t *rds;
	cdr_writer_t *w;

	w = start_all(1, &rds);
	write_range(w, 1, 1);
	ck_assert(testenv_run_until(stream_has, (void *)1, T_WAIT_MS));
	ck_assert(testenv_run_until(spool_empty, w, T_WAIT_MS));

	log_set_level(LOG_ERROR);
	write_range(w, 2, 1);
	ck_assert_uint_eq(cdr_spooled(w), 1);   /* in flight, and in the spool */
	testenv_redis_kill();
	ck_assert(testenv_run_until(is_down, rds, T_WAIT_MS));
	ck_assert_uint_eq(cdr_spooled(w), 1);
	ck_assert_int_eq(file_size(t_spool) > 0, 1);

	/* Sent on the wire this time, then the server dies. */
	redis_start(1);
	ck_assert(testenv_run_until(spool_empty, w, RECONNECT_MS));
	write_range(w, 3, 1);
	su_root_step(testenv_root(), 0);
	testenv_redis_kill();
	ck_assert(testenv_run_until(is_down, rds, T_WAIT_MS));
	redis_start(1);   /* the AOF keeps whatever was executed */
	ck_assert(testenv_run_until(is_up, rds, RECONNECT_MS));
	ck_assert(testenv_run_until(spool_empty, w, T_WAIT_MS));
	testenv_run_for(200);
	assert_stream(1, 3);
	ck_assert_int_eq(file_size(t_spool), 0);
}
END_TEST

/* Stored by Redis, the reply lost with the connection: the replay finds
 * the seen key and the stream keeps one entry. */
START_TEST(test_reply_lost)
{
	char needle[512];
	const char *log;
	rds_t *rds;
	cdr_writer_t *w;

	redis_start(0);
	proxy_start();
	rds = start_rds(t_proxy_sock);
	ck_assert(testenv_run_until(is_up, rds, CONNECT_MS));
	w = start_writer(rds);

	/* Up means the handshake's replies went through: from here on, the
	 * relay swallows the reply of our only command. */
	ck_assert_int_eq(kill(t_proxy, SIGUSR1), 0);
	testenv_log_capture_start();
	write_range(w, 1, 1);
	ck_assert(testenv_run_until(stream_has, (void *)1, T_WAIT_MS));   /* stored ... */
	testenv_run_for(100);
	ck_assert_uint_eq(cdr_spooled(w), 1);                /* ... not acknowledged */
	proxy_kill();
	ck_assert(testenv_run_until(is_down, rds, T_WAIT_MS));
	ck_assert_uint_eq(cdr_spooled(w), 1);

	proxy_start();
	ck_assert(testenv_run_until(spool_empty, w, RECONNECT_MS));
	testenv_run_for(100);
	assert_stream(1, 1);
	ck_assert_int_eq(file_size(t_spool), 0);
	log = testenv_log_capture_stop();
	snprintf(needle, sizeof needle, "replayed 1 CDRs from %s\n", t_spool);
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
}
END_TEST

/* A spool left by an earlier process, its last line cut short by a crash
 * and one line damaged: the records are replayed at creation, the rest is
 * set aside in the rejected file. */
START_TEST(test_leftover_spool)
{
	char buf[8192];
	char needle[512];
	const char *log;
	rds_t *rds;
	cdr_writer_t *w;

	/* An earlier run without Redis. */
	log_set_level(LOG_ERROR);
	ck_assert_int_eq(cdr_writer_create(testenv_root(), NULL, PREFIX, "cdr", t_spool, &t_writer), 0);
	write_range(t_writer, 1, 3);
	ck_assert_uint_eq(cdr_spooled(t_writer), 3);
	stop_writer();
	append_file(t_spool, "cdr1\tgarbage\n");
	ck_assert_int_eq(cdr_writer_create(testenv_root(), NULL, PREFIX, "cdr", t_spool, &t_writer), 0);
	write_range(t_writer, 4, 1);
	stop_writer();
	for (int n = 5; n <= 7; n++) {
		/* Record 5 as a b2bua before the transports spooled it ("cdr3"),
		 * record 6 as one before `closed_by` ("cdr2"), record 7 as one
		 * before `cause` ("cdr1"): each line without its last fields. */
		static const char *const tags[] = { "cdr3", "cdr2", "cdr1" };
		struct cdr c;
		char line[CDR_LINE_MAX];
		int len;

		make_cdr(&c, n);
		c.a_transport[0] = c.b_transport[0] = '\0';
		len = cdr_to_line(&c, line, sizeof line);
		ck_assert_int_gt(len, 5);
		/* empty cause, closed_by and transports */
		ck_assert(strcmp(line + len - 4, "\t\t\t\t") == 0);
		len -= n - 3;
		line[len] = '\n';
		line[len + 1] = '\0';
		memcpy(line, tags[n - 5], 4);
		append_file(t_spool, line);
	}
	append_file(t_spool, "cdr1\tnode1-000009\ta-9@");   /* the crash */
	log_set_level(LOG_INFO);

	redis_start(0);
	rds = start_rds(testenv_redis_sock());
	ck_assert(testenv_run_until(is_up, rds, CONNECT_MS));
	testenv_log_capture_start();
	w = start_writer(rds);
	ck_assert_uint_eq(cdr_spooled(w), 9);
	ck_assert_int_eq(file_lines(t_spool, buf, sizeof buf), 9);   /* the cut line ended */
	ck_assert(testenv_run_until(spool_empty, w, T_WAIT_MS));
	assert_stream(1, 7);
	assert_stream_transports(4, "tcp", "udp");   /* written by this version */
	for (int n = 5; n <= 7; n++)
		assert_stream_transports(n, "", "");      /* older lines: not known */
	ck_assert_int_eq(file_size(t_spool), 0);

	ck_assert_int_eq(file_lines(t_rejected, buf, sizeof buf), 2);
	ck_assert_str_eq(buf, "cdr1\tgarbage\ncdr1\tnode1-000009\ta-9@\n");
	log = testenv_log_capture_stop();
	snprintf(needle, sizeof needle, "info: CDR spool %s holds 9 CDRs from an earlier run",
		 t_spool);
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
	ck_assert_int_eq(testenv_count_lines(log, "ends in a partial line"), 1);
	ck_assert_int_eq(testenv_count_lines(log, "is no record; moved to"), 2);
	snprintf(needle, sizeof needle, "info: replayed 7 CDRs from %s (2 rejected: see %s)",
		 t_spool, t_rejected);
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
}
END_TEST

/* A record already in Redis found again in the spool (the previous
 * process died before it could truncate): stored once. */
START_TEST(test_leftover_duplicate)
{
	rds_t *rds;
	cdr_writer_t *w;

	w = start_all(0, &rds);
	write_range(w, 1, 2);
	ck_assert(testenv_run_until(stream_has, (void *)2, T_WAIT_MS));
	stop_writer();

	/* The same two records, spooled by a writer without Redis. */
	log_set_level(LOG_ERROR);
	ck_assert_int_eq(cdr_writer_create(testenv_root(), NULL, PREFIX, "cdr", t_spool, &t_writer), 0);
	write_range(t_writer, 1, 3);
	stop_writer();
	log_set_level(LOG_INFO);

	w = start_writer(rds);
	ck_assert(testenv_run_until(spool_empty, w, T_WAIT_MS));
	testenv_run_for(100);
	assert_stream(1, 3);
}
END_TEST

/* Redis answers an error that is about the record (here: the stream key
 * holds a string): the record is moved aside, the queue moves on. */
START_TEST(test_rejected)
{
	char buf[8192];
	char line[4096];
	char needle[512];
	const char *log;
	rds_t *rds;
	cdr_writer_t *w;
	struct cdr c;
	redisReply *r;

	w = start_all(0, &rds);
	r = probe("SET %s not-a-stream", STREAM);
	freeReplyObject(r);

	testenv_log_capture_start();
	make_cdr(&c, 1);
	ck_assert_int_eq(cdr_write(w, &c), 0);
	ck_assert(testenv_run_until(rejected_has, (void *)1, T_WAIT_MS));
	ck_assert_int_eq(file_lines(t_rejected, buf, sizeof buf), 1);
	ck_assert_int_gt(cdr_to_line(&c, line, sizeof line), 0);
	ck_assert_int_eq(strncmp(buf, line, strlen(line)), 0);
	/* The seen key went with the failed XADD: a corrected retry stores it. */
	ck_assert_int_eq(probe_int("EXISTS %s", SEEN "node1-000001"), 0);

	/* In a replay, too: the line goes aside and those behind it get through. */
	testenv_redis_kill();
	ck_assert(testenv_run_until(is_down, rds, T_WAIT_MS));
	write_range(w, 2, 3);
	redis_start(0);
	r = probe("SET %s not-a-stream", STREAM);
	freeReplyObject(r);
	ck_assert(testenv_run_until(spool_empty, w, RECONNECT_MS));
	ck_assert_int_eq(file_lines(t_rejected, buf, sizeof buf), 4);
	ck_assert_int_eq(file_size(t_spool), 0);
	log = testenv_log_capture_stop();
	snprintf(needle, sizeof needle, "error: CDR node1-000001 rejected by redis unix:%s "
		 "(WRONGTYPE", testenv_redis_sock());
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
	ck_assert_int_eq(testenv_count_lines(log, "moved to "), 4);
	/* Its line is logged. */
	ck_assert_int_eq(testenv_count_lines(log, "cdr4\tnode1-000003\t"), 1);

	/* Fixed: new records are stored again. */
	r = probe("DEL %s", STREAM);
	freeReplyObject(r);
	write_range(w, 5, 1);
	ck_assert(testenv_run_until(stream_has, (void *)1, T_WAIT_MS));
	assert_stream(5, 1);
}
END_TEST

/* Redis refuses writes for a while (out of memory): the records wait in
 * the spool, in order, and nothing goes to the rejected file. */
START_TEST(test_refused_for_now)
{
	char needle[512];
	const char *log;
	rds_t *rds;
	cdr_writer_t *w;
	redisReply *r;

	w = start_all(0, &rds);
	r = probe("CONFIG SET maxmemory %s", "1");
	freeReplyObject(r);

	testenv_log_capture_start();
	write_range(w, 1, 1);
	ck_assert(testenv_run_until(spool_holds_one, w, T_WAIT_MS));
	write_range(w, 2, 2);
	testenv_run_for(300);
	ck_assert_uint_eq(cdr_spooled(w), 3);
	ck_assert_int_eq(xlen(), 0);

	r = probe("CONFIG SET maxmemory %s", "0");
	freeReplyObject(r);
	write_range(w, 4, 1);   /* the next record is the next attempt */
	ck_assert(testenv_run_until(spool_empty, w, T_WAIT_MS));
	assert_stream(1, 4);
	ck_assert_int_eq(file_size(t_rejected), -1);
	log = testenv_log_capture_stop();
	snprintf(needle, sizeof needle, "warn: redis unix:%s refuses CDRs for now (OOM ",
		 testenv_redis_sock());
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
	ck_assert_int_eq(testenv_count_lines(log, "error:"), 0);
}
END_TEST

/* Destroyed with a direct write unanswered: the record is kept in the
 * spool for the next writer, whose replay finds it stored already. */
START_TEST(test_destroy_in_flight)
{
	char buf[8192];
	rds_t *rds;
	cdr_writer_t *w;

	w = start_all(0, &rds);
	write_range(w, 1, 1);
	stop_writer();   /* the reply is still to come */
	ck_assert_int_eq(file_lines(t_spool, buf, sizeof buf), 1);
	ck_assert(testenv_run_until(stream_has, (void *)1, T_WAIT_MS));   /* its reply comes to nobody */
	testenv_run_for(100);

	w = start_writer(rds);
	ck_assert(testenv_run_until(spool_empty, w, T_WAIT_MS));
	testenv_run_for(100);
	assert_stream(1, 1);
	ck_assert_int_eq(file_size(t_spool), 0);
}
END_TEST

/* ------------------------------------------------------------ durability */

/* What a record's durability callback saw when it ran. */
struct durable {
	int calls;                /* must end at exactly 1 */
	int err;
	long long xlen;           /* records in the stream then (-1: not looked) */
	int in_spool;             /* its line was in the spool file then */
	long long at_ms;
	char id[96];              /* "<id>\t", as its spool line starts */
};

static struct durable t_durable[64];

static int durable_count(int n)
{
	int c = 0;

	for (int i = 0; i < n; i++)
		c += t_durable[i].calls;
	return c;
}

static int durable_all(void *arg)
{
	return durable_count((int)(intptr_t)arg) >= (int)(intptr_t)arg;
}

/* Looks at Redis and the spool at the moment the writer says "durable". */
static void on_durable(void *arg, int err)
{
	static char buf[1 << 16];
	struct durable *d = arg;

	d->calls++;
	d->err = err;
	d->at_ms = testenv_now_ms();
	d->xlen = t_rds != NULL && rds_connected(t_rds) ? xlen() : -1;
	d->in_spool = file_lines(t_spool, buf, sizeof buf) > 0 && strstr(buf, d->id) != NULL;
}

static void write_notify_range(cdr_writer_t *w, int first, int count)
{
	struct cdr c;

	for (int i = 0; i < count; i++) {
		memset(&t_durable[i], 0, sizeof t_durable[i]);
		make_cdr(&c, first + i);
		snprintf(t_durable[i].id, sizeof t_durable[i].id, "%s\t", c.id);
		ck_assert_int_eq(cdr_write_notify(w, &c, on_durable, &t_durable[i]), 0);
		/* Never durable inside the call: neither Redis nor the disk waited on. */
		ck_assert_int_eq(t_durable[i].calls, 0);
	}
}

/* Redis up: a record is durable once Redis has it, and only then; the
 * disk is not waited for. */
START_TEST(test_durable_when_confirmed)
{
	rds_t *rds;
	cdr_writer_t *w;

	w = start_all(0, &rds);
	write_notify_range(w, 1, 3);
	ck_assert(testenv_run_until(durable_all, (void *)3, T_WAIT_MS));
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(t_durable[i].err, 0);
		ck_assert_int_ge(t_durable[i].xlen, i + 1);   /* it was in the stream already */
	}
	testenv_run_for(200);
	ck_assert_int_eq(durable_count(3), 3);   /* exactly once */
	ck_assert_int_eq(file_size(t_spool), 0);
	assert_stream(1, 3);
}
END_TEST

/*
 * Redis hung (a real redis-server, SIGSTOPped): records are not durable
 * while their XADDs wait; at redis_timeout the connection is dropped and
 * they are synced to the spool, in one batch, and only then declared
 * durable, each once, with its line on disk.  When Redis is back they are
 * stored, once each.
 */
START_TEST(test_durable_when_redis_hangs)
{
	rds_t *rds;
	cdr_writer_t *w;
	long long t0;

	redis_start(0);
	rds = start_rds_timeout(testenv_redis_sock(), 300);
	ck_assert(testenv_run_until(is_up, rds, CONNECT_MS));
	w = start_writer(rds);
	log_set_level(LOG_ERROR);

	testenv_redis_signal(SIGSTOP);
	t0 = testenv_now_ms();
	write_notify_range(w, 1, 5);
	testenv_run_for(150);
	ck_assert_int_eq(durable_count(5), 0);   /* neither confirmed nor synced */
	ck_assert(testenv_run_until(durable_all, (void *)5, 2000));
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(t_durable[i].err, 0);
		ck_assert_int_eq(t_durable[i].in_spool, 1);
		ck_assert_int_ge(t_durable[i].at_ms - t0, 300);
		ck_assert_int_le(t_durable[i].at_ms - t0, 1000);
	}
	ck_assert(!rds_connected(rds));

	testenv_redis_signal(SIGCONT);
	ck_assert(testenv_run_until(spool_empty, w, RECONNECT_MS));
	testenv_run_for(200);
	assert_stream(1, 5);
	ck_assert_int_eq(durable_count(5), 5);
}
END_TEST

/* No Redis at all: durable at the next batched sync, the whole batch at
 * once, never inside cdr_write_notify. */
START_TEST(test_durable_spool_only)
{
	cdr_writer_t *w;

	log_set_level(LOG_ERROR);
	ck_assert_int_eq(cdr_writer_create(testenv_root(), NULL, PREFIX, "cdr", t_spool, &t_writer),
			 0);
	w = t_writer;
	write_notify_range(w, 1, 40);
	ck_assert(testenv_run_until(durable_all, (void *)40, 1000));
	ck_assert_int_eq(durable_count(40), 40);
	for (int i = 0; i < 40; i++)
		ck_assert_int_eq(t_durable[i].in_spool, 1);
	ck_assert_uint_eq(cdr_spooled(w), 40);
}
END_TEST

/* cdr_writer_flush, for a stop: what waits is declared durable before it
 * returns, and each later write before cdr_write_notify returns. */
START_TEST(test_flush)
{
	rds_t *rds;
	cdr_writer_t *w;
	struct cdr c;

	redis_start(0);
	rds = start_rds(testenv_redis_sock());
	ck_assert(testenv_run_until(is_up, rds, CONNECT_MS));
	w = start_writer(rds);
	log_set_level(LOG_ERROR);
	testenv_redis_signal(SIGSTOP);
	write_notify_range(w, 1, 2);
	rds_close(rds);
	cdr_writer_flush(w);
	ck_assert_int_eq(durable_count(2), 2);
	ck_assert_int_eq(t_durable[0].in_spool, 1);
	memset(&t_durable[2], 0, sizeof t_durable[2]);
	make_cdr(&c, 3);
	snprintf(t_durable[2].id, sizeof t_durable[2].id, "%s\t", c.id);
	ck_assert_int_eq(cdr_write_notify(w, &c, on_durable, &t_durable[2]), 0);
	ck_assert_int_eq(t_durable[2].calls, 1);
	ck_assert_int_eq(t_durable[2].in_spool, 1);
	stop_writer();
	ck_assert_int_eq(durable_count(3), 3);
	testenv_redis_signal(SIGCONT);
}
END_TEST

/* ------------------------------------------------------------ on the replicas (WAIT) */

/* The replica acknowledges a write made now: in sync, and acking. */
static int replica_online(void *arg)
{
	redisContext *c = testenv_redis_connect(NULL);
	redisReply *r;
	int up;

	(void)arg;
	ck_assert_ptr_nonnull(c);
	freeReplyObject(redisCommand(c, "SET test:probe 1"));
	r = redisCommand(c, "WAIT 1 100");
	up = r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	if (r != NULL)
		freeReplyObject(r);
	redisFree(c);
	return up;
}

/*
 * This test's redis-server on its socket and a TCP port, and a second
 * redis-server replicating it (--replicaof, loopback TCP), in sync.
 */
static void replica_start(void)
{
	char port[16], primary[16], dir[200], logfile[220];
	int tcp = testenv_free_port();
	/* No 5 s wait before the first sync (repl-diskless-sync-delay). */
	const char *const extra[] = { "--bind", "127.0.0.1", "--repl-diskless-sync-delay", "0",
				      NULL };

	testenv_redis_start(tcp, extra);
	t_replica_port = testenv_free_port();
	ck_assert_int_ne(t_replica_port, tcp);
	snprintf(port, sizeof port, "%d", t_replica_port);
	snprintf(primary, sizeof primary, "%d", tcp);
	snprintf(dir, sizeof dir, "%s/replica", testenv_dir());
	snprintf(logfile, sizeof logfile, "%s/replica.log", testenv_dir());
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	t_replica = testenv_fork(-1);
	if (t_replica == 0) {
		execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
		       "--replicaof", "127.0.0.1", primary, "--save", "", "--appendonly", "no",
		       "--dir", dir, "--logfile", logfile, (char *)NULL);
		_exit(127);
	}
	ck_assert(testenv_run_until(replica_online, NULL, TESTENV_REDIS_START_MS));
}

/* XLEN of the stream on the replica. */
static long long replica_xlen(void)
{
	redisContext *c = redisConnect("127.0.0.1", t_replica_port);
	redisReply *r;
	long long n;

	ck_assert(c != NULL && c->err == 0);
	r = redisCommand(c, "XLEN %s", STREAM);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
	n = r->integer;
	freeReplyObject(r);
	redisFree(c);
	return n;
}

static uint64_t counter(enum shm_counter ctr)
{
	struct shm_worker_info info;

	ck_assert_int_eq(shm_worker_read(t_shm, 3, &info), 0);
	return info.counters[ctr];
}

/* Primary, replica, rds on the primary, a writer that waits for `replicas`
 * (WAIT timeout 200 ms) and keeps its counters as worker 3. */
static cdr_writer_t *start_replicated(int replicas, rds_t **rds)
{
	cdr_writer_t *w;

	replica_start();
	*rds = start_rds(testenv_redis_sock());
	ck_assert(testenv_run_until(is_up, *rds, CONNECT_MS));
	w = start_writer(*rds);
	ck_assert_int_eq(cdr_writer_set_wait(w, replicas, 200), 0);
	ck_assert_int_eq(shm_create(16, 4, &t_shm), 0);
	cdr_writer_set_counters(w, t_shm, 3);
	return w;
}

/*
 * redis_wait_replicas 1: with the replica SIGSTOPped, CDRs the primary
 * stored are not acknowledged: they stay in the spool, synced (the
 * callers are told durable from the disk), counted once each however many
 * WAITs fall short, warned about once; after SIGCONT they are confirmed
 * and leave the spool, stored once, on the replica too.
 */
START_TEST(test_wait_replica_stopped)
{
	char needle[400];
	const char *log;
	rds_t *rds;
	cdr_writer_t *w;
	uint64_t u0;

	w = start_replicated(1, &rds);
	write_range(w, 1, 3);
	ck_assert(testenv_run_until(spool_empty, w, T_WAIT_MS));
	ck_assert(testenv_run_until(spool_file_empty, NULL, T_WAIT_MS));
	u0 = counter(SHM_CTR_CDR_UNREPLICATED);   /* 0 unless the machine is very slow */

	kill(t_replica, SIGSTOP);
	testenv_log_capture_start();
	write_notify_range(w, 4, 5);
	ck_assert(testenv_run_until(durable_all, (void *)5, 2000));
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(t_durable[i].in_spool, 1);
	testenv_run_for(1500);   /* several WAITs, each short */
	ck_assert_int_eq(xlen(), 8);   /* the primary has them ... */
	ck_assert_uint_eq(cdr_spooled(w), 5);   /* ... but they are not acknowledged */
	ck_assert_uint_eq(counter(SHM_CTR_CDR_SPOOLED), 5);
	ck_assert_uint_eq(counter(SHM_CTR_CDR_UNREPLICATED) - u0, 5);
	log = testenv_log_capture_stop();
	snprintf(needle, sizeof needle, "warn: redis unix:%s: CDRs not yet on a replica "
		 "(WAIT 1 -> 0 within 200 ms): keeping them in %s", testenv_redis_sock(), t_spool);
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
	ck_assert_int_eq(testenv_count_lines(log, "CDRs not yet on a replica"), 1);

	testenv_log_capture_start();
	kill(t_replica, SIGCONT);
	ck_assert(testenv_run_until(spool_empty, w, T_WAIT_MS));
	ck_assert(testenv_run_until(spool_file_empty, NULL, T_WAIT_MS));
	log = testenv_log_capture_stop();
	ck_assert_int_eq(testenv_count_lines(log, "CDRs reach a replica again"), 1);
	ck_assert_int_eq(testenv_count_lines(log, "info: replayed 5 CDRs from"), 1);
	ck_assert_uint_eq(counter(SHM_CTR_CDR_SPOOLED), 0);
	ck_assert_uint_eq(counter(SHM_CTR_CDR_UNREPLICATED) - u0, 5);
	assert_stream(1, 8);
	ck_assert_int_eq(replica_xlen(), 8);
	ck_assert_int_eq(durable_count(5), 5);   /* each told once */
}
END_TEST

static int client_killed(void *arg)
{
	redisReply *r = probe("CLIENT KILL TYPE normal");

	(void)arg;
	freeReplyObject(r);
	return 1;
}

/*
 * A record resent on a new connection answers dup; its WAIT must still
 * prove the first copy reached a replica (the dup refreshes the seen key,
 * a write WAIT counts).  Without that write, WAIT on the new connection
 * would count a stopped replica at once and the records would leave the
 * spool unreplicated.
 */
START_TEST(test_wait_after_reconnect)
{
	rds_t *rds;
	cdr_writer_t *w;

	w = start_replicated(1, &rds);
	log_set_level(LOG_ERROR);
	kill(t_replica, SIGSTOP);
	write_range(w, 1, 3);
	testenv_run_for(400);
	ck_assert_int_eq(xlen(), 3);
	ck_assert_uint_eq(cdr_spooled(w), 3);

	client_killed(NULL);   /* rds drops; it reconnects and the lines go again */
	ck_assert(testenv_run_until(is_down, rds, 2000));
	ck_assert(testenv_run_until(is_up, rds, RECONNECT_MS));
	testenv_run_for(1200);
	ck_assert_uint_eq(cdr_spooled(w), 3);   /* dup on the new connection: still waiting */
	ck_assert_int_eq(xlen(), 3);

	kill(t_replica, SIGCONT);
	ck_assert(testenv_run_until(spool_empty, w, T_WAIT_MS));
	assert_stream(1, 3);
	ck_assert_int_eq(replica_xlen(), 3);
	ck_assert_uint_ge(counter(SHM_CTR_CDR_UNREPLICATED), 3);
}
END_TEST

/* redis_wait_replicas 0: Redis's answer is enough, as before, even with
 * the replica stopped; no WAIT, nothing counted. */
START_TEST(test_wait_off)
{
	rds_t *rds;
	cdr_writer_t *w;

	w = start_replicated(0, &rds);
	kill(t_replica, SIGSTOP);
	write_notify_range(w, 1, 4);
	ck_assert(testenv_run_until(durable_all, (void *)4, 1000));
	for (int i = 0; i < 4; i++)
		ck_assert_int_ge(t_durable[i].xlen, i + 1);   /* confirmed by Redis, not synced */
	ck_assert(testenv_run_until(spool_empty, w, 1000));
	ck_assert_uint_eq(counter(SHM_CTR_CDR_UNREPLICATED), 0);
	ck_assert_uint_eq(counter(SHM_CTR_CDR_SPOOLED), 0);
	assert_stream(1, 4);
	kill(t_replica, SIGCONT);
	ck_assert_int_eq(cdr_writer_set_wait(w, -1, 100), -EINVAL);
	ck_assert_int_eq(cdr_writer_set_wait(w, 1, 0), -EINVAL);
}
END_TEST

START_TEST(test_create_errors)
{
	char path[256];
	char needle[300];
	const char *log;
	cdr_writer_t *w = NULL;
	cdr_writer_t *w2 = NULL;
	struct cdr c;

	ck_assert_int_eq(cdr_writer_create(testenv_root(), NULL, PREFIX, "", t_spool, &w), -EINVAL);
	ck_assert_int_eq(cdr_writer_create(testenv_root(), NULL, PREFIX, "cdr", "", &w), -EINVAL);

	/* Only one level is created. */
	testenv_log_capture_start();
	snprintf(path, sizeof path, "%s/no/such/cdr.spool", testenv_dir());
	ck_assert_int_eq(cdr_writer_create(testenv_root(), NULL, PREFIX, "cdr", path, &w), -ENOENT);
	ck_assert_ptr_null(w);
	log = testenv_log_capture_stop();
	snprintf(needle, sizeof needle, "error: cannot create the CDR spool directory %s/no/such:",
		 testenv_dir());
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);

	/* The path is a directory. */
	testenv_log_capture_start();
	snprintf(path, sizeof path, "%s", testenv_dir());
	ck_assert_int_eq(cdr_writer_create(testenv_root(), NULL, PREFIX, "cdr", path, &w), -EISDIR);
	log = testenv_log_capture_stop();
	snprintf(needle, sizeof needle, "error: cannot open the CDR spool %s:", testenv_dir());
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);

	/* One writer per spool. */
	log_set_level(LOG_ERROR);
	ck_assert_int_eq(cdr_writer_create(testenv_root(), NULL, PREFIX, "cdr", t_spool, &t_writer), 0);
	testenv_log_capture_start();
	ck_assert_int_eq(cdr_writer_create(testenv_root(), NULL, PREFIX, "cdr", t_spool, &w2), -EBUSY);
	log = testenv_log_capture_stop();
	ck_assert_int_eq(testenv_count_lines(log, "in use by another writer"), 1);

	/* Spool only: every record on disk, one warning. */
	log_set_level(LOG_INFO);
	testenv_log_capture_start();
	write_range(t_writer, 1, 3);
	make_cdr(&c, 4);
	c.hangup_by = (enum cdr_party)7;
	ck_assert_int_eq(cdr_write(t_writer, &c), -EINVAL);
	log = testenv_log_capture_stop();
	ck_assert_uint_eq(cdr_spooled(t_writer), 3);
	snprintf(needle, sizeof needle, "warn: no redis: spooling CDRs to %s", t_spool);
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
	ck_assert_int_eq(testenv_count_lines(log, "error: CDR node1-000004 LOST: malformed"), 1);
	stop_writer();

	/* Even the spool refuses (disk full): an error, and the record in the log. */
	if (access("/dev/full", W_OK) == 0) {
		testenv_log_capture_start();
		ck_assert_int_eq(cdr_writer_create(testenv_root(), NULL, PREFIX, "cdr", "/dev/full", &t_writer), 0);
		make_cdr(&c, 5);
		ck_assert_int_eq(cdr_write(t_writer, &c), -ENOSPC);
		ck_assert_uint_eq(cdr_spooled(t_writer), 0);
		log = testenv_log_capture_stop();
		ck_assert_int_eq(testenv_count_lines(log, "error: CDR node1-000005 LOST: cannot "
						     "append it to /dev/full (No space left on "
						     "device) [1/1]: cdr4\tnode1-000005\t"), 1);
	}
}
END_TEST

static Suite *cdr_suite(void)
{
	Suite *s = suite_create("cdr");
	TCase *pure = tcase_create("format");
	TCase *tc = tcase_create("writer");

	tcase_add_test(pure, test_disposition);
	tcase_add_test(pure, test_encode);
	tcase_add_test(pure, test_line_round_trip);
	tcase_add_test(pure, test_record);
	suite_add_tcase(s, pure);

	tcase_add_unchecked_fixture(tc, testenv_base_setup, testenv_base_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_write_up);
	tcase_add_test(tc, test_duplicate);
	tcase_add_test(tc, test_record_kept);
	tcase_add_test(tc, test_spool_and_replay);
	tcase_add_test(tc, test_write_during_replay);
	tcase_add_test(tc, test_drop_mid_flight);
	tcase_add_test(tc, test_reply_lost);
	tcase_add_test(tc, test_leftover_spool);
	tcase_add_test(tc, test_leftover_duplicate);
	tcase_add_test(tc, test_rejected);
	tcase_add_test(tc, test_refused_for_now);
	tcase_add_test(tc, test_destroy_in_flight);
	tcase_add_test(tc, test_create_errors);
	tcase_add_test(tc, test_durable_when_confirmed);
	tcase_add_test(tc, test_durable_when_redis_hangs);
	tcase_add_test(tc, test_durable_spool_only);
	tcase_add_test(tc, test_flush);
	tcase_add_test(tc, test_wait_replica_stopped);
	tcase_add_test(tc, test_wait_after_reconnect);
	tcase_add_test(tc, test_wait_off);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testenv_main("check_cdr", cdr_suite);
}
