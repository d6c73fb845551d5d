/*
 * check_conn — worker/conn.c on real loopback TCP connections: the limits
 * at accept (per source, in all, read again after a change as a reload
 * does), the framing of what Sofia would read (keepalives, Content-Length
 * and its compact form, a message in pieces), the message and idle
 * deadlines of conn_tick(), the 64 KB limit, and the counters and the open
 * gauge in shm.  The program links conn.c, so its accept() and close()
 * calls go through the interposition exactly as Sofia's do in a worker;
 * what Sofia would read is handed to conn_on_recv() as dgram_libc.c does.
 * A closed connection is seen from the client's side: end of stream.
 */
#include <check.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "worker/conn.h"

static struct config t_cfg;
static shm_t *t_shm;
static int t_lfd;
static int t_port;

static uint64_t ctr(enum shm_counter c)
{
	struct shm_worker_info w;

	ck_assert_int_eq(shm_worker_read(t_shm, 0, &w), 0);
	return w.counters[c];
}

/* A non-blocking listener on 127.0.0.1, like Sofia's. */
static void setup(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof sin;

	memset(&t_cfg, 0, sizeof t_cfg);
	t_cfg.tcp_idle_timeout = 100;
	t_cfg.tcp_message_timeout = 1;
	t_cfg.tcp_max_connections = 100;
	t_cfg.tcp_max_per_source = 100;
	ck_assert_int_eq(shm_create(16, 1, &t_shm), 0);
	ck_assert_int_eq(conn_configure(&t_cfg, t_shm, 0), 0);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	t_lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ck_assert_int_ge(t_lfd, 0);
	ck_assert_int_eq(bind(t_lfd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(listen(t_lfd, 64), 0);
	ck_assert_int_eq(getsockname(t_lfd, (struct sockaddr *)&sin, &len), 0);
	t_port = ntohs(sin.sin_port);
}

/* A client connected from `src` (a 127.x address), handshake done. */
static int client_from(const char *src)
{
	struct sockaddr_in from = { .sin_family = AF_INET };
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)t_port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	inet_pton(AF_INET, src, &from.sin_addr);
	inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&from, sizeof from), 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&to, sizeof to), 0);
	return fd;
}

/* The server side of the next connection, through conn's accept(). */
static int accept_one(void)
{
	struct pollfd p = { .fd = t_lfd, .events = POLLIN };

	ck_assert_int_eq(poll(&p, 1, 2000), 1);
	return accept(t_lfd, NULL, NULL);
}

/* The client sees the end of the stream within a second. */
static int closed_by_server(int cfd)
{
	struct pollfd p = { .fd = cfd, .events = POLLIN };
	char b[16];

	if (poll(&p, 1, 1000) != 1)
		return 0;
	return recv(cfd, b, sizeof b, MSG_DONTWAIT) <= 0;
}

static void feed(int sfd, const char *text)
{
	conn_on_recv(sfd, text, (ssize_t)strlen(text));
}

static void wait_past_message_timeout(void)
{
	usleep(1100 * 1000);
}

START_TEST(test_limits_at_accept)
{
	int c1 = client_from("127.0.0.1"), c2 = client_from("127.0.0.1");
	int s1 = accept_one(), s2 = accept_one();
	int c3, c4, c5, s4, s5;

	t_cfg.tcp_max_per_source = 2;
	t_cfg.tcp_max_connections = 3;
	ck_assert_int_ge(s1, 0);
	ck_assert_int_ge(s2, 0);
	ck_assert_uint_eq(conn_open_count(), 2);
	ck_assert_uint_eq(ctr(SHM_CTR_CONN_OPEN), 2);
	/* A third from the same source: closed at once, and accept() says EAGAIN. */
	c3 = client_from("127.0.0.1");
	ck_assert_int_eq(accept_one(), -1);
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_uint_eq(ctr(SHM_CTR_CONN_REFUSED), 1);
	ck_assert(closed_by_server(c3));
	/* Another source is welcome, up to tcp_max_connections. */
	c4 = client_from("127.0.0.2");
	s4 = accept_one();
	ck_assert_int_ge(s4, 0);
	c5 = client_from("127.0.0.3");
	ck_assert_int_eq(accept_one(), -1);
	ck_assert_uint_eq(ctr(SHM_CTR_CONN_REFUSED), 2);
	ck_assert(closed_by_server(c5));
	ck_assert_uint_eq(conn_open_count(), 3);
	/* A new limit (a reload) counts from the next connection; a close frees a place. */
	t_cfg.tcp_max_connections = 4;
	close(c5);
	c5 = client_from("127.0.0.3");
	s5 = accept_one();
	ck_assert_int_ge(s5, 0);
	ck_assert_uint_eq(ctr(SHM_CTR_CONN_OPEN), 4);
	close(s1);
	close(s2);
	close(s4);
	close(s5);
	ck_assert_uint_eq(conn_open_count(), 0);
	ck_assert_uint_eq(ctr(SHM_CTR_CONN_OPEN), 0);
	ck_assert_uint_eq(ctr(SHM_CTR_CONN_PARTIAL), 0);
	close(c1);
	close(c2);
	close(c3);
	close(c4);
	close(c5);
}
END_TEST

