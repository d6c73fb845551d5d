/*
 * config — the daemon's configuration, read once by the master with
 * libconfig (Debian's libconfig-dev), validated completely before anything
 * starts, and inherited by the workers through fork().
 *
 * Every key has one name used everywhere: in etc/b2bua.conf, in this struct,
 * in the README and in log lines.  A rejected file is reported as
 *
 *   /etc/b2bua.conf:12: sip_port: must be between 1 and 65535
 *
 * i.e. file, line and key, then what is wrong.  Unknown keys are errors too
 * (a typo must not silently fall back to a default).
 */
#ifndef B2BUA_CONFIG_H
#define B2BUA_CONFIG_H

#include <limits.h>
#include <stddef.h>

#include "b2bua/digest.h"
#include "b2bua/log.h"

#define CONFIG_MAX_ROUTES   256
#define CONFIG_MAX_WORKERS  64
#define CONFIG_MAX_TRUSTED  64
#define CONFIG_MAX_LISTEN   4   /* addresses in listen (and advertise) */
/* auth_algorithms: one challenge per digest algorithm b2bua knows (enum digest_alg). */
#define CONFIG_MAX_AUTH_ALGORITHMS 2
/* redis_sentinels: at most this many, each "ip:port" shorter than this. */
#define CONFIG_MAX_SENTINELS 8
#define CONFIG_SENTINEL_MAX  64

/* One static route: a Request-URI user that starts with `prefix` goes to
 * `target` (a SIP URI, e.g. "sip:127.0.0.1:5080;transport=udp").  The
 * longest matching prefix wins; an empty prefix matches every user. */
struct config_route {
	char prefix[64];
	char target[256];
};

/* A source that skips digest authentication (a carrier trunk): an address
 * with an optional prefix length, "192.0.2.0/24", "2001:db8::1". */
struct config_trusted {
	char text[64];                 /* as written, for logs */
	int family;                    /* AF_INET or AF_INET6 */
	unsigned char addr[16];        /* network byte order; IPv4 in the first 4 bytes */
	int prefix_len;                /* 0..32 or 0..128 */
};

/* untrusted_invite: what an INVITE gets that is neither from a trusted
 * source, nor authenticated, nor for a local user (worker/b2b_policy.c). */
enum config_untrusted {
	CONFIG_UNTRUSTED_CHALLENGE = 0, /* "challenge": 407, a subscriber may authenticate */
	CONFIG_UNTRUSTED_REJECT,        /* "reject": 403 at once */
};

/* transports: the SIP transports the public and own ports listen on.  UDP
 * is always there; TCP is the first slice of issue 11 (docs/architecture.md,
 * "Connections: TCP and TLS"). */
#define CONFIG_TP_UDP 1u
#define CONFIG_TP_TCP 2u
#define CONFIG_TP_TLS 4u

/* tls_min_version: TLS's own protocol version numbers (as OpenSSL's
 * TLS1_2_VERSION, TLS1_3_VERSION). */
#define CONFIG_TLS_1_2 0x0303
#define CONFIG_TLS_1_3 0x0304

struct config {
	char path[PATH_MAX];           /* the file it was read from */

	/* identity */
	char node_id[32];              /* node_id: [A-Za-z0-9-], unique per host, in Call-IDs and tags */
	int host_lease;                /* host_lease: ms a host's heartbeat lease lasts (hosts.h) */

	/* processes */
	int workers;                   /* workers: 1..CONFIG_MAX_WORKERS; 0 in the file = one per CPU (resolved on load) */
	int drain_timeout;             /* drain_timeout: seconds calls may take to end after SIGTERM */

