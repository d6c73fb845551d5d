/*
 * check_ctl — unit tests of the control protocol (b2bua/ctl.c).
 *
 * What must hold: every message that was built with ctl_init() decodes to
 * itself; anything else — short, long, another version, an unknown type, a
 * payload length that lies, a string without its NUL, a peer that does not
 * exist, random bytes — is refused with an error and never read past its
 * end (the suite also runs under ASan with --enable-sanitizers).  Over a
 * real SOCK_SEQPACKET pair with a forked peer, ctl_request() returns the
 * answer with its own sequence number, hands other messages to its
 * callback, gives up at its deadline and notices a peer that went away.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "b2bua/ctl.h"
#include "b2bua/log.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t wire_len(const struct ctl_msg *m)
{
	return sizeof m->hdr + m->hdr.len;
}

/* ------------------------------------------------------------ decoding */

START_TEST(test_round_trip)
{
	static const unsigned types[] = { CTL_REPLY, CTL_KILL_CALL, CTL_DRAIN, CTL_RELOAD,
					  CTL_PING };

	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		struct ctl_msg m, out;

		ctl_init(&m, types[i], 3, CTL_MGMT, 77 + (uint32_t)i);
		switch (types[i]) {
		case CTL_KILL_CALL:
			strcpy(m.u.kill_call.id, "edge1-w3-19af3c2b1d4-17");
			break;
		case CTL_RELOAD:
			m.u.reload.generation = 3;
			break;
		case CTL_REPLY:
			m.u.reply.status = -ENOENT;
			strcpy(m.u.reply.text, "no such call");
			break;
		}
		ck_assert_int_eq((int)m.hdr.len, ctl_payload_size(types[i]));
		ck_assert_int_eq(ctl_decode(&m, wire_len(&m), &out), 0);
		ck_assert_int_eq(memcmp(&m, &out, wire_len(&m)), 0);
		ck_assert_str_ne(ctl_type_name(types[i]), "unknown");
	}
}
END_TEST

/* The "answered" column of ctl.h: what the master answers itself when its addressee is gone. */
START_TEST(test_is_request)
{
	ck_assert(ctl_is_request(CTL_KILL_CALL));
	ck_assert(ctl_is_request(CTL_RELOAD));
	ck_assert(ctl_is_request(CTL_PING));
	ck_assert(!ctl_is_request(CTL_REPLY));
	ck_assert(!ctl_is_request(CTL_DRAIN));
}
END_TEST

START_TEST(test_reply_to)
{
	struct ctl_msg req, ans, out;

	ctl_init(&req, CTL_KILL_CALL, CTL_MGMT, 2, 4242);
	ctl_reply_to(&req, -ENOENT, "no such call", &ans);
	ck_assert_uint_eq(ans.hdr.type, CTL_REPLY);
	ck_assert_uint_eq(ans.hdr.seq, 4242);
	ck_assert_uint_eq(ans.hdr.from, 2);
	ck_assert_uint_eq(ans.hdr.to, CTL_MGMT);
	ck_assert_int_eq(ans.u.reply.status, -ENOENT);
	ck_assert_int_eq(ctl_decode(&ans, wire_len(&ans), &out), 0);
	ck_assert_str_eq(out.u.reply.text, "no such call");

	/* A text longer than the field is cut, still terminated. */
	char longer[CTL_TEXT_MAX * 2];
	memset(longer, 'x', sizeof longer - 1);
	longer[sizeof longer - 1] = '\0';
	ctl_reply_to(&req, 0, longer, &ans);
	ck_assert_uint_eq(strlen(ans.u.reply.text), CTL_TEXT_MAX - 1);
	ck_assert_int_eq(ctl_decode(&ans, wire_len(&ans), &out), 0);
}
END_TEST

