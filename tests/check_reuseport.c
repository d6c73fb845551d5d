/*
 * check_reuseport — the bind() interposition of worker/reuseport.c touches
 * only the worker's SIP sockets: a UDP socket bound to the registered listen
 * address and public port gets SO_REUSEPORT and the receive buffer, one on
 * the worker's own port gets the buffer only, a TCP socket on the public
 * port (transports "tcp") gets SO_REUSEPORT only, and every other bind
 * (another port, another address, TCP on the own port, a Unix socket, or
 * before registration) is the plain system call.  The test program links reuseport.c, so its bind()
 * calls go through the interposition exactly as Sofia's do in the daemon.
 */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "worker/worker.h"

/* An odd size the kernel would never pick by itself; Linux reports twice it. */
#define RCVBUF 40000

static struct sockaddr_in addr4(const char *ip, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

	ck_assert_int_eq(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
	return sin;
}

/* Three distinct UDP ports free on 127.0.0.1 right now (held together while
 * the kernel picks them, so no two are the same). */
static void free_ports(int *pub, int *own, int *other)
{
	int *out[3] = { pub, own, other };
	int fd[3];

	for (int i = 0; i < 3; i++) {
		struct sockaddr_in sin = addr4("127.0.0.1", 0);
		socklen_t len = sizeof sin;

		fd[i] = socket(AF_INET, SOCK_DGRAM, 0);
		ck_assert_int_ge(fd[i], 0);
		ck_assert_int_eq(bind(fd[i], (struct sockaddr *)&sin, sizeof sin), 0);
		ck_assert_int_eq(getsockname(fd[i], (struct sockaddr *)&sin, &len), 0);
		*out[i] = ntohs(sin.sin_port);
	}
	for (int i = 0; i < 3; i++)
		close(fd[i]);
}

static int opt(int fd, int name)
{
	int val = -1;
	socklen_t len = sizeof val;

	ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, name, &val, &len), 0);
	return val;
}

/* The receive buffer a fresh socket of this kind starts with. */
static int default_rcvbuf(int domain, int type)
{
	int fd = socket(domain, type, 0);
	int val;

	ck_assert_int_ge(fd, 0);
	val = opt(fd, SO_RCVBUF);
	close(fd);
	return val;
}

/* A UDP socket after bind() to ip:port, whatever bind() returned: the
 * interposition sets its options before the system call, so they show even
 * when another program on this machine holds that address and port. */
static int tried_udp4(const char *ip, int port)
{
	struct sockaddr_in sin = addr4(ip, port);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	ck_assert_int_ge(fd, 0);
	(void)bind(fd, (struct sockaddr *)&sin, sizeof sin);
	return fd;
}

static int bound_udp4(const char *ip, int port)
{
	struct sockaddr_in sin = addr4(ip, port);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	return fd;
}

START_TEST(test_public_port_gets_reuseport_and_rcvbuf)
{
	int pub, own, other;
	int a, b;

	free_ports(&pub, &own, &other);
	ck_assert_int_eq(reuseport_configure("127.0.0.1", pub, own, RCVBUF), 0);
	a = bound_udp4("127.0.0.1", pub);
	ck_assert_int_eq(opt(a, SO_REUSEPORT), 1);
	ck_assert_int_eq(opt(a, SO_RCVBUF), 2 * RCVBUF);
	/* What it is for: a second worker binds the same public port. */
	b = bound_udp4("127.0.0.1", pub);
	ck_assert_int_eq(opt(b, SO_REUSEPORT), 1);
	close(a);
	close(b);
}
END_TEST

START_TEST(test_own_port_gets_rcvbuf_only)
{
	int pub, own, other;
	struct sockaddr_in sin;
	int a, b;

	free_ports(&pub, &own, &other);
	sin = addr4("127.0.0.1", own);
	ck_assert_int_eq(reuseport_configure("127.0.0.1", pub, own, RCVBUF), 0);
	a = bound_udp4("127.0.0.1", own);
	ck_assert_int_eq(opt(a, SO_REUSEPORT), 0);
	ck_assert_int_eq(opt(a, SO_RCVBUF), 2 * RCVBUF);
	/* The own port stays the worker's alone. */
	b = socket(AF_INET, SOCK_DGRAM, 0);
	ck_assert_int_eq(bind(b, (struct sockaddr *)&sin, sizeof sin), -1);
	ck_assert_int_eq(errno, EADDRINUSE);
	close(a);
	close(b);
}
END_TEST