	/* SIP */
	/* listen: the IPv4/IPv6 addresses the SIP ports bind to, each with its
	 * own sockets (a string in the file is a list of one); advertise[i]:
	 * the host put in the Contact of a leg on listen[i] (default: listen[i]) */
	char listen[CONFIG_MAX_LISTEN][64];
	char advertise[CONFIG_MAX_LISTEN][64];
	size_t n_listen;               /* entries in listen and advertise, 1..CONFIG_MAX_LISTEN */
	int sip_port;                  /* sip_port: the public port, shared by all workers (SO_REUSEPORT) */
	int worker_port_base;          /* worker_port_base: worker i also binds worker_port_base + i */
	int udp_rcvbuf;                /* udp_rcvbuf: SO_RCVBUF bytes for SIP sockets */
	char socket_io[8];             /* socket_io: "auto" | "ring" | "poll" (worker/dgram.h) */
	unsigned transports;           /* transports: CONFIG_TP_* bits the SIP ports listen on */
	int max_forwards;              /* max_forwards: Max-Forwards put on B-legs when the A-leg had none */
	int invite_timeout;            /* invite_timeout: seconds without a final answer from the callee before 408 */
	int max_call_duration;         /* max_call_duration: seconds an answered call may last, 0 = no limit */
	int call_rest_after;           /* call_rest_after: seconds of quiet before a call frees its dialogs, 0 = never */
	int session_expires;           /* session_expires: RFC 4028 session interval we offer, s; 0 = off */
	int min_se;                    /* min_se: shortest session interval we accept (else 422), s */

	/* TLS, when transports has "tls" (b2bua/config_tls.c, worker/b2b_tls.c) */
	int tls_port;                  /* tls_port: the public TLS port, shared by all workers */
	int tls_worker_port_base;      /* tls_worker_port_base: worker i's own TLS port is this + i */
	char tls_certificate[PATH_MAX]; /* tls_certificate: PEM certificate of the TLS ports */
	char tls_key[PATH_MAX];        /* tls_key: PEM private key of tls_certificate */
	char tls_ca_file[PATH_MAX];    /* tls_ca_file: PEM CAs a peer's certificate must chain to */
	int tls_verify_peer;           /* tls_verify_peer: peers must show a certificate of tls_ca_file */
	int tls_min_version;           /* tls_min_version: CONFIG_TLS_1_2 | CONFIG_TLS_1_3 */

	/* call table */
	unsigned call_capacity;        /* call_capacity: concurrent calls; beyond it new INVITEs get 503 */

	/* overload control (worker/b2b_overload.c) */
	int overload_queue_delay_ms;   /* overload_queue_delay_ms: oldest datagram waiting longer: shed; 0 = off */
	int overload_setup_calls;      /* overload_setup_calls: calls not yet answered, at most; 0 = no limit */
	int overload_retry_after;      /* overload_retry_after: Retry-After (s) of the overload 503 */

	/* TCP and TLS connections, per worker (worker/conn.c) */
	int tcp_idle_timeout;          /* tcp_idle_timeout: s a connection may stay silent between messages */
	int tcp_message_timeout;       /* tcp_message_timeout: s from a message's first byte to its last */
	int tcp_max_connections;       /* tcp_max_connections: accepted connections a worker keeps open */
	int tcp_max_per_source;        /* tcp_max_per_source: ... from one source IP address */

	/* operations */
	char cli_socket[PATH_MAX];     /* cli_socket: Unix socket of the CLI, created mode 0600 */
	enum log_level log_level;      /* log_level: error | warn | info | debug */
	char metrics_address[64];      /* metrics_address: "ip:port" of /metrics; "" = off */

	/* registrar and authentication */
	char domain[128];              /* domain: the SIP domain whose users we serve; default = advertise */
	char realm[128];               /* realm: digest realm in challenges; default = domain */
	char auth_secret[128];         /* auth_secret: nonce key shared by all hosts; "" = random per start */
	int nonce_ttl;                 /* nonce_ttl: seconds a nonce stays fresh (then stale=true) */
	size_t n_auth_algorithms;      /* auth_algorithms: [ "MD5" ]: the challenges of a 401/407, */
	enum digest_alg auth_algorithms[CONFIG_MAX_AUTH_ALGORITHMS]; /* in order; only these are verified */
	int register_min_expires;      /* register_min_expires: below it 423 Interval Too Brief */
	int register_default_expires;  /* register_default_expires: when REGISTER names none */
	int register_max_expires;      /* register_max_expires: longer requests are cut to it */
	int auth_fail_limit;           /* auth_fail_limit: failed attempts per source address ... */
	int auth_fail_window;          /* auth_fail_window: ... per this many seconds, then 403 */
	size_t n_trusted;              /* trusted: ( "192.0.2.0/24", ... ) sources that skip auth */
	struct config_trusted trusted[CONFIG_MAX_TRUSTED];