START_TEST(test_truncated)
{
	struct ctl_msg m, out;

	ctl_init(&m, CTL_KILL_CALL, CTL_MGMT, 0, 1);
	strcpy(m.u.kill_call.id, "n-w0-1-1");
	ck_assert_int_eq(ctl_decode(&m, 0, &out), -EBADMSG);
	ck_assert_int_eq(ctl_decode(&m, sizeof m.hdr - 1, &out), -EBADMSG);
	ck_assert_int_eq(ctl_decode(&m, sizeof m.hdr, &out), -EBADMSG);
	for (size_t len = sizeof m.hdr + 1; len < wire_len(&m); len += 7)
		ck_assert_int_eq(ctl_decode(&m, len, &out), -EBADMSG);
	ck_assert_int_eq(ctl_decode(&m, wire_len(&m) - 1, &out), -EBADMSG);
	/* Longer than its type: refused too. */
	ck_assert_int_eq(ctl_decode(&m, wire_len(&m) + 1, &out), -EBADMSG);
}
END_TEST

START_TEST(test_header_lies)
{
	struct ctl_msg m, bad, out;

	ctl_init(&m, CTL_RELOAD, CTL_MASTER, 1, 9);
	m.u.reload.generation = 2;

	bad = m;
	bad.hdr.version = CTL_VERSION + 1;
	ck_assert_int_eq(ctl_decode(&bad, wire_len(&m), &out), -EPROTO);
	bad = m;
	bad.hdr.type = 0;
	ck_assert_int_eq(ctl_decode(&bad, wire_len(&m), &out), -EPROTO);
	bad = m;
	bad.hdr.type = CTL_TYPE__END;
	ck_assert_int_eq(ctl_decode(&bad, wire_len(&m), &out), -EPROTO);
	bad = m;
	bad.hdr.len = m.hdr.len + 4;          /* says more than it is */
	ck_assert_int_eq(ctl_decode(&bad, wire_len(&m), &out), -EBADMSG);
	bad = m;
	bad.hdr.len = 0xffffffffu;            /* an absurd length must not be trusted */
	ck_assert_int_eq(ctl_decode(&bad, wire_len(&m), &out), -EBADMSG);
	bad = m;
	bad.hdr.to = CTL_WORKERS_MAX;         /* no such worker index */
	ck_assert_int_eq(ctl_decode(&bad, wire_len(&m), &out), -EINVAL);
	bad = m;
	bad.hdr.from = 0xfff0;
	ck_assert_int_eq(ctl_decode(&bad, wire_len(&m), &out), -EINVAL);
}
END_TEST

START_TEST(test_unterminated_strings)
{
	struct ctl_msg m, out;

	ctl_init(&m, CTL_KILL_CALL, CTL_MGMT, 0, 1);
	memset(m.u.kill_call.id, 'a', sizeof m.u.kill_call.id);
	ck_assert_int_eq(ctl_decode(&m, wire_len(&m), &out), -EBADMSG);

	ctl_init(&m, CTL_REPLY, 0, CTL_MGMT, 1);
	memset(m.u.reply.text, 'r', sizeof m.u.reply.text);
	ck_assert_int_eq(ctl_decode(&m, wire_len(&m), &out), -EBADMSG);
}
END_TEST

/* Random bytes, and valid headers over random payloads: refused or sound, never a crash. */
START_TEST(test_random_input)
{
	unsigned char *buf = malloc(CTL_MSG_MAX + 16);
	unsigned seed = 12345;
	unsigned accepted = 0;

	ck_assert_ptr_nonnull(buf);
	for (int round = 0; round < 200000; round++) {
		size_t len = (size_t)rand_r(&seed) % (CTL_MSG_MAX + 16);
		struct ctl_msg out;

		/* The whole buffer: a header below may claim more than `len`. */
		for (size_t i = 0; i < CTL_MSG_MAX + 16; i++)
			buf[i] = (unsigned char)rand_r(&seed);
		if (round % 2 && len >= sizeof(struct ctl_hdr)) {
			struct ctl_hdr h = {
				.version = CTL_VERSION,
				.type = (uint16_t)(1 + rand_r(&seed) % (CTL_TYPE__END - 1)),
				.from = (uint16_t)(rand_r(&seed) % 4),
				.to = CTL_MGMT,
			};
			h.len = (uint32_t)ctl_payload_size(h.type);
			memcpy(buf, &h, sizeof h);
			if (round % 4 == 1)
				len = sizeof h + h.len;
		}
		if (ctl_decode(buf, len, &out) == 0) {
			accepted++;
			ck_assert_int_eq((int)out.hdr.len, ctl_payload_size(out.hdr.type));
			ck_assert_uint_eq(len, sizeof out.hdr + out.hdr.len);
		}
	}
	/* The valid-header rounds of full length with a NUL somewhere do pass. */
	ck_assert_uint_gt(accepted, 0);
	free(buf);
}
END_TEST

