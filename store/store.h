/*
 * store — the subscriber store: the one module that knows how b2bua keeps
 * its data in Redis.  Key names, hash fields, Lua scripts and the JSON of a
 * binding exist here and nowhere else; docs/redis-schema.md describes them.
 *
 * Design note.  Two sides speak the one schema:
 *
 *   - the asynchronous side (store_async.c), for workers: each function
 *     queues one command (one Lua script where atomicity matters) on the
 *     worker's rds connection and answers through a callback on the
 *     worker's loop; nothing blocks.  It knows no SIP: the registrar turns
 *     its answers into responses.
 *   - the synchronous side (store_sync.c, store_query.c), for the
 *     management process that serves b2bua-cli: each call opens a hiredis
 *     connection, runs its commands with bounded waits (1 s to connect, 1 s
 *     per reply, STORE_LIST_MAX_MS for a whole user list), closes it and
 *     hands back plain C structs.  A failure is a negative errno and a
 *     one-line text for the operator ("no such user bob", "redis
 *     unix:/run/redis.sock: cannot connect: Connection refused"); formatting
 *     tables or JSON is the CLI's business.
 *
 * The pure parts (store.c: the address parser, the key names and the
 * reading of a sentinel's answer; store_lua.c: every script) need nothing
 * but libc (and hiredis's reply struct, a header), so config validation
 * uses the same address parser as both connections, and both connections
 * read a sentinel the same way.
 *
 * CLI command -> store function
 *
 *   user add NAME ...                  store_user_add
 *   user passwd NAME ...               store_user_passwd
 *   user set NAME ...                  store_user_set
 *   user del NAME                      store_user_del
 *   user enable NAME / disable NAME    store_user_set_enabled (1 / 0)
 *   user forward NAME --always ...     store_user_forward_set
 *   user forward NAME --clear          store_user_forward_clear
 *   user show NAME                     store_user_show, store_bindings_free
 *   user list                          store_user_list, free()
 *   cdr tail [N]                       store_cdr_tail, store_cdr_entries_free
 */
#ifndef B2BUA_STORE_H
#define B2BUA_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "b2bua/config.h"
#include "b2bua/digest.h"

/* ------------------------------------------------------------ addresses */

/* sizeof(((struct sockaddr_un *)0)->sun_path) on Linux. */
#define STORE_UNIX_PATH_MAX 108
/* INET6_ADDRSTRLEN */
#define STORE_HOST_MAX      46

/* Where Redis listens: a Unix socket, or an IP literal and a port. */
struct store_address {
	char unix_path[STORE_UNIX_PATH_MAX];   /* "" for TCP */
	char host[STORE_HOST_MAX];             /* IPv4 or IPv6 literal, no brackets */
	int port;                              /* 1..65535 for TCP */
};

/*
 * Parse a redis_address: "unix:/absolute/path" (shorter than 108 bytes),
 * "a.b.c.d:port" or "[ipv6]:port".  Host names are refused: hiredis would
 * resolve one with a blocking lookup on every reconnect.  Returns 0 and
 * *out (out may be NULL to only check), or -EINVAL with *why (why may be
 * NULL) the reason for a configuration error, e.g. "no port: write
 * \"host:port\"".
 */
int store_address_parse(const char *text, struct store_address *out, const char **why);

/* ------------------------------------------------------------ Sentinel */

/* "[v6]:65535" and its NUL fit in this. */
#define STORE_ADDRESS_TEXT_MAX (STORE_HOST_MAX + 8)

/*
 * Parse one entry of redis_sentinels: redis_address's TCP form only
 * ("a.b.c.d:port" or "[ipv6]:port"; Sentinel has no Unix sockets, and names
 * would block).  Same contract as store_address_parse().
 */
int store_sentinel_parse(const char *text, struct store_address *out, const char **why);

/* "a.b.c.d:port" or "[ipv6]:port" of a TCP address, for log lines. */
void store_address_format(const struct store_address *a, char *out, size_t size);

