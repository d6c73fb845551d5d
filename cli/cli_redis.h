/*
 * cli_redis — a synchronous Redis connection for one CLI command, and the
 * few reply helpers the `user` and `cdr` commands share.
 *
 * Design note.  See cli_redis.c.  Each function that can fail writes the
 * operator's reason into the command's reply (cli_fail) and returns a
 * negative errno; the caller only passes it up.
 */
#ifndef B2BUA_CLI_REDIS_H
#define B2BUA_CLI_REDIS_H

#include <hiredis/hiredis.h>

#include "cli/cli_int.h"

#define CLI_KEY_MAX           256           /* a Redis key the CLI builds */

/* One command's connection to Redis; failures land in `reply`. */
struct cli_redis {
	const cli_server_t *srv;
	redisContext *c;
	struct cli_reply *reply;
};

/* Connect, authenticate and select the database: 0, or the failure in the reply. */
int cli_redis_open(const cli_server_t *srv, struct cli_reply *reply, struct cli_redis *r);
void cli_redis_close(struct cli_redis *r);

/* Send one command and wait for its reply (bounded by the context's timeout). */
int cli_redis_cmd(struct cli_redis *r, int argc, const char **argv, redisReply **out);

/* The next reply of a pipeline (commands queued with redisAppendCommandArgv). */
int cli_redis_next(struct cli_redis *r, const char *what, redisReply **out);

/* Free `rr` and fail with "unexpected answer to <what>". */
int cli_redis_unexpected(struct cli_redis *r, const char *what, redisReply *rr);

/* Connect, EVAL one script whose answer is an integer, close. */
int cli_redis_eval(const cli_server_t *srv, struct cli_reply *reply, int argc,
		   const char **argv, long long *result);

/* The value of `field` in the [field, value, ...] reply of HGETALL, or NULL. */
const char *cli_hash_get(const redisReply *hash, const char *field);

/* "<prefix><kind>:<name>", e.g. "b2bua:user:alice" (the registrar's keys). */
void cli_user_key(const cli_server_t *srv, const char *kind, const char *name,
		  char *out, size_t size);

#endif