START_TEST(test_other_port_or_address_untouched)
{
	int plain = default_rcvbuf(AF_INET, SOCK_DGRAM);
	int pub, own, other;
	int fd;

	free_ports(&pub, &own, &other);
	ck_assert_int_ne(plain, 2 * RCVBUF);
	ck_assert_int_eq(reuseport_configure("127.0.0.1", pub, own, RCVBUF), 0);
	fd = bound_udp4("127.0.0.1", other);
	ck_assert_int_eq(opt(fd, SO_REUSEPORT), 0);
	ck_assert_int_eq(opt(fd, SO_RCVBUF), plain);
	close(fd);
	/* The public port number on another address is not a SIP socket. */
	fd = tried_udp4("127.0.0.2", pub);
	ck_assert_int_eq(opt(fd, SO_REUSEPORT), 0);
	ck_assert_int_eq(opt(fd, SO_RCVBUF), plain);
	close(fd);
	/* Nor is the wildcard address when listen is 127.0.0.1. */
	fd = tried_udp4("0.0.0.0", own);
	ck_assert_int_eq(opt(fd, SO_RCVBUF), plain);
	close(fd);
}
END_TEST

/* TCP on the public port: SO_REUSEPORT (every worker listens there), the
 * kernel's buffer (each accepted connection inherits it); on the own port:
 * untouched. */
START_TEST(test_tcp_on_public_port_reuseport_only)
{
	int plain = default_rcvbuf(AF_INET, SOCK_STREAM);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int fd2 = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin;
	int pub, own, other;

	free_ports(&pub, &own, &other);
	sin = addr4("127.0.0.1", pub);
	ck_assert_int_eq(reuseport_configure("127.0.0.1", pub, own, RCVBUF), 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_ge(fd2, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(opt(fd, SO_REUSEPORT), 1);
	ck_assert_int_eq(opt(fd, SO_RCVBUF), plain);
	ck_assert_int_eq(listen(fd, 4), 0);
	/* A second worker's listener on the same port. */
	ck_assert_int_eq(bind(fd2, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(listen(fd2, 4), 0);
	close(fd2);
	close(fd);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	sin = addr4("127.0.0.1", own);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(opt(fd, SO_REUSEPORT), 0);
	ck_assert_int_eq(opt(fd, SO_RCVBUF), plain);
	close(fd);
}
END_TEST

START_TEST(test_unix_socket_passes_through)
{
	char dir[] = "/tmp/check_reuseport.XXXXXX";
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int plain = default_rcvbuf(AF_UNIX, SOCK_DGRAM);
	int pub, own, other;
	int fd;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s/sock", dir);
	free_ports(&pub, &own, &other);
	ck_assert_int_eq(reuseport_configure("127.0.0.1", pub, own, RCVBUF), 0);
	fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	ck_assert_int_eq(opt(fd, SO_REUSEPORT), 0);
	ck_assert_int_eq(opt(fd, SO_RCVBUF), plain);
	close(fd);
	unlink(sun.sun_path);
	rmdir(dir);
}
END_TEST

START_TEST(test_nothing_before_configure)
{
	int port, own, other;
	int fd;

	free_ports(&port, &own, &other);
	fd = bound_udp4("127.0.0.1", port);
	ck_assert_int_eq(opt(fd, SO_REUSEPORT), 0);
	ck_assert_int_eq(opt(fd, SO_RCVBUF), default_rcvbuf(AF_INET, SOCK_DGRAM));
	close(fd);
	/* A refused registration leaves bind() plain too. */
	ck_assert_int_eq(reuseport_configure("sip.example.com", port, own, RCVBUF), -EINVAL);
	ck_assert_int_eq(reuseport_configure("127.0.0.1", port, 0, RCVBUF), -EINVAL);
	fd = bound_udp4("127.0.0.1", port);
	ck_assert_int_eq(opt(fd, SO_REUSEPORT), 0);
	close(fd);
}
END_TEST

START_TEST(test_ipv6_listen)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	socklen_t len = sizeof sin6;
	int fd = socket(AF_INET6, SOCK_DGRAM, 0);
	int pub, own, other, spare;

	if (fd < 0 || bind(fd, (struct sockaddr *)&sin6, sizeof sin6) < 0) {
		fprintf(stderr, "check_reuseport: no IPv6 loopback here, IPv6 case not run\n");
		if (fd >= 0)
			close(fd);
		return;
	}
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin6, &len), 0);
	pub = ntohs(sin6.sin6_port);
	close(fd);
	free_ports(&own, &other, &spare);
	ck_assert_int_eq(reuseport_configure("::1", pub, own, RCVBUF), 0);
	fd = socket(AF_INET6, SOCK_DGRAM, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin6, sizeof sin6), 0);
	ck_assert_int_eq(opt(fd, SO_REUSEPORT), 1);
	ck_assert_int_eq(opt(fd, SO_RCVBUF), 2 * RCVBUF);
	close(fd);
	/* The same port on IPv4 loopback is another address. */
	fd = bound_udp4("127.0.0.1", pub);
	ck_assert_int_eq(opt(fd, SO_REUSEPORT), 0);
	close(fd);
}
END_TEST

