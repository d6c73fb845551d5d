/*
 * rds — a worker's Redis connection: hiredis's async API on the worker's
 * io_uring loop, never a blocking call.
 *
 * Design note.  The hiredis context's socket is a Sofia wait object on the
 * worker's root (su_root_register), so it becomes a poll on the same ring
 * as everything else; the connect timeout and the reconnect backoff are
 * Sofia timers on the same root.  rds owns the connection's whole life:
 *
 *   connecting --AUTH (when a password is set), SELECT db, ROLE answered
 *               "master"--> up
 *   up --socket error, EOF--> waiting --backoff 100 ms .. 5 s--> connecting
 *   connecting --refused, AUTH/SELECT error, ROLE not master, 2 s timeout-->
 *               waiting
 *   up --a command without its reply after redis_timeout--> waiting
 *   up --any reply READONLY... or MASTERDOWN...--> waiting, no backoff
 *
 * A server is used only while ROLE says master: a replica is never written
 * to (its READONLY errors would be the only sign, and a demoted primary's
 * writes are wiped when it resyncs).
 *
 * Sentinel mode (cfg->n_sentinels > 0, redis_address unused).  Before each
 * connect rds asks the sentinels in turn, starting with the one whose
 * primary last came up:
 *
 *   waiting --> asking sentinel i (SENTINEL get-master-addr-by-name NAME,
 *               500 ms for connect and answer)
 *   asking --ip, port--> connecting to that primary (then as above)
 *   asking --nil, error, wrong shape, a name, no answer--> asking i+1
 *   connecting --ROLE not master--> asking i+1
 *   every sentinel tried --> waiting (backoff 100 .. 500 ms)
 *
 * Following a failover: re-discovery, not a +switch-master subscription
 * (a pub/sub connection has replies without commands, which rds refuses on
 * purpose).  A lost or refused connection, and READONLY or MASTERDOWN,
 * send rds back to the sentinels at once.  And since a manual failover
 * leaves the old primary answering "master" until Sentinel reconfigures it
 * (10 s and more; what is written there meanwhile is wiped when it
 * resyncs), a watcher, a second rds on the sentinel that named the
 * primary, asks it every 500 ms; another answer than ours drops the
 * connection and re-discovers at once.  With the backoff bounded at
 * 500 ms, a promotion is followed within 2 s.  A sentinel's trouble is
 * logged once per outage with its address and what was wrong; the connected line names the primary, the sentinel and the
 * master: "redis primary 127.0.0.1:6380 (via sentinel 127.0.0.1:26379,
 * master b2bua): connected".
 *
 * Every command has a deadline (redis_timeout): a server that accepted the
 * connection but does not answer (stopped, hung, swapping) is treated as
 * down, like a closed socket, so nobody waits on it longer than that.  One
 * timer watches the oldest command (replies come in order), not one timer
 * per command.
 *
 * Only "up" takes commands; otherwise a command fails at once with
 * -ENOTCONN and the caller decides what to do (CDRs go to a spool file).
 * Every command's callback runs exactly once: with the reply, or with NULL
 * when the connection drops or rds is destroyed first.
 *
 * Logs: one warning per outage (retries are debug), an error when the
 * server refuses AUTH or SELECT or (without sentinels) is no primary,
 * "redis <address>: connected" when up.
 *
 * rds knows no key and no script: the schema is spoken by the store's
 * asynchronous side (store/store_async.c), on top of this connection.
 */
#ifndef B2BUA_RDS_H
#define B2BUA_RDS_H

#include <stddef.h>

#include <hiredis/hiredis.h>
#include <sofia-sip/su_wait.h>

typedef struct rds rds_t;

/* At most this many sentinels (config.h's CONFIG_MAX_SENTINELS). */
#define RDS_SENTINELS_MAX 8

