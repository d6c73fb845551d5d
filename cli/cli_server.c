/*
 * cli_server — see cli_server.h; the wire protocol is in cli_proto.h.
 *
 * Design note.  This file is the socket only: open (claim a stale path,
 * bind, listen), accept, read the request line, check the peer, send the
 * answer, close.  What a request means is cli_dispatch.c's business, and
 * each family of commands has its own file (see cli_int.h).  The server
 * also holds the store's synchronous handle (store_sync_t, store/store.h)
 * for the `user` and `cdr` commands: Redis is reached through store/ only,
 * and only while such a command runs.
 *
 * The CLI is served one client at a time, from the owner's poll loop:
 * requests are rare and almost every answer is read straight from shared
 * memory, so a thread would buy nothing.  What keeps that loop responsive
 * is that every client is bounded: CLI_READ_TIMEOUT_MS (1 s) in all to send
 * its request line, CLI_WRITE_TIMEOUT_MS to take the answer,
 * CLI_ACCEPT_BATCH clients or CLI_BATCH_MS per wake-up.  Accepted sockets
 * are blocking; every read and write is bounded by a socket timeout.
 *
 * Who may talk to us: the socket is created mode 0600 (its directory 0700
 * when we create it), and every peer's uid is checked with SO_PEERCRED in
 * case an administrator loosens the file mode: root and our own uid only.
 * The request line may carry a password: it is wiped once answered.
 */
#define _GNU_SOURCE                 /* accept4(), struct ucred */

#include "cli/cli_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CLI_READ_TIMEOUT_MS   1000          /* a client that sends nothing is dropped */
#define CLI_WRITE_TIMEOUT_MS  3000          /* a client that does not read is dropped */
#define CLI_ACCEPT_BATCH      16            /* then back to the management loop */
#define CLI_BATCH_MS          1000          /* ... or once this much time went on clients */
#define CLI_LISTEN_BACKLOG    16

/* ------------------------------------------------------------ one client */

static void cli_set_timeout(int fd, int opt, uint64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (long)(ms % 1000) * 1000 };

	/* 0 would mean "forever" to the kernel. */
	if (ms == 0)
		tv.tv_usec = 1000;
	setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv);
}

