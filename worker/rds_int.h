/*
 * rds_int — what rds.c (the connection) and rds_sentinel.c (finding the
 * primary through Sentinel) share.  Private to the rds module.
 */
#ifndef B2BUA_RDS_INT_H
#define B2BUA_RDS_INT_H

#include <hiredis/async.h>
#include <sofia-sip/su_wait.h>

#include "shm/shm.h"
#include "store/store.h"
#include "worker/rds.h"
#include "worker/uport.h"

#define RDS_BACKOFF_MIN_MS      100
#define RDS_BACKOFF_MAX_MS      5000
/* In sentinel mode: the backoff's bound, so that a failover (Sentinel
 * promotes a replica in about 1-2 s) is followed within 2 s. */
#define RDS_SENTINEL_BACKOFF_MAX_MS 500
/* One sentinel's connect and answer; then the next sentinel is asked. */
#define RDS_SENTINEL_TIMEOUT_MS 500
/* While up in sentinel mode: how often the watcher asks its sentinel
 * whether the primary is still the one we use. */
#define RDS_SENTINEL_POLL_MS    500
/* From connect(2) to the ROLE reply: a server that accepts but does not
 * answer (stopped, overloaded, a firewall eating packets) is given up. */
#define RDS_CONNECT_TIMEOUT_MS  2000
/* redis_timeout when the config says 0. */
#define RDS_TIMEOUT_DEFAULT_MS  1000

enum rds_state {
	RDS_WAITING,      /* no context; the timer is the next attempt */
	RDS_ASKING,       /* asking a sentinel for the primary; the timer is its deadline */
	RDS_CONNECTING,   /* connect + handshake in flight; the timer is its deadline */
	RDS_UP,           /* commands are taken */
	RDS_CLOSING,      /* being dropped; hiredis is winding the context down */
};

/* What a command's reply goes to.  Every command has one, with or without
 * a callback, so that `pending` is exactly the connection's FIFO of
 * commands awaiting a reply.  Recycled through a free list. */
struct rds_req {
	rds_reply_f *cb;            /* NULL: no reply wanted */
	void *arg;
	long long sent_ms;          /* when it was queued (monotonic) */
	uint64_t sent_us;           /* the same in µs: the round trip's histogram */
	struct rds_req *next;       /* in `pending`, or in the free list */
};

struct rds {
	su_root_t *root;
	su_timer_t *timer;          /* next attempt, handshake deadline or deferred drop */
	redisAsyncContext *ac;      /* NULL while waiting */
	enum rds_state state;

	int fd;                     /* ac's socket while it is registered */
	int wait_index;             /* its Sofia registration, 0 when none */
	int want;                   /* poll events hiredis asked for */
	int have;                   /* poll events registered */

	int depth;                  /* entry points on the stack */
	int flushing;               /* rds_settle is writing hiredis's buffer */
	uport_t *uport;             /* the root's uport: writes wait for the turn's end; NULL: at once */
	struct uport_defer flush;   /* that write, queued on uport */
	int destroying;
	int reported_up;            /* on_state(1) told, on_state(0) not yet */
	char drop_reason[256];      /* non-empty: drop this context at the next timer tick */
	int drop_refused;           /* ... because the server refused AUTH or SELECT */

	int outage_logged;          /* this outage's warning is out */
	int refusal_logged;         /* this outage's AUTH/SELECT error is out */
	long long down_since_ms;    /* when the outage began (monotonic) */
	su_duration_t backoff_ms;   /* delay before the next attempt */

	char *fmt_buf;              /* rds_commandargv's encoding, reused (grows, never shrinks) */
	size_t fmt_cap;

	struct rds_req *free_reqs;
	struct rds_req *pending;    /* oldest first: replies come in this order */
	struct rds_req *pending_tail;
	su_timer_t *deadline;       /* checks the oldest pending command */
	int deadline_armed;
	int timeout_ms;             /* redis_timeout */
	int closed;                 /* rds_close(): no more commands, no reconnect */

	rds_state_f *on_state;
	void *state_arg;

	shm_t *shm;                 /* metrics (rds_set_counters): NULL for none */
	unsigned worker;

	char address[256];          /* redis_address, or the current primary (sentinel mode) */
	char password[128];
	char prefix[64];
	int db;
	char unix_path[STORE_UNIX_PATH_MAX];   /* "" for TCP */
	char host[STORE_HOST_MAX];
	int port;

	/* Sentinel mode (n_sentinels > 0), see rds_sentinel.c. */
	size_t n_sentinels;
	struct store_address sentinels[RDS_SENTINELS_MAX];
	char sentinel_text[RDS_SENTINELS_MAX][STORE_ADDRESS_TEXT_MAX];
	char master_name[64];
	size_t ask_index;           /* the sentinel asked (or that named the primary) */
	size_t ask_good;            /* the last sentinel whose primary came up: rounds start here */
	size_t asked;               /* sentinels asked in this round */
	int ask_result;             /* 0 waiting, 1 primary named, -1 this sentinel failed */
	int ask_closing;            /* the sentinel context is being freed by us */
	char ask_why[200];          /* what was wrong with this sentinel */
	int role_rejected;          /* the named primary's ROLE was not master */
	int ask_continue;           /* the next attempt asks ask_index (same round) */
	int drop_now;               /* the next attempt without backoff (READONLY) */
	unsigned sentinel_logged;   /* bit i: sentinel i's trouble logged this outage */
	rds_t *watcher;             /* persistent connection to sentinel watch_index */
	size_t watch_index;
	su_timer_t *poll;           /* asks the watcher every RDS_SENTINEL_POLL_MS */
	int poll_inflight;          /* a poll's answer is awaited */

	int watch;                  /* this rds is a watcher: PING handshake, quiet logs */
};


/* rds.c */
void rds_on_timer(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg);
void rds_attach(rds_t *self, redisAsyncContext *ac, redisConnectCallback *on_connect,
		redisDisconnectCallback *on_disconnect);
void rds_connect(rds_t *self);
void rds_lost(rds_t *self, const char *reason, int refused);
void rds_fail(rds_t *self, int refused, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* rds_sentinel.c */
int rds_sentinel_configure(rds_t *self, const struct rds_config *cfg);
void rds_sentinel_round(rds_t *self);
void rds_sentinel_on_timer(rds_t *self);
int rds_sentinel_lost(rds_t *self);
void rds_sentinel_up(rds_t *self, long long down_ms);
void rds_sentinel_free_context(rds_t *self);
void rds_sentinel_destroy(rds_t *self);
int rds_create_watcher(su_root_t *root, const char *address, rds_t **out);

#endif