/* Dual stack: a second listen address (reuseport_add) gets the same
 * treatment on the same ports, and the first keeps it. */
START_TEST(test_dual_stack)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	socklen_t len = sizeof sin6;
	int fd = socket(AF_INET6, SOCK_DGRAM, 0);
	int pub, own, other, spare, v4, v6b;

	if (fd < 0 || bind(fd, (struct sockaddr *)&sin6, sizeof sin6) < 0) {
		fprintf(stderr, "check_reuseport: no IPv6 loopback here, dual stack case not run\n");
		if (fd >= 0)
			close(fd);
		return;
	}
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin6, &len), 0);
	pub = ntohs(sin6.sin6_port);
	close(fd);
	free_ports(&own, &other, &spare);
	ck_assert_int_eq(reuseport_add("::1"), -EINVAL);   /* before reuseport_configure */
	ck_assert_int_eq(reuseport_configure("127.0.0.1", pub, own, RCVBUF), 0);
	ck_assert_int_eq(reuseport_add("localhost"), -EINVAL);
	ck_assert_int_eq(reuseport_add("::1"), 0);
	fd = socket(AF_INET6, SOCK_DGRAM, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin6, sizeof sin6), 0);
	ck_assert_int_eq(opt(fd, SO_REUSEPORT), 1);
	ck_assert_int_eq(opt(fd, SO_RCVBUF), 2 * RCVBUF);
	/* A second worker binds the same IPv6 public port. */
	v6b = socket(AF_INET6, SOCK_DGRAM, 0);
	ck_assert_int_eq(bind(v6b, (struct sockaddr *)&sin6, sizeof sin6), 0);
	v4 = tried_udp4("127.0.0.1", pub);
	ck_assert_int_eq(opt(v4, SO_REUSEPORT), 1);
	close(v4);
	close(v6b);
	close(fd);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("reuseport");
	TCase *tc = tcase_create("bind interposition");
	SRunner *sr;
	int failed;

	/* Check forks every test: each one starts with nothing registered. */
	tcase_add_test(tc, test_public_port_gets_reuseport_and_rcvbuf);
	tcase_add_test(tc, test_own_port_gets_rcvbuf_only);
	tcase_add_test(tc, test_other_port_or_address_untouched);
	tcase_add_test(tc, test_tcp_on_public_port_reuseport_only);
	tcase_add_test(tc, test_unix_socket_passes_through);
	tcase_add_test(tc, test_nothing_before_configure);
	tcase_add_test(tc, test_ipv6_listen);
	tcase_add_test(tc, test_dual_stack);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
