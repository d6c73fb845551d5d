/*
 * registrar — the registrar and authentication point of one worker
 * (call flows 1-3): REGISTER with digest challenges, the location service in
 * Redis, INVITE authentication of local subscribers, and the lookup of a
 * registered user's contacts for routing.
 *
 * Everything that needs Redis is asynchronous: a function starts the work
 * and the answer comes through a callback on the worker's event loop.  The
 * caller's `arg` must stay valid until the callback ran (b2b keeps a call
 * alive while it waits, see b2b_call_hold()).
 */
#ifndef B2BUA_REGISTRAR_H
#define B2BUA_REGISTRAR_H

#include <sofia-sip/nta.h>
#include <sofia-sip/sip.h>

#include "b2bua/config.h"
#include "b2bua/digest.h"
#include "worker/flow.h"
#include "worker/rds.h"

typedef struct registrar registrar_t;

#define REGISTRAR_MAX_CONTACTS 8
#define REGISTRAR_URI_MAX 256

/* Room for "ip:port" with an IPv6 address in brackets. */
#define REGISTRAR_ADDR_MAX 64

struct registrar_contact {
	char uri[REGISTRAR_URI_MAX];       /* the registered Contact: the INVITE's Request-URI */
	char source[REGISTRAR_ADDR_MAX];   /* "ip:port" ("[v6]:port") its REGISTER came from; "" unknown */
	char host[64];                     /* node_id of the host that took the REGISTER */
	char host_address[REGISTRAR_ADDR_MAX]; /* that host's SIP address "ip:port" */
	int host_lost;                 /* that host is lost or stopped (its lease) */
	char transport[8];             /* "udp", "tcp", "tls": what the REGISTER came over */
	char flow[FLOW_TOKEN_MAX];     /* its connection's token (worker/flow.h); "" none */
	int flow_worker;               /* the worker of `host` holding it; -1 none */
};

struct keepalive;

int registrar_create(const struct config *cfg, rds_t *rds, unsigned worker, registrar_t **out);
void registrar_destroy(registrar_t *reg);
/* After a reload (cfg holds the new configuration): the nonce key again
 * (nonces signed with the old auth_secret are then stale).  NULL: nothing. */
void registrar_reload(registrar_t *reg);

/* Tell the NAT keepalives (worker/keepalive.h) of every binding this worker
 * accepts or removes; NULL: none. */
void registrar_set_keepalive(registrar_t *reg, struct keepalive *ka);

/* Count registrations and failed authentications in worker `worker`'s
 * shared counters (the worker given to registrar_create); NULL: none. */
struct shm;
void registrar_set_counters(registrar_t *reg, struct shm *shm);

/* This host's SIP address as bindings record it ("host_address"): the
 * advertised address and the public port, "ip:port" ("[v6]:port"). */
const char *registrar_host_address(const registrar_t *reg);

/*
 * Subscribers behind NAT (RFC 3581 received/rport), see docs/architecture.md:
 *   registrar_behind_nat: 1 when the binding's `source` ("ip:port", an IPv6
 *     address without brackets) is not the Contact's host:port (5060 when
 *     it names no port): requests for it must go to the source;
 *   registrar_addr_url: "sip:ip:port;transport=udp" of an "ip:port" (brackets
 *     around an IPv6 address), the route_url NTA sends to: 0, or -EINVAL.
 */
int registrar_behind_nat(const char *contact, const char *source);
/* "ip:port" (IPv6 without brackets) of the peer that sent the request into
 * out: 0, or -ENOENT when NTA knows no address (out is then "?:0"). */
int registrar_request_source(nta_incoming_t *irq, char *out, size_t size);
int registrar_addr_url(const char *addr, char *out, size_t size);

/* A REGISTER: answered here, asynchronously (the irq is ours). */
void registrar_on_register(registrar_t *reg, nta_incoming_t *irq, sip_t const *sip);

/* Is this URI in our domain (host == domain)?  Then its user is looked up. */
int registrar_is_local(const registrar_t *reg, url_t const *url);