/* ------------------------------------------------------------ over a socket */

/* The peer of the socket tests: what it does with the request it reads. */
enum peer_mode { PEER_ANSWER, PEER_SILENT, PEER_HANGUP };

static pid_t start_peer(int fd, enum peer_mode mode)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct ctl_msg req, m;
		unsigned char junk[3] = { 1, 2, 3 };

		/* Blocking read of the request. */
		ssize_t n = recv(fd, &req, sizeof req, 0);
		if (n <= 0)
			_exit(1);
		if (mode == PEER_HANGUP)
			_exit(0);
		if (mode == PEER_SILENT) {
			pause();
			_exit(0);
		}
		/* Garbage, an unrelated message, a stale answer, then the answer. */
		send(fd, junk, sizeof junk, 0);
		ctl_init(&m, CTL_DRAIN, 1, CTL_MGMT, 0);
		ctl_send(fd, &m);
		ctl_reply_to(&req, -EIO, "stale", &m);
		m.hdr.seq = req.hdr.seq - 1;
		ctl_send(fd, &m);
		ctl_reply_to(&req, 0, "done", &m);
		ctl_send(fd, &m);
		_exit(0);
	}
	return pid;
}

struct others {
	unsigned n;
	struct ctl_msg last;
};

static void count_other(void *arg, const struct ctl_msg *m)
{
	struct others *o = arg;

	o->n++;
	o->last = *m;
}

static void socket_pair(int sv[2])
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
}