	/* subscribers behind NAT (worker/keepalive.c) */
	int nat_keepalive_interval;    /* nat_keepalive_interval: s between OPTIONS to a binding, 0 = off */

	/* admission of INVITEs and per-source rate limits (worker/b2b_policy.c) */
	enum config_untrusted untrusted_invite; /* untrusted_invite: "challenge" (407) | "reject" (403) */
	int allow_unauthenticated_to_local; /* allow_unauthenticated_to_local: anyone may call a local user */
	int rate_limit_invite;         /* rate_limit_invite: INVITEs per second per source, 0 = off */
	int rate_limit_invite_burst;   /* rate_limit_invite_burst: INVITEs a source may send at once */
	int rate_limit_register;       /* rate_limit_register: REGISTERs per second per source, 0 = off */
	int rate_limit_register_burst; /* rate_limit_register_burst: REGISTERs a source may send at once */

	/* Redis: subscribers, location service, CDRs */
	char redis_address[256];       /* redis_address: "unix:/path" or "host:port" */
	char redis_password[128];      /* redis_password: AUTH password, "" = none */
	int redis_db;                  /* redis_db: database number (SELECT) */
	char redis_prefix[64];         /* redis_prefix: put before every key, e.g. "b2bua:" */
	int redis_timeout;             /* redis_timeout: ms a command may wait for its reply */
	/* Redis through Sentinel: when n_redis_sentinels > 0 the primary is
	 * asked of these and redis_address is not used. */
	size_t n_redis_sentinels;      /* redis_sentinels: ( "ip:port", ... ) */
	char redis_sentinels[CONFIG_MAX_SENTINELS][CONFIG_SENTINEL_MAX];
	char redis_master_name[64];    /* redis_master_name: the master the sentinels monitor */
	int redis_wait_replicas;       /* redis_wait_replicas: replicas a CDR must reach (WAIT), 0 = off */
	int redis_wait_timeout;        /* redis_wait_timeout: ms one WAIT for them may take */

	/* call detail records and forwarding */
	char cdr_stream[64];           /* cdr_stream: Redis Stream of CDRs (after redis_prefix) */
	char cdr_spool_dir[PATH_MAX];  /* cdr_spool_dir: where CDRs wait while Redis is down */
	int no_answer_timeout;         /* no_answer_timeout: s before forward-on-no-answer, by default */
	int forward_max_hops;          /* forward_max_hops: longest forwarding chain */

	/* routing */
	size_t n_routes;               /* routes: ( { prefix = "..."; target = "sip:..."; }, ... ) */
	struct config_route routes[CONFIG_MAX_ROUTES];
};

struct sockaddr;

/* Every listen address with `port`, for the logs: "192.0.2.1:5060, [::1]:5060"
 * (an IPv6 one in brackets); cut to `size`. */
void config_listen_text(const struct config *cfg, int port, char *buf, size_t size);

/* Is this source address inside one of cfg->trusted?  1 or 0. */
int config_is_trusted(const struct config *cfg, const struct sockaddr *sa);

/* Fill *cfg with the built-in defaults (what an empty file gives). */
void config_defaults(struct config *cfg);

/*
 * Read and validate `path` into *cfg.  Returns 0, or a negative errno-style
 * code with a one-line, human-readable reason in err ("file:line: key: why").
 * *cfg is only meaningful when 0 is returned.
 */
int config_load(const char *path, struct config *cfg, char *err, size_t errlen);

#endif
