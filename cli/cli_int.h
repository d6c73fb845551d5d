/*
 * cli_int — what the files of the CLI server share, and nobody else.
 *
 * Design note.  The server is split by concern: cli_server.c (the socket),
 * cli_dispatch.c (a request line to a handler), cli_buf.c (the answer being
 * built, and the JSON and text helpers every handler uses), and one file
 * per family of commands: cli_calls.c, cli_stats.c, cli_users.c and
 * cli_users_view.c, cli_cdr.c, cli_hosts.c, cli_reload.c.  The last three reach Redis only through
 * the server's store handle (store/store.h, its synchronous side): no CLI
 * file knows a key, a field or a script.  A handler gets the server, the
 * checked request (struct cli_cmd_args, see cli_cmd.h: operands and option
 * values are valid when it runs) and builds its body in a cli_buf.  The
 * server's fields are visible here because the handlers read them (the
 * table, the store, the worker channel); only cli_server.c writes them.
 */
#ifndef B2BUA_CLI_INT_H
#define B2BUA_CLI_INT_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>

#include <jansson.h>

#include "b2bua/config.h"
#include "cli/cli_cmd.h"
#include "cli/cli_server.h"
#include "shm/shm.h"
#include "store/store.h"

#define CLI_TEXT_MAX          400           /* the text of a status line */
#define CLI_ANSWER_MAX        (256u << 20)  /* sanity bound on one answer */

struct cli_server {
	int fd;
	shm_t *shm;
	unsigned workers;
	int draining;
	char node_id[sizeof ((struct config *)0)->node_id];
	char path[sizeof ((struct sockaddr_un *)0)->sun_path];
	store_sync_t *store;            /* the subscribers and CDRs in Redis */
	int no_answer_timeout;          /* shown as the default of fwd_noanswer_timeout */
	/* How to ask a worker (call kill); NULL until the management process installs it. */
	cli_ctl_request_f *ctl_request;  /* to reach a worker (call kill) */
	void *ctl_request_arg;
	dev_t dev;                      /* the socket file we made, so close() */
	ino_t ino;                      /* never unlinks a successor's socket */
};

/* An answer being built.  After an allocation failure it only remembers that. */
struct cli_buf {
	char *data;
	size_t len;
	size_t cap;
	int err;
};

/* The status line of an answer: "ok", or what went wrong for the operator. */
struct cli_reply {
	int status;                         /* CLI_STATUS_* */
	char text[CLI_TEXT_MAX];
};

/*
 * A command returns 0 with its body in `out`, or a negative errno.  A
 * failure the operator should read ("no such user bob") is set in *reply
 * first (cli_fail); any other is "cannot build the answer" and is logged.
 */
typedef int cli_handler_f(cli_server_t *srv, const struct cli_cmd_args *req,
			  struct cli_buf *out, struct cli_reply *reply);

/* The handlers, by file (cli_dispatch.c holds the array indexed by enum cli_cmd_id). */
cli_handler_f cli_show_workers, cli_show_stats;                 /* cli_stats.c */
cli_handler_f cli_show_calls, cli_show_call, cli_call_kill;     /* cli_calls.c */
cli_handler_f cli_cdr_tail;                                     /* cli_cdr.c */
cli_handler_f cli_show_hosts;                                   /* cli_hosts.c */
cli_handler_f cli_reload;                                       /* cli_reload.c */

/* cli_hosts.c: `show hosts`'s body from the list and Redis's time (pure). */
int cli_hosts_answer(const struct store_host *h, size_t n, uint64_t now_ms, int json,
		     struct cli_buf *out);
cli_handler_f cli_user_add, cli_user_passwd, cli_user_del,      /* cli_users.c */
	cli_user_set, cli_user_enable, cli_user_disable, cli_user_forward;
cli_handler_f cli_user_show, cli_user_list;                     /* cli_users_view.c */

/*
 * cli_dispatch.c: the parsing half of cli_dispatch() (public for
 * fuzz/fuzz_cli.c): split and decode the line in place, find and check its
 * command; NULL with the usage error in *reply.
 */
const struct cli_cmd *cli_dispatch_parse(char *line, struct cli_cmd_args *req,
					 struct cli_reply *reply);

/* cli_dispatch.c: answer one request line (decoded in place) into *reply and *body. */
void cli_dispatch(cli_server_t *srv, char *line, struct cli_reply *reply, struct cli_buf *body);

/* ------------------------------------------------------------ cli_buf.c */

uint64_t cli_now_ms(clockid_t clock);
uint64_t cli_elapsed_s(uint64_t since_ms, uint64_t now_ms);

/* Set the status line of a failed command; returns -EPROTO for the command to return. */
int cli_fail(struct cli_reply *reply, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

void cli_buf_add(struct cli_buf *b, const char *s, size_t n);
void cli_buf_printf(struct cli_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append `value` as compact JSON (a NULL value is an allocation failure). */
void cli_buf_add_json(struct cli_buf *b, json_t *value);

/*
 * Copy a fixed-size string for display: bounded by its array (a copy from
 * shared memory need not be terminated) and with control characters
 * replaced, so a hostile From header cannot forge lines in a table.
 */
void cli_clean(char *dst, size_t dst_size, const char *src, size_t src_max);

/* A JSON string (invalid UTF-8 bytes become '?'), or null for "" when `empty_null`. */
json_t *cli_json_str(const char *s, int empty_null);
json_t *cli_json_u64(uint64_t v);

/* ISO-8601 UTC with milliseconds ("2024-05-01T12:00:00.250Z"); "-" for 0. */
void cli_iso_ms(uint64_t ms, char *out, size_t size);

/* s, or "-" when it is empty. */
const char *cli_dash(const char *s);

#endif