struct rds_config {
	char address[256];   /* redis_address, as store_address_parse() accepts it;
			      * not used (not even parsed) with sentinels */
	size_t n_sentinels;  /* 0: connect to address; else Sentinel mode */
	char sentinels[RDS_SENTINELS_MAX][64];  /* "ip:port", store_sentinel_parse() */
	char master_name[64];                   /* required with sentinels */
	char password[128];  /* "" for none */
	int db;              /* SELECTed on every (re)connect, >= 0 */
	char prefix[64];     /* key prefix of this deployment, e.g. "b2bua:" */
	int timeout_ms;      /* redis_timeout: a command's deadline; 0 for 1000 ms */
};

/* A command's reply; NULL when the connection dropped (also: no reply
 * within redis_timeout), or rds was closed or destroyed before it came.
 * The reply is freed when the callback returns. */
typedef void rds_reply_f(rds_t *rds, redisReply *reply, void *arg);

/* Called when rds comes up (connected = 1) and when it goes down (0). */
typedef void rds_state_f(rds_t *rds, int connected, void *arg);

/*
 * Check cfg and start connecting on root's loop; reconnects by itself from
 * then on.  Returns 0 and *out, -EINVAL for a bad address, sentinel, master
 * name or db, -ENOMEM.
 * Not being able to connect yet is not an error.
 */
int rds_create(su_root_t *root, const struct rds_config *cfg, rds_t **out);

/*
 * Close the connection and free everything.  Pending commands' callbacks
 * run with NULL (the state callback does not).  May be called from an rds
 * callback: then the rest happens as soon as that callback returns.
 */
void rds_destroy(rds_t *rds);

/*
 * Drop the connection for good: pending commands' callbacks run now with
 * NULL (so whatever waits on Redis gets its answer while its owners still
 * exist), later commands are refused with -ENOTCONN, no reconnect.  The
 * state callback is not called.  For a worker's stop, before the objects
 * the callbacks point to are destroyed; rds_destroy() still frees rds.
 */
void rds_close(rds_t *rds);

/* 1 when commands are taken, 0 otherwise. */
int rds_connected(const rds_t *rds);

/*
 * Queue a command, hiredis format ("SET %s %b", key, value, value_len).
 * cb may be NULL (no reply wanted).  Every command has exactly one reply:
 * no SUBSCRIBE, PSUBSCRIBE or MONITOR.  Returns 0, -ENOTCONN when not up,
 * -EINVAL for an empty or bad format, -ENOMEM.
 */
int rds_command(rds_t *rds, rds_reply_f *cb, void *arg, const char *fmt, ...);

/* The same with arguments as an array; lens may be NULL (C strings). */
int rds_commandargv(rds_t *rds, rds_reply_f *cb, void *arg, int argc, const char **argv,
		    const size_t *lens);

/*
 * Encode a command as RESP (an array of bulk strings: what hiredis's
 * redisFormatCommandArgv makes) into out[0..size).  Returns the length of
 * the whole encoding, like snprintf: when it is size or more, out holds
 * nothing usable and a buffer that large is needed.  lens may be NULL (C
 * strings).  Pure: no allocation, no state.
 */
size_t rds_resp_encode(char *out, size_t size, int argc, const char **argv, const size_t *lens);

/* The key prefix from the config. */
const char *rds_prefix(const rds_t *rds);

/* For log lines: the address from the config, or in Sentinel mode the
 * current (or last) primary's "ip:port" ("master NAME" before the first). */
const char *rds_address(const rds_t *rds);

/* Set (or clear, fn NULL) the state callback, e.g. to replay spooled CDRs. */
void rds_on_state(rds_t *rds, rds_state_f *fn, void *arg);

/*
 * Publish this connection's figures in worker `worker`'s shared counters:
 * SHM_CTR_REDIS_UP (1 while commands are taken) and the round trip of every
 * command answered (SHM_HIST_REDIS).  The worker's main connection only.
 */
struct shm;
void rds_set_counters(rds_t *rds, struct shm *shm, unsigned worker);

#endif
