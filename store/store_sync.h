/*
 * store_sync — the management side's connection to Redis, shared by
 * store_sync.c (the connection, subscriber changes) and store_query.c
 * (user show, user list, cdr tail).  Private to store/.
 */
#ifndef B2BUA_STORE_SYNC_H
#define B2BUA_STORE_SYNC_H

#include <hiredis/hiredis.h>

#include "store/store.h"

struct store_sync {
	char address[sizeof ((struct config *)0)->redis_address];
	char password[sizeof ((struct config *)0)->redis_password];
	int db;
	char prefix[sizeof ((struct config *)0)->redis_prefix];
	char realm[sizeof ((struct config *)0)->realm];
	char cdr_stream[sizeof ((struct config *)0)->cdr_stream];
	/* Sentinel mode when n_sentinels > 0: address is then "master NAME". */
	size_t n_sentinels;
	char sentinels[CONFIG_MAX_SENTINELS][CONFIG_SENTINEL_MAX];
	char master_name[sizeof ((struct config *)0)->redis_master_name];
};

/* One operation's connection; failures land in `err`. */
struct store_conn {
	const store_sync_t *s;
	redisContext *c;
	struct store_error *err;
	char address[sizeof ((struct config *)0)->redis_address];   /* for messages: the
					 * address connected to (the primary, with sentinels) */
};

/* Set err->text and return code (a negative errno). */
int store_fail(struct store_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Connect (with sentinels: to the primary they name, asked in turn),
 * authenticate, select the database and check that ROLE says master: 0, or
 * the failure in err. */
int store_conn_open(const store_sync_t *s, struct store_error *err, struct store_conn *conn);
void store_conn_close(struct store_conn *conn);

/* Send one command and wait for its reply: 0 and *out (the caller frees it). */
int store_conn_cmd(struct store_conn *conn, int argc, const char **argv, redisReply **out);

/* The next reply of a pipeline (commands queued with redisAppendCommandArgv). */
int store_conn_next(struct store_conn *conn, const char *what, redisReply **out);

/* Free rr and report "unexpected answer to <what>" (-EBADMSG). */
int store_conn_unexpected(struct store_conn *conn, const char *what, redisReply *rr);

#endif