struct redisReply;

/*
 * Interpret a sentinel's answer to SENTINEL get-master-addr-by-name NAME:
 * an array of two strings, an IP literal and a port.  Returns 0 and *out,
 * or -ENOENT (nil: the sentinel monitors no master of that name) or
 * -EBADMSG (an error reply, another shape, a name instead of an address, a
 * bad port) with why[whylen] saying what was wrong, for a log line.  Only
 * reads the reply struct (no hiredis call), so it stays a pure part.
 */
int store_sentinel_answer(const struct redisReply *r, struct store_address *out, char *why,
			  size_t whylen);

/* Is this ROLE reply that of a primary ("master" first)?  1 or 0; *role
 * (may be NULL) is a short text for a log line ("slave", "sentinel", ...). */
int store_role_is_master(const struct redisReply *r, const char **role);

/* ------------------------------------------------------------ key names */

/* Room for every key b2bua builds (a prefix of 63 bytes and a name of 64). */
#define STORE_KEY_MAX 256

enum store_key_kind {
	STORE_KEY_USER,          /* <p>user:<name>      the subscriber hash */
	STORE_KEY_LOCATION,      /* <p>loc:<name>       its bindings */
	STORE_KEY_ACTIVE,        /* <p>active:<name>    its calls now up (max_calls) */
	STORE_KEY_NONCE_COUNT,   /* <p>nc:<nonce>:<nc>  a nonce-count already used */
	STORE_KEY_AUTH_FAIL,     /* <p>authfail:<ip>    failed authentications of a source */
	STORE_KEY_CALLS,         /* <p>calls:<node_id>  a host's answered calls, by CDR id */
	STORE_KEY_HOST,          /* <p>host:<node>      a host's lease and history (hosts) */
	STORE_KEY_HOST_CLAIM,    /* <p>hostclaim:<node> who is closing that host's calls */
	STORE_KEY_CALLS_BAD,     /* <p>callsbad:<node>  malformed records, kept aside */
};

/* The set of every host's node_id "<prefix>hosts".  0, or -ENAMETOOLONG. */
int store_hosts_key(const char *prefix, char *out, size_t size);

/* "<prefix><kind>:<id>" into out.  0, or -ENAMETOOLONG when it does not fit. */
int store_key(const char *prefix, enum store_key_kind kind, const char *id, char *out,
	      size_t size);

/* The CDR stream "<prefix><cdr_stream>".  0, or -ENAMETOOLONG. */
int store_cdr_stream_key(const char *prefix, const char *cdr_stream, char *out, size_t size);

/* A CDR id's de-duplication key "<stream key>:seen:<id>".  0, or -ENAMETOOLONG. */
int store_cdr_seen_key(const char *stream_key, const char *id, char *out, size_t size);

/* ------------------------------------------------------------ bindings */

/*
 * One registration of a subscriber, as the REGISTER script stores it in the
 * location hash (field: the Contact URI; value: a JSON object).  Strings
 * are allocated ("" when the JSON lacks them); store_binding_clear frees
 * them.
 */
struct store_binding {
	char *contact;           /* the registered Contact URI */
	int64_t expires_ms;      /* absolute expiry, ms since the epoch */
	int64_t registered_ms;   /* last refreshed */
	char *call_id;           /* of the REGISTER that made it */
	int64_t cseq;
	char *source;            /* "ip:port" it came from */
	char *transport;         /* "udp", "tcp", "tls" */
	char *user_agent;
	char *host;              /* node_id of the host that took it */
	int64_t worker;          /* and its worker index */
	char *host_address;      /* that host's SIP address "ip:port" (its public
				  * port): where other hosts send calls for this
				  * binding ("" for a binding stored before) */
};

/*
 * Decode one stored binding (`json`, `len` bytes) of `contact` as of
 * now_ms.  Bytes that are not UTF-8 (a User-Agent may hold anything) become
 * '?' rather than hiding the registration.  Returns 0 and *out,
 * -EBADMSG when it is no JSON object, -ESTALE when it expired (expires <=
 * now_ms), -ENOMEM.
 */