/* Whole messages, in pieces, with keepalives between them: never timed out. */
START_TEST(test_whole_messages_live)
{
	int c = client_from("127.0.0.1");
	int s = accept_one();

	feed(s, "\r\n\r\nOPTIONS sip:a SIP/2.0\r\nContent-Len");
	feed(s, "gth :  4\r\nVia: x\r\n\r");
	feed(s, "\nbo");
	feed(s, "dy\r\n\r\nMESSAGE sip:a SIP/2.0\r\nl: 3\r\n\r\nabc");
	wait_past_message_timeout();
	conn_tick();
	ck_assert_uint_eq(ctr(SHM_CTR_CONN_MSG_TIMEOUT), 0);
	ck_assert(!closed_by_server(c));
	close(s);
	ck_assert_uint_eq(ctr(SHM_CTR_CONN_PARTIAL), 0);
	close(c);
}
END_TEST

/* A message not complete in tcp_message_timeout, however often a byte comes. */
START_TEST(test_message_timeout)
{
	int c = client_from("127.0.0.1");
	int s = accept_one();

	feed(s, "REGISTER sip:a SIP/2.0\r\nContent-Length: 10\r\n\r\n12345");
	conn_tick();
	ck_assert_uint_eq(ctr(SHM_CTR_CONN_MSG_TIMEOUT), 0);
	usleep(600 * 1000);
	feed(s, "6");   /* a byte now and then does not extend it */
	usleep(500 * 1000);
	conn_tick();
	ck_assert_uint_eq(ctr(SHM_CTR_CONN_MSG_TIMEOUT), 1);
	ck_assert(closed_by_server(c));
	conn_tick();    /* counted once */
	ck_assert_uint_eq(ctr(SHM_CTR_CONN_MSG_TIMEOUT), 1);
	close(s);       /* what Sofia does next: no partial counted, it was ours */
	ck_assert_uint_eq(ctr(SHM_CTR_CONN_PARTIAL), 0);
	ck_assert_uint_eq(ctr(SHM_CTR_CONN_OPEN), 0);
	close(c);
}
END_TEST

/* Silent between messages for tcp_idle_timeout: closed; traffic keeps it. */
START_TEST(test_idle)
{
	int c1 = client_from("127.0.0.1"), c2 = client_from("127.0.0.1");
	int s1 = accept_one(), s2 = accept_one();

	t_cfg.tcp_idle_timeout = 1;
	usleep(600 * 1000);
	feed(s2, "\r\n\r\n");   /* a keepalive is traffic */
	usleep(500 * 1000);
	conn_tick();
	ck_assert_uint_eq(ctr(SHM_CTR_CONN_IDLE), 1);
	ck_assert(closed_by_server(c1));
	ck_assert(!closed_by_server(c2));
	conn_on_send(s2);       /* so is what we send */
	usleep(600 * 1000);
	conn_tick();
	ck_assert_uint_eq(ctr(SHM_CTR_CONN_IDLE), 1);
	close(s1);
	close(s2);
	close(c1);
	close(c2);
}
END_TEST

/* Over 64 KB: a header block without its end, or a Content-Length. */
START_TEST(test_oversized)
{
	int c1 = client_from("127.0.0.1"), c2 = client_from("127.0.0.1");
	int s1 = accept_one(), s2 = accept_one();
	char line[128];

	feed(s1, "OPTIONS sip:a SIP/2.0\r\n");
	snprintf(line, sizeof line, "X-Pad: %0100d\r\n", 0);
	for (int i = 0; i * (int)strlen(line) <= CONN_MAX_MESSAGE; i++)
		feed(s1, line);
	ck_assert_uint_eq(ctr(SHM_CTR_CONN_OVERSIZED), 1);
	ck_assert(closed_by_server(c1));
	feed(s2, "OPTIONS sip:a SIP/2.0\r\nContent-Length: 65536\r\n\r\n");
	ck_assert_uint_eq(ctr(SHM_CTR_CONN_OVERSIZED), 2);
	ck_assert(closed_by_server(c2));
	close(s1);
	close(s2);
	close(c1);
	close(c2);
}
END_TEST

/* Closed (by the peer, then Sofia) in the middle of a message: counted. */
START_TEST(test_partial)
{
	int c = client_from("127.0.0.1");
	int s = accept_one();

	feed(s, "INVITE sip:a SIP/2.0\r\nVia: x\r\n");
	close(c);
	close(s);
	ck_assert_uint_eq(ctr(SHM_CTR_CONN_PARTIAL), 1);
	ck_assert_uint_eq(conn_open_count(), 0);
}
END_TEST

static Suite *conn_suite(void)
{
	Suite *s = suite_create("conn");
	TCase *tc = tcase_create("conn");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_limits_at_accept);
	tcase_add_test(tc, test_whole_messages_live);
	tcase_add_test(tc, test_message_timeout);
	tcase_add_test(tc, test_idle);
	tcase_add_test(tc, test_oversized);
	tcase_add_test(tc, test_partial);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(conn_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
