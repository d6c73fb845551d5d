/*
 * cli_redis — the CLI's synchronous Redis connection (see cli_redis.h).
 *
 * Design note.  Subscribers (`user ...`) and CDRs (`cdr tail`) are not in
 * shared memory: they live in Redis, where every worker's registrar reads
 * the subscribers and every worker adds its CDRs to one Stream.  Those
 * commands open a synchronous hiredis connection, use it and close it
 * again.  The side of the daemon that serves the CLI is no worker, so a
 * short blocking call is acceptable here, but every step is bounded: 1 s to
 * connect, 1 s per reply.  A failure lands in the command's reply as
 * "redis <address>: <reason>", the one form operators see for all of them.
 */
#include "cli/cli_redis.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define CLI_REDIS_TIMEOUT_MS  1000          /* to connect, and per reply */

static struct timeval cli_timeval(uint64_t ms)
{
	return (struct timeval){
		.tv_sec = (time_t)(ms / 1000), .tv_usec = (long)(ms % 1000) * 1000,
	};
}

/* Why a hiredis context failed, for people: a read timeout shows as EAGAIN. */
static const char *cli_redis_why(const redisContext *c)
{
	if (!c)
		return "out of memory";
	if (c->err == REDIS_ERR_IO && strcmp(c->errstr, strerror(EAGAIN)) == 0)
		return "no answer within 1 s";
	if (c->err == REDIS_ERR_EOF)
		return "the server closed the connection";
	return c->errstr[0] ? c->errstr : "connection failed";
}

/* Connect to "unix:/path", "host:port" or "[v6]:port": 0 and *out (NULL
 * when hiredis ran out of memory), or -EINVAL for an address it is not. */
static int cli_redis_dial(const char *address, redisContext **out)
{
	struct timeval tv = cli_timeval(CLI_REDIS_TIMEOUT_MS);
	const char *host = address, *colon;
	char name[256], *end;
	size_t len;
	long port;

	if (strncmp(address, "unix:", 5) == 0) {
		*out = redisConnectUnixWithTimeout(address + 5, tv);
		return 0;
	}
	if (address[0] == '[') {
		host = address + 1;
		colon = strchr(host, ']');
		if (!colon || colon[1] != ':')
			return -EINVAL;
		len = (size_t)(colon - host);
		colon++;
	} else {
		colon = strrchr(address, ':');
		if (!colon)
			return -EINVAL;
		len = (size_t)(colon - host);
	}
	if (len == 0 || len >= sizeof name)
		return -EINVAL;
	memcpy(name, host, len);
	name[len] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end != '\0' || port < 1 || port > 65535)
		return -EINVAL;
	*out = redisConnectWithTimeout(name, (int)port, tv);
	return 0;
}

void cli_redis_close(struct cli_redis *r)
{
	if (r->c)
		redisFree(r->c);
	r->c = NULL;
}

/* Check one reply: 0 and *out (the caller frees it), or the failure in the reply. */
static int cli_redis_check(struct cli_redis *r, const char *what, redisReply *rr,
			   redisReply **out)
{
	const char *address = r->srv->redis_address;

	if (!rr)
		return cli_fail(r->reply, CLI_STATUS_ERROR, "redis %s: %s", address,
				cli_redis_why(r->c));
	if (rr->type == REDIS_REPLY_ERROR) {
		cli_fail(r->reply, CLI_STATUS_ERROR, "redis %s: %s: %.200s", address, what,
			 rr->str);
		freeReplyObject(rr);
		return -EPROTO;
	}
	*out = rr;
	return 0;
}

/* Send one command and wait for its reply (bounded by the context's timeout). */
int cli_redis_cmd(struct cli_redis *r, int argc, const char **argv, redisReply **out)
{
	return cli_redis_check(r, argv[0], redisCommandArgv(r->c, argc, argv, NULL), out);
}

/* The next reply of a pipeline (commands queued with redisAppendCommandArgv). */
int cli_redis_next(struct cli_redis *r, const char *what, redisReply **out)
{
	void *rr = NULL;

	if (redisGetReply(r->c, &rr) != REDIS_OK)
		rr = NULL;
	return cli_redis_check(r, what, rr, out);
}

int cli_redis_unexpected(struct cli_redis *r, const char *what, redisReply *rr)
{
	freeReplyObject(rr);
	return cli_fail(r->reply, CLI_STATUS_ERROR, "redis %s: unexpected answer to %s",
			r->srv->redis_address, what);
}

/* Run a command whose answer does not matter beyond "not an error". */
static int cli_redis_simple(struct cli_redis *r, int argc, const char **argv)
{
	redisReply *rr;
	int err = cli_redis_cmd(r, argc, argv, &rr);

	if (err == 0)
		freeReplyObject(rr);
	return err;
}

/* Connect, authenticate and select the database: 0, or the failure in the reply. */
int cli_redis_open(const cli_server_t *srv, struct cli_reply *reply, struct cli_redis *r)
{
	const char *auth[] = { "AUTH", srv->redis_password };
	const char *select[] = { "SELECT", NULL };
	char db[16];
	int err = 0;

	*r = (struct cli_redis){ .srv = srv, .reply = reply };
	if (cli_redis_dial(srv->redis_address, &r->c) < 0)
		return cli_fail(reply, CLI_STATUS_ERROR, "redis %s: not a valid address",
				srv->redis_address);
	if (!r->c || r->c->err) {
		err = cli_fail(reply, CLI_STATUS_ERROR, "redis %s: cannot connect: %s",
			       srv->redis_address, cli_redis_why(r->c));
		cli_redis_close(r);
		return err;
	}
	redisSetTimeout(r->c, cli_timeval(CLI_REDIS_TIMEOUT_MS));
	if (srv->redis_password[0])
		err = cli_redis_simple(r, 2, auth);
	if (err == 0 && srv->redis_db != 0) {
		snprintf(db, sizeof db, "%d", srv->redis_db);
		select[1] = db;
		err = cli_redis_simple(r, 2, select);
	}
	if (err < 0)
		cli_redis_close(r);
	return err;
}

/* Connect, EVAL one script whose answer is an integer, close. */
int cli_redis_eval(const cli_server_t *srv, struct cli_reply *reply, int argc,
		   const char **argv, long long *result)
{
	struct cli_redis r;
	redisReply *rr = NULL;
	int err = cli_redis_open(srv, reply, &r);

	if (err == 0)
		err = cli_redis_cmd(&r, argc, argv, &rr);
	if (err == 0 && rr->type != REDIS_REPLY_INTEGER)
		err = cli_redis_unexpected(&r, "EVAL", rr);
	else if (err == 0) {
		*result = rr->integer;
		freeReplyObject(rr);
	}
	cli_redis_close(&r);
	return err;
}

/* The value of `field` in the [field, value, ...] reply of HGETALL, or NULL. */
const char *cli_hash_get(const redisReply *hash, const char *field)
{
	for (size_t i = 0; i + 1 < hash->elements; i += 2) {
		const redisReply *f = hash->element[i], *v = hash->element[i + 1];

		if (f->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
		    strcmp(f->str, field) == 0)
			return v->str;
	}
	return NULL;
}

/* "<prefix><kind>:<name>", e.g. "b2bua:user:alice" (the registrar's keys). */
void cli_user_key(const cli_server_t *srv, const char *kind, const char *name,
		  char *out, size_t size)
{
	snprintf(out, size, "%s%s:%s", srv->redis_prefix, kind, name);
}