int store_binding_decode(const char *contact, const char *json, size_t len, uint64_t now_ms,
			 struct store_binding *out);
void store_binding_clear(struct store_binding *b);

/* ------------------------------------------------------------ asynchronous side (workers) */

/*
 * Every function below queues one command on `rds` (worker/rds.h, keys
 * prefixed with rds_prefix()) and returns 0, or a negative errno without
 * calling back (-ENOTCONN: Redis is down).  A callback runs exactly once
 * on the worker's loop, with err 0, or -EIO when the connection dropped or
 * Redis answered something unexpected.  Pointers handed to a callback are
 * valid during the callback only.
 */
struct rds;

/* The digest authentication data of one subscriber and one source address. */
struct store_auth {
	long long failures;      /* failed authentications of the source in the window */
	int known;               /* the subscriber exists */
	int enabled;             /* ... and is enabled */
	const char *ha1;         /* its HA1 for the asked algorithm; NULL when unknown */
};
typedef void store_auth_f(void *arg, int err, const struct store_auth *auth);

/* HA1 of `user` for `alg`, its enabled flag and the failures of `source_ip`. */
int store_auth_get(struct rds *rds, const char *user, const char *source_ip,
		   enum digest_alg alg, store_auth_f *done, void *arg);

/* Count a failed authentication of `source_ip`, kept window_s seconds (fire and forget). */
int store_auth_fail(struct rds *rds, const char *source_ip, int window_s);

/*
 * Claim a nonce-count (digest_replay_key()) for ttl_s seconds: done(arg,
 * 0, 1) when it was free, done(arg, 0, 0) when it was used before (a
 * replay).
 */
typedef void store_claim_f(void *arg, int err, int claimed);
int store_nonce_claim(struct rds *rds, const char *replay_key, int ttl_s, store_claim_f *done,
		      void *arg);

/* One REGISTER's update of an AOR's bindings. */
struct store_register_req {
	const char *user;             /* the AOR's user */
	const char *replay_key;       /* digest_replay_key() to claim; "" or NULL: none */
	int nonce_ttl;                /* seconds the claim lasts */
	const char *call_id;
	uint32_t cseq;
	const char *source;           /* "ip:port" */
	const char *transport;        /* "udp", "tcp", "tls" */
	const char *user_agent;       /* "" when none */
	const char *host;             /* node_id */
	unsigned worker;
	const char *host_address;     /* this host's SIP address "ip:port" */
	const char *flow;             /* a REGISTER read on a connection: its token
				       * (worker/flow.h); "" or NULL: none (a datagram) */
	unsigned flow_worker;         /* the worker that holds that connection */
	int remove_all;               /* Contact: * with Expires: 0 */
	unsigned n_contacts;
	const char *const *contacts;  /* Contact URIs ... */
	const int *expires;           /* ... and their seconds; 0 removes */
};

enum store_register_result {
	STORE_REGISTERED = 0,         /* done: the bindings left follow */
	STORE_REPLAYED,               /* the nonce-count was used before: nothing changed */
	STORE_OUT_OF_ORDER,           /* same Call-ID with a CSeq not higher: nothing changed */
};

/* A binding left after a REGISTER, with its remaining lifetime. */
struct store_binding_left {
	const char *contact;
	long long expires_in_s;
};
typedef void store_register_f(void *arg, int err, enum store_register_result result,
			      const struct store_binding_left *left, size_t n_left);

/* Atomically: claim the nonce-count, check Call-ID/CSeq order, update the bindings. */
int store_register(struct rds *rds, const struct store_register_req *req,
		   store_register_f *done, void *arg);

/* Longest forward target and Contact URI the worker side hands back, NUL included. */
#define STORE_URI_MAX 256