/* Send all of buf before `deadline` (CLOCK_MONOTONIC ms): 0 or -errno. */
static int cli_send_all(int fd, const char *buf, size_t len, uint64_t deadline)
{
	while (len > 0) {
		uint64_t now = cli_now_ms(CLOCK_MONOTONIC);
		ssize_t n;

		if (now >= deadline)
			return -ETIMEDOUT;
		cli_set_timeout(fd, SO_SNDTIMEO, deadline - now);
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int cli_respond(int fd, int status, const char *text, const struct cli_buf *body)
{
	uint64_t deadline = cli_now_ms(CLOCK_MONOTONIC) + CLI_WRITE_TIMEOUT_MS;
	char line[CLI_TEXT_MAX + 16];
	int n, err;

	n = snprintf(line, sizeof line, "%d %s\n", status, text);
	if (n < 0 || (size_t)n >= sizeof line)
		return -EINVAL;
	/* One line whatever the text quotes (a user name, a Redis error). */
	for (int i = 0; i < n - 1; i++) {
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	}
	err = cli_send_all(fd, line, (size_t)n, deadline);
	if (err == 0 && body && body->len)
		err = cli_send_all(fd, body->data, body->len, deadline);
	return err;
}

/*
 * Read the request line within CLI_READ_TIMEOUT_MS in all (not per read, so
 * a client dribbling a byte a second cannot hold the management process).  Returns 0 with
 * a NUL-terminated line, -ETIMEDOUT, -ENODATA (closed without a word) or
 * -E2BIG (no newline within CLI_REQUEST_MAX bytes).
 */
static int cli_read_request(int fd, char *line, size_t size)
{
	uint64_t deadline = cli_now_ms(CLOCK_MONOTONIC) + CLI_READ_TIMEOUT_MS;
	size_t len = 0;

	for (;;) {
		uint64_t now = cli_now_ms(CLOCK_MONOTONIC);
		ssize_t n;

		if (now >= deadline)
			return -ETIMEDOUT;
		cli_set_timeout(fd, SO_RCVTIMEO, deadline - now);
		n = recv(fd, line + len, size - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		if (n == 0) {
			line[len] = '\0';
			return len ? 0 : -ENODATA;
		}
		len += (size_t)n;
		line[len] = '\0';
		if (memchr(line, '\n', len))
			return 0;
		if (len == size - 1)
			return -E2BIG;
	}
}

/* Root and the daemon's own user; SO_PEERCRED is what the kernel saw at connect(). */
static int cli_peer_allowed(int fd, uid_t *uid)
{
	struct ucred cred;
	socklen_t len = sizeof cred;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return 0;
	*uid = cred.uid;
	return cred.uid == 0 || cred.uid == geteuid();
}


/* Answer one request line: the dispatcher builds the answer, we send it. */
static void cli_run(cli_server_t *srv, int fd, char *line)
{
	struct cli_reply reply = { .status = CLI_STATUS_OK };
	struct cli_buf body = { 0 };
	int err;

	cli_dispatch(srv, line, &reply, &body);
	err = cli_respond(fd, reply.status, reply.text, &body);
	if (err < 0) {
		static struct log_limit dropped_limit = { .what = "cli: clients dropped" };
		log_limited(&dropped_limit, LOG_WARN, "cli: client dropped while answering: %s",
			    strerror(-err));
	}
	free(body.data);
}

static void cli_serve_client(cli_server_t *srv, int fd)
{
	char line[CLI_REQUEST_MAX + 1];
	uid_t uid = (uid_t)-1;
	char text[160];
	int err;

	/* Read the request even from a peer we refuse: closing on unread data
	 * would reset the connection and the client would never see why. */
	err = cli_read_request(fd, line, sizeof line);
	if (!cli_peer_allowed(fd, &uid)) {
		static struct log_limit refused_limit = { .what = "cli: clients refused" };
		log_limited(&refused_limit, LOG_WARN,
			    "cli: refused a client with uid %d: only root and uid %d may use the CLI",
			    (int)uid, (int)geteuid());
		snprintf(text, sizeof text, "permission denied: uid %d may not use the b2bua CLI "
			 "(only root and uid %d)", (int)uid, (int)geteuid());
		cli_respond(fd, CLI_STATUS_ERROR, text, NULL);
		return;
	}
	if (err == -ETIMEDOUT) {
		log_debug("cli: dropped a client that sent no request within %d ms",
			  CLI_READ_TIMEOUT_MS);
		cli_respond(fd, CLI_STATUS_ERROR, "no request within 1 s", NULL);
		return;
	}
	if (err == -E2BIG) {
		cli_respond(fd, CLI_STATUS_USAGE, "request line too long", NULL);
		return;
	}
	if (err < 0)
		return;
	cli_run(srv, fd, line);
	/* It may have carried a password. */
	explicit_bzero(line, sizeof line);
}

void cli_server_handle(cli_server_t *srv)
{
	uint64_t until = cli_now_ms(CLOCK_MONOTONIC) + CLI_BATCH_MS;

	/* A `user` command may wait on Redis: after a slow one, let the management process's
	 * loop run before the next client (the socket stays readable). */
	for (int i = 0; i < CLI_ACCEPT_BATCH && cli_now_ms(CLOCK_MONOTONIC) < until; i++) {
		/* Accepted sockets are blocking; every read and write is bounded by a timeout. */
		int fd = accept4(srv->fd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				static struct log_limit accept_limit = { .what = "cli: accept errors" };
				log_limited(&accept_limit, LOG_WARN, "cli: accept on %s: %s",
					    srv->path, strerror(errno));
			}
			return;
		}
		cli_serve_client(srv, fd);
		close(fd);
	}
}

/* ------------------------------------------------------------ the socket */

static int cli_make_parent_dir(const char *path)
{
	char dir[sizeof ((struct sockaddr_un *)0)->sun_path];
	char *slash;

	snprintf(dir, sizeof dir, "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0700) == 0) {
		log_info("cli: created directory %s (mode 0700)", dir);
		return 0;
	}
	if (errno == EEXIST)
		return 0;
	log_error("cli: cannot create directory %s: %s", dir, strerror(errno));
	return -errno;
}

/*
 * Make sure `path` is free to bind: absent, or a socket nobody answers on
 * (left behind by a daemon that crashed), which is removed.  A socket that
 * answers belongs to a running daemon: -EADDRINUSE.  Anything else at that
 * path is not ours to delete: -EEXIST.
 */
static int cli_claim_path(const struct sockaddr_un *sun)
{
	struct stat st;
	int fd, err;

	if (lstat(sun->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		log_error("cli: %s exists and is not a socket; not replacing it", sun->sun_path);
		return -EEXIST;
	}
	/* Non-blocking, so a daemon with a full backlog reads as alive (EAGAIN), not as a hang. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	err = connect(fd, (const struct sockaddr *)sun, sizeof *sun) < 0 ? errno : 0;
	close(fd);
	if (err == 0 || err == EAGAIN) {
		log_error("cli: another daemon is listening on %s", sun->sun_path);
		return -EADDRINUSE;
	}
	if (err != ECONNREFUSED) {
		log_error("cli: cannot probe %s: %s", sun->sun_path, strerror(err));
		return -err;
	}
	log_info("cli: removing stale socket %s", sun->sun_path);
	if (unlink(sun->sun_path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* Bind with umask 0177 so the file never exists with a looser mode, even briefly. */
static int cli_bind_listen(cli_server_t *srv, const struct sockaddr_un *sun)
{
	struct stat st;
	mode_t old;
	int err;

	srv->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->fd < 0)
		return -errno;
	old = umask(0177);
	err = bind(srv->fd, (const struct sockaddr *)sun, sizeof *sun) < 0 ? -errno : 0;
	umask(old);
	if (err < 0) {
		log_error("cli: cannot bind %s: %s", sun->sun_path, strerror(-err));
		return err;
	}
	if (chmod(sun->sun_path, 0600) < 0 || lstat(sun->sun_path, &st) < 0 ||
	    listen(srv->fd, CLI_LISTEN_BACKLOG) < 0) {
		err = -errno;
		log_error("cli: cannot set up %s: %s", sun->sun_path, strerror(errno));
		unlink(sun->sun_path);
		return err;
	}
	srv->dev = st.st_dev;
	srv->ino = st.st_ino;
	return 0;
}

int cli_server_open(const struct config *cfg, shm_t *shm, cli_server_t **out)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len = strlen(cfg->cli_socket);
	cli_server_t *srv;
	int err;

	if (len == 0 || len >= sizeof sun.sun_path) {
		log_error("cli: cli_socket '%s': %s", cfg->cli_socket,
			  len ? "path too long for a Unix socket" : "empty path");
		return len ? -ENAMETOOLONG : -EINVAL;
	}
	memcpy(sun.sun_path, cfg->cli_socket, len + 1);
	srv = calloc(1, sizeof *srv);
	if (!srv)
		return -ENOMEM;
	srv->fd = -1;
	srv->shm = shm;
	srv->workers = cfg->workers > 0 ? (unsigned)cfg->workers : 0;
	snprintf(srv->node_id, sizeof srv->node_id, "%s", cfg->node_id);
	srv->no_answer_timeout = cfg->no_answer_timeout;
	memcpy(srv->path, sun.sun_path, len + 1);

	/* Connects to nothing yet: each `user` or `cdr` command connects on its own. */
	err = store_sync_create(cfg, &srv->store);
	if (err == 0)
		err = cli_make_parent_dir(srv->path);
	if (err == 0)
		err = cli_claim_path(&sun);
	if (err == 0)
		err = cli_bind_listen(srv, &sun);
	if (err < 0) {
		if (srv->fd >= 0)
			close(srv->fd);
		store_sync_destroy(srv->store);
		free(srv);
		return err;
	}
	log_info("cli: listening on %s", srv->path);
	*out = srv;
	return 0;
}

int cli_server_fd(const cli_server_t *srv)
{
	return srv->fd;
}

const shm_t *cli_server_shm(const cli_server_t *srv)
{
	return srv->shm;
}

void cli_server_set_draining(cli_server_t *srv, int draining)
{
	srv->draining = draining != 0;
}

void cli_server_reload(cli_server_t *srv, const struct config *cfg)
{
	srv->no_answer_timeout = cfg->no_answer_timeout;
	if (srv->store != NULL)
		store_sync_set_realm(srv->store, cfg->realm);
}

void cli_server_set_ctl_request(cli_server_t *srv, cli_ctl_request_f *fn, void *arg)
{
	srv->ctl_request = fn;
	srv->ctl_request_arg = arg;
}

void cli_server_close(cli_server_t *srv)
{
	struct stat st;

	if (!srv)
		return;
	close(srv->fd);
	/* Only our own file: a successor daemon may already have replaced it. */
	if (lstat(srv->path, &st) == 0 && st.st_dev == srv->dev && st.st_ino == srv->ino)
		unlink(srv->path);
	store_sync_destroy(srv->store);
	free(srv);
}