/*
 * How an INVITE from a source that is not trusted may be admitted (the
 * trusted check is the caller's, b2b_policy.c).  Looks at the request only,
 * never at Redis, so the answer cannot depend on whether a user exists:
 *   REGISTRAR_AUTHENTICATE  its From is one of our users, or it carries
 *                           Proxy-Authorization: registrar_check_invite();
 *   REGISTRAR_TO_LOCAL      for a user of our domain (Request-URI) and
 *                           allow_unauthenticated_to_local is set: it may go
 *                           on without credentials, to that user only;
 *   REGISTRAR_NOT_ADMITTED  anything else (a number of a static route, a
 *                           foreign URI): untrusted_invite decides (407/403).
 */
enum registrar_admission {
	REGISTRAR_AUTHENTICATE,
	REGISTRAR_TO_LOCAL,
	REGISTRAR_NOT_ADMITTED,
};
enum registrar_admission registrar_invite_admission(const registrar_t *reg, sip_t const *sip);

/*
 * The challenges of one 401/407: one per entry of auth_algorithms, in its
 * order (most preferred first, RFC 8760 §2.3), all with one fresh nonce.
 */
struct registrar_challenges {
	size_t n;
	char value[CONFIG_MAX_AUTH_ALGORITHMS][DIGEST_CHALLENGE_SIZE];
};

/*
 * Authenticate an INVITE as a local subscriber: later calls
 * done(arg, status, challenges) (perhaps before returning) with status
 *   0    the caller is authenticated and is the From user: go on;
 *   407  send 407 with these Proxy-Authenticate values, in their order:
 *        no credentials, wrong ones, an unknown user, a stale nonce, an
 *        algorithm that auth_algorithms does not offer;
 *   403  authenticated as someone else, a disabled user, or throttled;
 *   503  Redis is unreachable: the subscriber cannot be checked.
 * An INVITE without credentials gets its 407 at once, whoever it names.
 * The registrar never answers the INVITE itself: the call (b2b) does.
 */
typedef void registrar_auth_f(void *arg, int status,
			      const struct registrar_challenges *challenges);
void registrar_check_invite(registrar_t *reg, nta_incoming_t *irq, sip_t const *sip,
			    registrar_auth_f *done, void *arg);

/* A subscriber's call forwarding (Redis user hash fields fwd_*): each target
 * is "" (none), a user of our domain, or a SIP URI. */
struct registrar_forward {
	char always[REGISTRAR_URI_MAX];     /* fwd_always: every call, at once */
	char busy[REGISTRAR_URI_MAX];       /* fwd_busy: when every contact is busy */
	char noanswer[REGISTRAR_URI_MAX];   /* fwd_noanswer: not answered in time, or not registered */
	int noanswer_timeout;               /* fwd_noanswer_timeout seconds, 0 = the config's */
};

/*
 * The current contacts of `user` and its forwarding: done(arg, 0, contacts,
 * n, fwd) with n >= 1; done(arg, 480, NULL, 0, fwd) when it is known but not
 * registered; done(arg, 486, NULL, 0, fwd) when it is at its max_calls;
 * done(arg, 404 | 503, NULL, 0, NULL) when unknown (or disabled) or Redis
 * failed.  With a `call_key`, a 0 answer also counted the call against the
 * user's max_calls (see registrar_call_begin; undo with registrar_call_end).
 * Returns 0, or -ENOTCONN when Redis is down (then done is not called).
 */
typedef void registrar_lookup_f(void *arg, int status, const struct registrar_contact *contacts,
				unsigned n, const struct registrar_forward *fwd);
int registrar_lookup(registrar_t *reg, const char *user, const char *call_key,
		     registrar_lookup_f *done, void *arg);

/*
 * Concurrent-call limits (user hash field max_calls; 0 or absent: none),
 * counted in Redis so that every worker and host sees the same count:
 * <p>active:<user> is a sorted set of the user's calls (member: the call's
 * key, score: its start in ms; members older than a day are dropped as
 * left-overs of a crashed worker).
 * registrar_call_begin() counts the call unless the user is at its limit:
 * done(arg, 0) counted, done(arg, 486) at the limit, done(arg, 503) Redis
 * failed.  Returns 0, or a negative errno when Redis is down (no callback).
 * registrar_call_end() removes it (fire and forget).
 */
typedef void registrar_begin_f(void *arg, int status);
int registrar_call_begin(registrar_t *reg, const char *user, const char *call_key,
			 registrar_begin_f *done, void *arg);
void registrar_call_end(registrar_t *reg, const char *user, const char *call_key);

#endif