/* A subscriber's call forwarding (user hash fields fwd_*); "" when unset. */
struct store_forward {
	char always[STORE_URI_MAX];
	char busy[STORE_URI_MAX];
	char noanswer[STORE_URI_MAX];
	int noanswer_timeout;         /* seconds; 0: the config's no_answer_timeout */
};

enum store_lookup_result {
	STORE_FOUND = 0,              /* contacts follow, newest registration first */
	STORE_UNKNOWN,                /* no such subscriber, or disabled */
	STORE_NOT_REGISTERED,         /* known, no unexpired binding */
	STORE_AT_LIMIT,               /* known and registered, at its max_calls */
};

/* One binding as a call needs it: where to send, and who holds the NAT
 * binding (see docs/architecture.md, "Subscribers behind NAT").  Strings
 * are "" when the binding predates them. */
struct store_contact {
	const char *uri;              /* the registered Contact */
	const char *source;           /* "ip:port" the REGISTER came from */
	const char *host;             /* node_id of the host that took it */
	const char *host_address;     /* that host's SIP address "ip:port" */
	int host_lost;                /* that host's lease ran out, or it stopped */
	const char *transport;        /* "udp", "tcp", "tls" ("udp" when it predates them) */
	const char *flow;             /* its connection's token, "" when it has no flow */
	int flow_worker;              /* the worker holding that connection, -1: none */
};

/*
 * The contacts and forwarding of `user` in one round trip.  With a
 * `call_key` (NULL or "": none) and no fwd_always, a FOUND answer also
 * counted the call in the user's active-calls set, unless it is at its
 * max_calls (AT_LIMIT).  fwd is NULL for UNKNOWN.
 */
typedef void store_lookup_f(void *arg, int err, enum store_lookup_result result,
			    const struct store_contact *contacts, unsigned n_contacts,
			    const struct store_forward *fwd);
int store_lookup(struct rds *rds, const char *user, const char *call_key,
		 store_lookup_f *done, void *arg);

/*
 * Count a call against the user's max_calls: done(arg, 0, 1) counted,
 * done(arg, 0, 0) at the limit.  Calls counted longer than a day ago are
 * dropped first as a crashed worker's left-overs.
 */
typedef void store_call_begin_f(void *arg, int err, int counted);
int store_call_begin(struct rds *rds, const char *user, const char *call_key,
		     store_call_begin_f *done, void *arg);

/* Uncount a call (fire and forget). */
int store_call_end(struct rds *rds, const char *user, const char *call_key);

/*
 * Remove the binding `contact` of `user` if it is still the one the
 * REGISTER with `call_id` and `cseq` made (a keepalive found it dead):
 * done(arg, 0, 1) removed, done(arg, 0, 0) refreshed or gone meanwhile.
 */
typedef void store_binding_drop_f(void *arg, int err, int removed);
int store_binding_drop(struct rds *rds, const char *user, const char *contact,
		       const char *call_id, uint32_t cseq, store_binding_drop_f *done, void *arg);

/* What became of one CDR sent to the stream. */
enum store_cdr_outcome {
	STORE_CDR_STORED,             /* added now */
	STORE_CDR_DUP,                /* its id was stored before: nothing added */
	STORE_CDR_LOST,               /* the connection dropped first: maybe stored, maybe not */
	STORE_CDR_RETRY,              /* Redis refuses for now (LOADING, OOM, READONLY, ...) */
	STORE_CDR_REJECT,             /* Redis refuses this record */
};

/* error: Redis's text for RETRY and REJECT ("unexpected reply" when it gave none). */
typedef void store_cdr_f(void *arg, enum store_cdr_outcome outcome, const char *error);

/* Keep an answered call's record (cdr_record_to_text) in <p>calls:<node>
 * under its CDR id (fire and forget: one HSET); its CDR deletes it. */
int store_call_record(struct rds *rds, const char *node, const char *id, const char *text,
		      size_t len);