START_TEST(test_request_answered)
{
	struct ctl_msg req, ans;
	struct others o = { 0 };
	int sv[2];
	pid_t pid;

	socket_pair(sv);
	pid = start_peer(sv[1], PEER_ANSWER);
	ctl_init(&req, CTL_KILL_CALL, CTL_MGMT, 1, 10);
	strcpy(req.u.kill_call.id, "n-w1-1-5");
	ck_assert_int_eq(ctl_request(sv[0], &req, &ans, 5000, count_other, &o), 0);
	ck_assert_uint_eq(ans.hdr.seq, 10);
	ck_assert_int_eq(ans.u.reply.status, 0);
	ck_assert_str_eq(ans.u.reply.text, "done");
	/* The unrelated message and the stale answer went to the callback; the garbage nowhere. */
	ck_assert_uint_eq(o.n, 2);
	ck_assert_uint_eq(o.last.hdr.type, CTL_REPLY);
	ck_assert_uint_eq(o.last.hdr.seq, 9);
	waitpid(pid, NULL, 0);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(test_request_timeout)
{
	struct ctl_msg req, ans;
	int64_t t0, took;
	int sv[2];
	pid_t pid;

	socket_pair(sv);
	pid = start_peer(sv[1], PEER_SILENT);
	ctl_init(&req, CTL_RELOAD, CTL_MASTER, 0, 1);
	t0 = now_ms();
	ck_assert_int_eq(ctl_request(sv[0], &req, &ans, 300, NULL, NULL), -ETIMEDOUT);
	took = now_ms() - t0;
	ck_assert_msg(took >= 290 && took < 3000, "gave up after %lld ms", (long long)took);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(test_request_peer_gone)
{
	struct ctl_msg req, ans;
	int sv[2];
	pid_t pid;

	socket_pair(sv);
	pid = start_peer(sv[1], PEER_HANGUP);
	close(sv[1]);   /* the peer's copy is the last one */
	ctl_init(&req, CTL_RELOAD, CTL_MASTER, 0, 1);
	ck_assert_int_eq(ctl_request(sv[0], &req, &ans, 5000, NULL, NULL), -ECONNRESET);
	waitpid(pid, NULL, 0);
	close(sv[0]);
}
END_TEST

START_TEST(test_recv_refuses_oversize)
{
	unsigned char big[CTL_MSG_MAX + 64];
	struct ctl_msg m, out;
	int sv[2];

	socket_pair(sv);
	ctl_init(&m, CTL_DRAIN, CTL_MASTER, CTL_MGMT, 1);
	memset(big, 0, sizeof big);
	memcpy(big, &m, sizeof m.hdr);
	ck_assert_int_eq(send(sv[1], big, sizeof big, 0), (ssize_t)sizeof big);
	ck_assert_int_eq(ctl_recv(sv[0], &out), -EBADMSG);
	ck_assert_int_eq(ctl_recv(sv[0], &out), -EAGAIN);   /* consumed: the next read is clean */
	ck_assert_int_eq(ctl_send(sv[1], &m), 0);
	ck_assert_int_eq(ctl_recv(sv[0], &out), 0);
	ck_assert_uint_eq(out.hdr.type, CTL_DRAIN);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

/* ctl_handle_f for test_read_all: a CTL_RELOAD is answered on *fd, refused
 * for generation 0 (as a child refuses a generation the board does not hold). */
static void take_reload(void *arg, const struct ctl_msg *m)
{
	int *fd = arg;
	int ok = m->u.reload.generation != 0;

	ck_assert_uint_eq(m->hdr.type, CTL_RELOAD);
	ctl_answer(*fd, m, ok ? 0 : -ESTALE, ok ? NULL : "no such generation");
}

/* ctl_read_all skips a bad message and reads the rest; ctl_answer answers
 * each request with its own sequence number. */
START_TEST(test_read_all)
{
	unsigned char junk[5] = { 9, 9, 9, 9, 9 };
	struct ctl_msg m, ans;
	int sv[2];

	socket_pair(sv);
	ck_assert_int_eq(send(sv[1], junk, sizeof junk, 0), (ssize_t)sizeof junk);
	ctl_init(&m, CTL_RELOAD, CTL_MASTER, 0, 7);
	m.u.reload.generation = 4;
	ck_assert_int_eq(ctl_send(sv[1], &m), 0);
	ctl_init(&m, CTL_RELOAD, CTL_MASTER, 0, 8);
	m.u.reload.generation = 0;
	ck_assert_int_eq(ctl_send(sv[1], &m), 0);

	log_set_level(LOG_ERROR);
	ck_assert_int_eq(ctl_read_all(sv[0], "the test", take_reload, &sv[0]), 0);

	ck_assert_int_eq(ctl_recv(sv[1], &ans), 0);
	ck_assert_uint_eq(ans.hdr.type, CTL_REPLY);
	ck_assert_uint_eq(ans.hdr.seq, 7);
	ck_assert_int_eq(ans.u.reply.status, 0);
	ck_assert_int_eq(ctl_recv(sv[1], &ans), 0);
	ck_assert_uint_eq(ans.hdr.seq, 8);
	ck_assert_int_eq(ans.u.reply.status, -ESTALE);
	ck_assert_str_eq(ans.u.reply.text, "no such generation");
	ck_assert_int_eq(ctl_recv(sv[1], &ans), -EAGAIN);

	close(sv[1]);
	ck_assert_int_eq(ctl_read_all(sv[0], "the test", take_reload, &sv[0]), -ECONNRESET);
	close(sv[0]);
}
END_TEST

static Suite *ctl_suite(void)
{
	Suite *s = suite_create("ctl");
	TCase *tc = tcase_create("decode");

	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_reply_to);
	tcase_add_test(tc, test_is_request);
	tcase_add_test(tc, test_truncated);
	tcase_add_test(tc, test_header_lies);
	tcase_add_test(tc, test_unterminated_strings);
	tcase_add_test(tc, test_random_input);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tc = tcase_create("socket");
	tcase_add_test(tc, test_request_answered);
	tcase_add_test(tc, test_request_timeout);
	tcase_add_test(tc, test_request_peer_gone);
	tcase_add_test(tc, test_recv_refuses_oversize);
	tcase_add_test(tc, test_read_all);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ctl_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