/*
 * Add one CDR (n field/value pairs, its unique `id`) to the stream
 * `stream_key` (store_cdr_stream_key()) unless that id was stored in the
 * last 7 days, and in the same script delete the call's record, field `id`
 * of <p>calls:<host> (`host`: the CDR's node_id).  A dup refreshes the seen
 * key's TTL, a write that replicates, so that a WAIT after it (store_wait)
 * proves the first copy reached the replicas.  done may be called with
 * LOST when the connection drops.
 */
int store_cdr_add(struct rds *rds, const char *stream_key, const char *id, const char *host,
		  int n, const char *const *fields, const char *const *values, store_cdr_f *done,
		  void *arg);

/* The answer to WAIT: err 0 and the replicas that acknowledged every write
 * this connection made before it; -ENOTCONN when the connection dropped
 * first, -EIO for an error reply (e.g. the server is a replica now). */
typedef void store_wait_f(void *arg, int err, long long replicas);

/*
 * WAIT replicas timeout_ms on rds: answers once `replicas` replicas
 * acknowledged every write sent on this connection before it, or after
 * timeout_ms with how many did.  The connection answers nothing else
 * meanwhile, so keep timeout_ms well below redis_timeout.  replicas >= 1,
 * timeout_ms >= 1 (0 would mean "forever").
 */
int store_wait(struct rds *rds, int replicas, int timeout_ms, store_wait_f *done, void *arg);

/* ------------------------------------------------------------ synchronous side (management) */

/* The management side's handle: where Redis is, and the realm and stream. */
typedef struct store_sync store_sync_t;

/* Bounds of one synchronous operation. */
#define STORE_REDIS_TIMEOUT_MS 1000   /* to connect, and per reply */
#define STORE_LIST_MAX_MS      3000   /* a whole store_user_list */
#define STORE_SCAN_COUNT       "1000" /* keys looked at per SCAN step */
#define STORE_LIST_BATCH       256    /* users per pipelined round trip */

/* One line for the operator, e.g. "no such user bob". */
#define STORE_ERROR_MAX 400
struct store_error {
	char text[STORE_ERROR_MAX];
};

/*
 * Copy what the management side needs from cfg (redis_address,
 * redis_password, redis_db, redis_prefix, realm, cdr_stream; an empty
 * cdr_stream means "cdr").  Connects to nothing yet.  0, or -ENOMEM.
 */
int store_sync_create(const struct config *cfg, store_sync_t **out);
void store_sync_destroy(store_sync_t *s);
/* A reload changed `realm`: HA1s stored from now on are made for it. */
void store_sync_set_realm(store_sync_t *s, const char *realm);

/* The longest display text and forward target kept in struct store_user
 * (what b2bua-cli accepts); a longer value written by hand is cut there. */
#define STORE_TEXT_MAX 128

/* A subscriber record. */
struct store_user {
	char display[STORE_TEXT_MAX + 1];
	int enabled;
	unsigned long max_calls;             /* 0: no limit */
	uint64_t created_ms;
	char fwd_always[STORE_TEXT_MAX + 1]; /* "" when unset */
	char fwd_busy[STORE_TEXT_MAX + 1];
	char fwd_noanswer[STORE_TEXT_MAX + 1];
	unsigned long fwd_noanswer_timeout;  /* 0: the config's no_answer_timeout */
};

/*
 * Every function below returns 0, or a negative errno with err->text set:
 *   -EINVAL     redis_address is not valid ("redis X: not a valid address")
 *   -ENOTCONN   cannot connect ("redis X: cannot connect: <why>")
 *   -EIO        no reply ("redis X: no answer within 1 s", "... closed the connection")
 *   -EPROTO     an error reply ("redis X: EVAL: <Redis's text>")
 *   -EBADMSG    an answer of the wrong shape ("redis X: unexpected answer to HGETALL")
 *   -ENOENT     "no such user NAME";  -EEXIST "user NAME exists"
 *   -ETIMEDOUT  store_user_list past STORE_LIST_MAX_MS
 *   -ENOMEM
 * Names, passwords and values are checked by the caller (cli_proto.h); the
 * store only stores them.  The password goes no further than the two HA1s
 * (MD5 and SHA-256 of name:realm:password) that are stored.
 */

/* A new subscriber, enabled; a location hash left by an earlier one of the name is dropped. */
int store_user_add(store_sync_t *s, const char *name, const char *password,
		   const char *display, unsigned long max_calls, struct store_error *err);

int store_user_passwd(store_sync_t *s, const char *name, const char *password,
		      struct store_error *err);

/* A subscriber's display text and call limit; NULL keeps one as it is
 * (-EINVAL when both are NULL). */
int store_user_set(store_sync_t *s, const char *name, const char *display,
		   const unsigned long *max_calls, struct store_error *err);

int store_user_set_enabled(store_sync_t *s, const char *name, int enabled,
			   struct store_error *err);

/* The subscriber and its bindings go. */
int store_user_del(store_sync_t *s, const char *name, struct store_error *err);

/* The forwarding fields to set; NULL (0 for the timeout) leaves one as it is. */
struct store_forward_change {
	const char *always;
	const char *busy;
	const char *noanswer;
	unsigned noanswer_timeout;
};

/* Set the given fields in one script (-EINVAL when none is given). */
int store_user_forward_set(store_sync_t *s, const char *name,
			   const struct store_forward_change *change, struct store_error *err);

/* Delete all four forwarding fields. */
int store_user_forward_clear(store_sync_t *s, const char *name, struct store_error *err);

/*
 * A subscriber and its unexpired bindings, newest registration first (the
 * Contact breaks ties), both read in one round trip; garbled bindings are
 * left out.  *bindings is for store_bindings_free (also when *n is 0).
 */
int store_user_show(store_sync_t *s, const char *name, struct store_user *user,
		    struct store_binding **bindings, size_t *n, struct store_error *err);
void store_bindings_free(struct store_binding *bindings, size_t n);

/* One line of the subscriber list. */
struct store_user_row {
	char name[STORE_KEY_MAX];
	char display[STORE_TEXT_MAX + 1];
	int enabled;
	unsigned long max_calls;
	unsigned registrations;              /* unexpired bindings */
};

/* Which key suffixes are subscriber names (cli_proto_name_ok): 1 to list it. */
typedef int store_name_ok_f(const char *name);

/*
 * Every subscriber, sorted by name: SCAN for <p>user:* in steps of
 * STORE_SCAN_COUNT, then the records and binding counts STORE_LIST_BATCH at
 * a time, the whole within STORE_LIST_MAX_MS.  Keys whose suffix name_ok
 * refuses are not subscribers; a user deleted meanwhile is left out.
 * *rows is the caller's to free() (also when *n is 0).
 */
int store_user_list(store_sync_t *s, store_name_ok_f *name_ok, struct store_user_row **rows,
		    size_t *n, struct store_error *err);

/* One field of a CDR as the stream holds it. */
struct store_cdr_field {
	char *name;
	char *value;
};

/* One entry of the CDR stream. */
struct store_cdr_entry {
	char *stream_id;                     /* the entry's id in the stream */
	struct store_cdr_field *fields;      /* in the stream's order */
	size_t n_fields;
};

/* The value of a field of an entry, or NULL. */
const char *store_cdr_field(const struct store_cdr_entry *e, const char *name);

/*
 * The `count` latest CDRs (XREVRANGE), oldest first.  *entries is for
 * store_cdr_entries_free (also when *n is 0).
 */
int store_cdr_tail(store_sync_t *s, unsigned count, struct store_cdr_entry **entries,
		   size_t *n, struct store_error *err);
void store_cdr_entries_free(struct store_cdr_entry *entries, size_t n);

/* ------------------------------------------------------------ hosts (store_hosts.c) */

/* A host as <p>host:<node> describes it; times are Redis's, in ms. */
struct store_host {
	char node[32];
	char sip[80];                 /* its SIP address "ip:port" */
	uint64_t epoch;               /* its life: changes when it restarts */
	uint64_t started_ms;          /* first heartbeat of this life */
	uint64_t beat_ms;             /* last heartbeat */
	uint64_t lease_ms;
	uint64_t calls;               /* answered calls' records in <p>calls:<node> */
	uint64_t bad;                 /* malformed records kept aside */
	char closed_by[32];           /* who closed the calls of its last lost life, "" */
	uint64_t closed_ms;
	uint64_t closed_calls;
	uint64_t closed_epoch;        /* that life's epoch (== epoch: this life is lost) */
	uint64_t stopped_epoch;       /* == epoch: this life stopped on purpose, no call left */
	uint64_t stopped_ms;
	int prev_open;                /* its previous life left records not closed yet */
	char prev_closed_by[32];      /* who closed its previous life's leftovers, "" */
	uint64_t prev_closed_ms;
	uint64_t prev_closed_calls;
};

/* Our heartbeat: the lease of `node` in this life (`epoch`), by Redis's clock. */
int store_host_beat(store_sync_t *s, const char *node, uint64_t epoch, const char *sip,
		    unsigned lease_ms, struct store_error *err);

/* This life of `node` stops on purpose: 1 when noted (no call left: its
 * lease running out is then no loss), 0 when calls are left. */
int store_host_stop(store_sync_t *s, const char *node, uint64_t epoch, struct store_error *err);

/* Every known host, sorted by node_id, and Redis's time now (one round
 * trip).  *hosts is the caller's to free() (also when *n is 0). */
int store_hosts_list(store_sync_t *s, struct store_host **hosts, size_t *n, uint64_t *now_ms,
		     struct store_error *err);

/* What a claim of another host's calls gives its claimant. */
struct store_host_claim {
	int dead;                     /* its lease ran out; else its previous life's leftovers */
	uint64_t epoch, beat_ms;      /* its life and last heartbeat */
	uint64_t prev_epoch, prev_beat_ms;   /* its previous life's */
	uint64_t now_ms;
};

/* Claim `node`'s calls for `me` for ttl_ms when there is work: 1 and *c,
 * or 0 (nothing to do, or another host has the claim). */
int store_host_claim(store_sync_t *s, const char *node, const char *me, unsigned ttl_ms,
		     struct store_host_claim *c, struct store_error *err);

/* One answered call's record, as stored. */
struct store_call_rec {
	char *id;                     /* the CDR id */
	char *text;
	size_t len;
};

/* Every record of `node`.  *recs for store_call_recs_free (also when *n is 0). */
int store_call_recs(store_sync_t *s, const char *node, struct store_call_rec **recs, size_t *n,
		    struct store_error *err);
void store_call_recs_free(struct store_call_rec *recs, size_t n);

/* A malformed record goes to <p>callsbad:<node>. */
int store_call_rec_aside(store_sync_t *s, const char *node, const char *id,
			 struct store_error *err);

/* One call of a lost host to close: its active entries, then its CDR. */
struct store_close_item {
	const char *id;               /* the CDR id (the record's field) */
	const char *const *names;     /* subscribers whose active:<name> holds it */
	unsigned n_names;
	int n;                        /* CDR field/value pairs (cdr_encode) */
	const char *const *fields;
	const char *const *values;
	enum store_cdr_outcome outcome;   /* out: STORED, DUP or REJECT (see error) */
	char error[128];
};

/* Close `n` calls of `node` in one round trip: ZREM of each active entry,
 * then the CDR through the CDR script (idempotent by id), which deletes
 * the record in the same step. */
int store_host_close(store_sync_t *s, const char *node, struct store_close_item *items,
		     size_t n, struct store_error *err);

/* The claim is done: note who closed how many calls and release it. */
int store_host_closed(store_sync_t *s, const char *node, const char *me, uint64_t epoch,
		      int dead, uint64_t n_closed, struct store_error *err);

#endif
