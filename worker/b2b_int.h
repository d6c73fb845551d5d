/*
 * b2b_int.h — what the b2b files share, and nothing else includes.
 *
 * Design note.  The back-to-back user agent (b2b.h) is split by concern,
 * in the spirit of Kamailio's tm/ module:
 *
 *   b2b.c         the agent (its two transports), requests outside a dialog
 *                 (new INVITEs, stray CANCELs, REGISTER, ...), drain, kill,
 *                 expiry, statistics, identifiers
 *   b2b_call.c    a call's life cycle: pool, holds, states, ending, the CDR,
 *                 and the one place that writes the shared call table
 *   b2b_branch.c  B-leg attempts: starting them, forking, their answers
 *   b2b_relay.c   in-dialog requests between the legs, the A-leg's ACK/CANCEL
 *   b2b_adopt.c   taking over the calls of a dead predecessor
 *   b2b_stream.c  an in-dialog request on a connection of a worker that
 *                 does not own the call: relayed to its owner
 *   b2b_policy.c  where a call goes and whether it may: routes, the
 *                 registrar (auth, lookup, max_calls), forwarding
 *   b2b_timer.c   the timers that bound a call whatever its peers do:
 *                 invite_timeout, and RFC 4028 session timers per leg
 *   b2b_overload.c  overload control: the own port first, new INVITEs
 *                 shed with a stateless 503 while the worker falls behind
 *   b2b_tls.c     the TLS transports: their certificate directory, the
 *                 lowest version, failed handshakes counted
 *   b2b_pool.c    the calls' memory: call_capacity entries reserved,
 *                 resident only as calls use them (b2b_pool.h, pure)
 *   b2b_rest.c    calls at rest: a quiet established call frees its two
 *                 Sofia dialogs and rebuilds them from its slot when needed
 *
 * A call, seen from here:
 *
 *   caller --A-leg--> [ a_leg / a_irq ]  b2b_call  [ br[i].leg / br[i].orq ] --B-legs--> callee(s)
 *
 * The structs are visible to the b2b files only; everyone else sees the
 * opaque b2b_t of b2b.h.  The functions below are what each file offers
 * the others; each one's comment is at its definition.
 */
#ifndef B2BUA_B2B_INT_H
#define B2BUA_B2B_INT_H

#include <stdint.h>

#include <sofia-sip/nta.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/su_wait.h>
#include <sofia-sip/url.h>

#include "shm/shm.h"
#include "worker/b2b.h"
#include "worker/b2b_pool.h"
#include "worker/cdr.h"
#include "worker/hold.h"
#include "worker/ratelimit.h"
#include "worker/registrar.h"
#include "worker/session_timer.h"

/* TPTAG_IDENT of the two transports (see architecture.md: select the
 * worker's own port for everything we send) on the first listen address;
 * a further address (dual stack) has its own, "public1", "own1"... */
#define B2B_IDENT_PUBLIC "public"
#define B2B_IDENT_OWN    "own"

/*
 * One address of `listen` (docs/architecture.md, "Connections: TCP and
 * TLS", IPv6): the idents of its transports and our Contacts on it.  Sofia
 * picks a primary transport by ident and protocol, not by the family of an
 * IPv6 target in brackets, so each address has idents of its own, and a
 * leg sends with those of the address of its peer's family
 * (b2b_addr_for_host, b2b_addr_for_source).
 */
struct b2b_addr {
	int family;                  /* AF_INET or AF_INET6 */
	char ident_public[16];       /* B2B_IDENT_PUBLIC, "public1", ... */
	char ident_own[16];          /* B2B_IDENT_OWN, "own1", ... */
	sip_contact_t *contact;      /* advertise[i], own port, UDP */
	sip_contact_t *contact_tcp;  /* the same, ;transport=tcp; NULL when TCP is off */
	sip_contact_t *contact_tls;  /* own TLS port, ;transport=tls; NULL when TLS is off */
};

enum b2b_state {
	B2B_ROUTING,      /* waiting for authentication or the location service */
	B2B_TRYING,
	B2B_RINGING,
	B2B_ANSWERED,
	B2B_CONFIRMED,
	B2B_CANCELLING,
	B2B_ENDING,
	B2B_FORWARDING,   /* the callee did not take it: a new B-leg to its forward target */
};

/* The two legs of a call, as indexes (session timers, SDP sent). */
enum b2b_leg {
	B2B_LEG_A,
	B2B_LEG_B,
};

/* A leg's RFC 4028 session (b2b_timer.c). */
struct b2b_session {
	struct session_timer st;     /* in force; st.interval 0: no session timer */
	struct session_timer answer; /* ours to a request of this leg's peer, until its 2xx */
	int peer_update;             /* the peer allows UPDATE: our refreshes use it */
	uint64_t refreshed_ms;       /* last successful refresh (or the answer) */
	uint64_t next_try_ms;        /* our next refresh attempt after a failed one */
};

/* Session-timer headers for one message (b2b_timer.c fills, the sender
 * adds them with TAG_IF). */
struct b2b_st_hdrs {
	char se[48];                 /* Session-Expires value, "" = none */
	char min_se[16];             /* Min-SE value, "" = none */
	const char *supported;       /* "timer" or NULL */
	const char *require;         /* "timer" or NULL */
};

/* RFC 3261 §18.1.1: a request larger than this goes over a congestion-
 * controlled transport when its target allows (docs/architecture.md, "The
 * MTU switch"). */
#define B2B_UDP_MTU 1300

/* Parallel forking to several registered contacts: one B-leg each. */
#define B2B_MAX_BRANCHES 8

/* The header that marks an INVITE handed by another host to the host that
 * holds the callee's NAT binding (Request-URI: the binding's Contact); its
 * value is the binding's AOR user (docs/architecture.md, "Subscribers
 * behind NAT"). */
#define B2B_HANDOFF_HEADER "X-B2bua-Handoff"

/* Where every request of a B-leg is sent when that is not its remote
 * target: a subscriber behind NAT.  Allocated for such a leg only. */
struct b2b_nat_route {
	char url[REGISTRAR_ADDR_MAX + 32];   /* NTA's route_url: "sip:ip:port;transport=udp" */
	char handoff[64];                    /* to another host: the binding's AOR user, sent
					      * as B2B_HANDOFF_HEADER; "" when direct */
	char ident[16];                      /* TPTAG_IDENT its requests leave from: a flow's
					      * connection's primary; "" the public port */
};

/* One target of b2b_call_fork_to: a Request-URI and, for a subscriber behind
 * NAT, where its requests go (route: "sip:ip:port;transport=udp") and the
 * hand-off value (handoff: the AOR user), each NULL when not. */
struct b2b_target {
	url_t const *ruri;
	const char *route;
	const char *handoff;
	tport_t *conn;               /* a binding's flow held here: its INVITE goes over
				      * this connection (NTATAG_TPORT), route is its peer */
	int mtu_switch;              /* a route target without transport: a request over
				      * B2B_UDP_MTU goes over TCP (b2b_branch.c) */
};

/* One B-leg attempt: its own dialog (Call-ID, tags) and INVITE transaction. */
struct b2b_branch {
	struct b2b_call *call;
	nta_leg_t *leg;
	nta_outgoing_t *orq;         /* our INVITE, until its final answer */
	uint32_t cseq;               /* of that INVITE, for the ACK */
	int final;                   /* its final status, 0 while pending */
	int acked;                   /* ACK sent for its 2xx */
	unsigned st_se;              /* the Session-Expires its INVITE offered */
	int st_retried;              /* re-sent once after a 422 */
	unsigned idx;                /* its index among the call's branches */
	struct b2b_nat_route *nat;   /* NULL: requests go to the remote target */
	int mtu_switch;              /* its target allows TCP for a large INVITE */
	unsigned addr;               /* our address for it (b2b->addr[], its target's family) */
};

/* At most this many local users' max_calls count one call (b2b_policy.c). */
#define B2B_COUNTED_MAX 4

/* The longest Diversion value a forwarded INVITE carries (b2b_policy.c). */
#define B2B_DIVERSION_MAX 512

/*
 * What only a call that may forward needs: the forwarding of the user
 * tried now, the users tried, the Diversion chain.  Most calls never
 * forward, so it is allocated when a user of the call names a forward
 * target (b2b_policy.c) and freed with the call (b2b_call_free), rather
 * than carried by every pool entry (about 2 KB of its 3.5).
 */
struct b2b_forwarding {
	struct registrar_forward fwd; /* of the user being tried now */
	int have_fwd;                 /* fwd holds that user's forwarding */
	char tried[B2B_MAX_BRANCHES][64];  /* the local users looked up, loop detection */
	unsigned n_tried;
	unsigned hops;
	char diversion[B2B_DIVERSION_MAX]; /* Diversion value for forwarded INVITEs */
	char forward_to[REGISTRAR_URI_MAX]; /* once the pending branches are cancelled */
	const char *forward_reason;
};

/* A body we sent on a leg, kept for a refresh re-INVITE (b2b_timer.c): one
 * malloc'd block, the payload then its Content-Type, each NUL-terminated. */
struct b2b_sdp {
	size_t len;                  /* of the payload */
	char text[];                 /* payload, NUL, Content-Type value, NUL */
};

/* What changed on a leg since its answer, written into the slot when the
 * call comes to rest (b2b_rest.c, b2b_publish_rest). */
struct b2b_rest_leg {
	uint32_t local_cseq;
	char remote_target[SHM_URI_MAX];
	char route_set[SHM_ROUTE_MAX];
};

struct b2b_call {
	b2b_t *b2b;
	char id[SHM_ID_MAX];         /* the call id: CLI, logs, CDR id, call limits (b2b_make_id) */
	char (*counted)[64];         /* local users whose max_calls count this call: an
				      * array of B2B_COUNTED_MAX, allocated with the
				      * first (b2b_policy.c); NULL for most trunk calls */
	unsigned n_counted;
	uint32_t slot;               /* our slot in the shared call table */
	enum b2b_state state;
	unsigned holds;              /* asynchronous requests (Redis) still to answer */
	int ended;                   /* b2b_call_end() ran; free when holds == 0 */
	int cdr_durable;             /* its CDR is durable: the slot is gone */
	const char *refused;         /* the call was refused, and why: its CDR is REFUSED
				      * with this cause ("auth", "call_limit"), else NULL */
	int caller_cancelled;        /* CANCEL received while routing */
	int cancelled;               /* the caller cancelled (CDR: CANCELLED) */
	int killed;                  /* an operator ended it (CDR: KILLED) */
	int timed_out;               /* invite_timeout ended it (CDR: ended by the system) */
	int no_cdr;                  /* only a challenge (407): not a call attempt */
	int untrusted;               /* caller not from a trusted source: callees that
				      * are unknown, disabled or away all look alike */
	int in_setup;                /* counted in b2b->setup (overload control) */
	int final_code;              /* final answer sent to the caller */
	uint64_t answer_ms;          /* when it was answered, 0 before */
	uint64_t start_ms;           /* INVITE received (its slot's start_ms): set-up time */
	enum cdr_party hangup_by;
	char answered_by[SHM_URI_MAX];

	nta_leg_t *a_leg;            /* dialog with the caller (we are UAS) */
	nta_incoming_t *a_irq;       /* the caller's INVITE, until ACKed/final */
	msg_t *a_unacked;            /* taken over answered but not ACKed by its caller:
				      * the caller's INVITE (from the slot's record),
				      * until the callee's 2xx comes again (b2b_adopt.c) */
	nta_outgoing_t *a_probe;     /* OPTIONS asking the caller of a call still in
				      * a_unacked after the takeover's linger whether
				      * it has the call (b2b_adopt.c) */
	struct b2b_nat_route *a_nat; /* the caller is behind NAT: where requests to it
				      * go (b2b_leg_route); NULL: its Contact */
	int a_stream;                /* 0, or SHM_TP_TCP / SHM_TP_TLS: the caller's INVITE
				      * came over a connection, the A-leg is that
				      * connection (b2b_a_leg_stream) */
	unsigned a_addr;             /* our address for the caller (b2b->addr[], the
				      * family its INVITE came from) */
	const char *a_stream_ident;  /* the ident of the primary whose connection the
				      * caller last used (b2b_a_leg_follow; b2b_leg_ident) */

	/* B-legs: b2b_branch_at(call, i), i < n_br.  The first is here; most
	 * calls never have another, so the others (forking, forwarding) are
	 * in an array allocated when the second one starts (b2b_branch.c). */
	struct b2b_branch br_first;
	struct b2b_branch *br_more;  /* B2B_MAX_BRANCHES - 1 of them, or NULL */
	unsigned n_br;
	int winner;                  /* index of the answered branch, -1 */
	int best_final;              /* best failure so far, relayed when all failed */
	char best_phrase[64];

	nta_incoming_t *relay_irq;   /* an in-dialog request being relayed ... */
	nta_outgoing_t *relay_orq;   /* ... and our copy on the other leg */
	sip_method_t relay_method;
	int relay_from_caller;
	uint32_t relay_cseq;         /* of relay_orq, for the ACK of a re-INVITE */
	enum hold_state relay_hold;  /* what the relayed offer asks for */
	enum shm_party held_by;

	/* forwarding (b2b_policy.c) */
	char cur_user[64];           /* the local user being tried now */
	struct b2b_forwarding *fw;   /* NULL until a user it tries forwards (b2b_policy.c) */
	su_timer_t *na_timer;        /* no-answer timer, when the user forwards on no answer */
	int forward_pending;         /* branches being cancelled before forwarding */

	nta_incoming_t *bye_irq;     /* a BYE being relayed, from either leg */
	nta_outgoing_t *bye_orq;     /* our BYE on the other leg */

	/* invite_timeout (b2b_timer.c): calls waiting for an answer, in the
	 * order of their deadlines */
	struct b2b_call *inv_prev, *inv_next;
	uint64_t inv_deadline_ms;    /* 0: not waiting */
	int a_done;                  /* the caller has its final answer; B-legs still
				      * pending finish on their own, then the call ends */
	uint64_t end_ms;             /* when the caller's part ended (the CDR's end) */

	/* session timers (b2b_timer.c), per enum b2b_leg */
	struct b2b_session sess[2];
	struct b2b_sdp *sdp_sent[2]; /* the last SDP we sent on each leg (b2b_timer.c) */
	nta_outgoing_t *refresh_orq; /* our own refresh, one at a time */
	enum b2b_leg refresh_leg;
	int refresh_invite;          /* it is a re-INVITE (to be ACKed) */

	/* at rest (b2b_rest.c) */
	uint64_t active_ms;          /* its answer or last in-dialog request (mono_ms) */
	int at_rest;                 /* its legs are freed: rebuilt from its slot */
	uint32_t rest_hash[2];       /* of each leg's Call-ID (enum b2b_leg), at rest */
	struct b2b_call *rest_next[2];  /* the rest index's chains, per enum b2b_leg */
};

struct b2b {
	su_home_t home[1];
	su_root_t *root;
	const struct config *cfg;
	shm_t *shm;
	unsigned worker;

	registrar_t *reg;             /* NULL: no registrar (no domain configured) */
	cdr_writer_t *cdr;            /* NULL: no CDRs (unit tests only) */
	nta_agent_t *agent;
	nta_leg_t *default_leg;       /* receives every request outside a dialog */
	sip_contact_t *contact;       /* ours: advertise host, own port (addr[0]'s) */
	sip_contact_t *contact_tcp;   /* the same, ;transport=tcp: legs whose peer reached us
				       * over a connection; NULL when TCP is off */
	sip_contact_t *contact_tls;   /* ;transport=tls on the own TLS port (addr[0]'s);
				       * NULL: TLS off */
	char *tls_dir;                /* Sofia's certificate directory (b2b_tls.c), until read */
	struct b2b_addr addr[CONFIG_MAX_LISTEN];   /* one per listen address */
	unsigned n_addr;
	url_t **route_urls;           /* cfg->routes[i].target, parsed once */

	b2b_pool_t *pool;             /* the calls (b2b_pool.h), taken by b2b_call_alloc */
	unsigned active;
	unsigned setup;               /* new calls not answered yet (b2b_call_setup_done) */
	int draining;
	struct b2b_overload *overload; /* b2b_overload.c; NULL until b2b_overload_start */

	ratelimit_t *rl_invite;       /* rate_limit_invite per source, NULL = off */
	ratelimit_t *rl_register;     /* rate_limit_register per source, NULL = off */
	uint64_t rl_logged_ms;        /* last "rate limited" warning */
	unsigned rl_refused;          /* requests refused since that warning */

	/* b2b_timer.c */
	su_timer_t *invite_timer;     /* fires at the first invite_timeout deadline */
	struct b2b_call *inv_head, *inv_tail;  /* waiting calls, earliest first */
	su_timer_t *session_tick;     /* session timers, checked every second */
	struct session_timer_cfg st_cfg;

	uint64_t full_logged_ms;      /* last "call table full" warning */
	unsigned full_refused;        /* INVITEs refused since that warning */

	uint64_t next_call;           /* call counter, part of the call id */
	uint64_t epoch_ms;            /* when this worker process started: CDR ids stay
				       * unique across restarts of the daemon */
	uint64_t rng;                 /* xorshift state for Call-IDs and tags */
	struct b2b_takeover *takeover; /* a dead predecessor's calls being ended (b2b_adopt.c) */
	struct b2b_call **rest_index[2]; /* calls at rest by each leg's Call-ID (b2b_rest.c) */
	unsigned rest_mask;           /* chain heads - 1 (a power of two) */
	unsigned at_rest;             /* calls at rest now */
	unsigned long long published_in, published_out;
	unsigned long long published_rtx_in, published_rtx_out;   /* retransmissions */
};

/* Branch i (< B2B_MAX_BRANCHES, and allocated: i < n_br, or the one being
 * started) of a call. */
static inline struct b2b_branch *b2b_branch_at(struct b2b_call *call, unsigned i)
{
	return i == 0 ? &call->br_first : &call->br_more[i - 1];
}

/* ------------------------------------------------------------ b2b.c */

/* Identifiers: tags, B-leg Call-IDs, the call id (NODE-wN-EPOCH-N). */
void b2b_make_tag(b2b_t *b2b, char *buf, size_t size);
void b2b_make_call_id(b2b_t *b2b, char *buf, size_t size);
void b2b_make_id(b2b_t *b2b, char *buf, size_t size);
/* Bounded copies; a URL that does not encode gives "". */
void b2b_url_copy(char *dst, size_t size, url_t const *url);
void b2b_str_copy(char *dst, size_t size, const char *src);
/* A route set as a Route header value ("<sip:p1;lr>, <sip:p2;lr>"), in the
 * order of `r`, or reversed (a Record-Route of a response: RFC 3261
 * 12.1.2); "" for none.  0, or -E2BIG (dst is "" then). */
int b2b_route_copy(char *dst, size_t size, sip_route_t const *r, int reverse);
/* Our address (index in b2b->addr) for a peer at `host` (an IP literal, an
 * IPv6 one with or without brackets): the first of its family; 0 for a
 * host name or a family we do not listen on. */
unsigned b2b_addr_for_host(const b2b_t *b2b, const char *host);
/* The same for the source of a request. */
unsigned b2b_addr_for_source(const b2b_t *b2b, nta_incoming_t *irq);
/* Count a final answer to a caller in the worker's counters; returns `code`. */
int b2b_count_code(b2b_t *b2b, int code);
/* The call's set-up time, INVITE received to its final answer sent, into
 * the metrics' histogram (SHM_HIST_SETUP). */
void b2b_observe_setup(const struct b2b_call *call);
/* The CDR of an INVITE refused before it became a call, with its cause
 * ("capacity", "auth", "rate_limit"; at most CDR_CAUSE_MAX - 1 bytes):
 * 0, or a negative errno (logged). */
int b2b_write_refused_cdr(b2b_t *b2b, sip_t const *sip, int sip_code, const char *cause);

/* ------------------------------------------------------------ b2b_call.c */

/* A leg's transport (enum shm_transport) from the top Via of a message on
 * it: the caller's request (its Via) or our request and its responses (our
 * Via: the transport NTA sent it over); SHM_TP_UDP without one. */
unsigned b2b_via_transport(sip_via_t const *via);

/* The shared call table, written here only. */
void b2b_record_init(b2b_t *b2b, struct shm_call *c, sip_t const *sip, const char *a_tag);
int b2b_publish_call(struct b2b_call *call, const struct shm_call *rec);
void b2b_publish_state(struct b2b_call *call, enum b2b_state state);
void b2b_publish_answer_again(struct b2b_call *call);
void b2b_publish_not_answered(struct b2b_call *call);
void b2b_publish_b_leg(struct b2b_call *call, const char *call_id, const char *tag,
		       url_t const *ruri, uint32_t cseq, unsigned transport);
void b2b_publish_b_answered(struct b2b_call *call, struct b2b_branch *br, sip_t const *sip);
void b2b_publish_hold(struct b2b_call *call);
void b2b_publish_forwarding(struct b2b_call *call, const char *target);
void b2b_publish_rest(struct b2b_call *call, const struct b2b_rest_leg *a,
		      const struct b2b_rest_leg *b);
void b2b_publish_invite_a(struct b2b_call *call, sip_t const *sip);
void b2b_publish_invite_b(struct b2b_call *call, struct b2b_branch *br);
void b2b_unpublish_slot(b2b_t *b2b, uint32_t slot);
unsigned b2b_unpublish_torn(b2b_t *b2b);

/* Life cycle. */
void b2b_call_set_id(struct b2b_call *call, const char *id);
struct b2b_call *b2b_call_alloc(b2b_t *b2b);
void b2b_call_free(struct b2b_call *call);
void b2b_call_hold(struct b2b_call *call);
int b2b_call_release(struct b2b_call *call);
void b2b_call_end(struct b2b_call *call);
void b2b_reply_a(struct b2b_call *call, int status, const char *phrase);
void b2b_call_refuse(struct b2b_call *call, int status, const char *phrase);
int b2b_caller_cancels(struct b2b_call *call);
void b2b_call_abort(struct b2b_call *call, int status);
void b2b_call_give_up(struct b2b_call *call, int status);
sip_t const *b2b_invite_of(struct b2b_call *call);

void b2b_call_setup_done(struct b2b_call *call);

/* ------------------------------------------------------------ b2b_overload.c */

void b2b_overload_free(b2b_t *b2b);

/* ------------------------------------------------------------ b2b_branch.c */

struct b2b_branch *b2b_winner(struct b2b_call *call);
void b2b_branch_drop(struct b2b_branch *br);
void b2b_ack_branch(struct b2b_branch *br);
void b2b_bye_and_forget(nta_leg_t *leg);
void b2b_ack_leg(struct b2b_call *call, nta_leg_t *leg, uint32_t cseq, int orphan);
void b2b_cancel_pending(struct b2b_call *call, int except);
unsigned b2b_pending_branches(struct b2b_call *call);
void b2b_call_fork(struct b2b_call *call, url_t const *const *targets, unsigned n);
void b2b_call_fork_to(struct b2b_call *call, const struct b2b_target *targets, unsigned n);
url_string_t const *b2b_leg_route(nta_leg_t *leg);
/* The socket `leg`'s requests leave from: the public port for a leg with a
 * route (a party behind NAT: its NAT lets in only packets from the address
 * and port it sent to, and it sent to the public port), else our own port.
 * Answers to the public port reach this worker by our From tag (dgram.c). */
const char *b2b_leg_ident(nta_leg_t *leg);
/* Our Contact on the call's leg `which`: ;transport=tcp (tls) on an A-leg
 * that is the caller's TCP (TLS) connection, else the UDP one. */
sip_contact_t const *b2b_leg_contact(struct b2b_call *call, enum b2b_leg which);
/* 1 when the request came from one of the `trusted` sources (b2b_policy.c). */
int b2b_source_trusted(b2b_t *b2b, nta_incoming_t *irq);

/* ------------------------------------------------------------ b2b_tls.c */

/* transports has "tls": first the certificate directory (b2b_tls_begin),
 * then for each listen address `a` the public and own TLS primaries (idents
 * as their UDP twins on that address) and a->contact_tls (b2b_tls_create),
 * then b2b_tls_destroy.  0 or a negative errno (-EADDRINUSE: a port is
 * taken; logged). */
int b2b_tls_begin(b2b_t *b2b);
int b2b_tls_create(b2b_t *b2b, const char *listen, const char *adv, struct b2b_addr *a);
/* Remove the certificate directory: Sofia has read it (and on error paths). */
void b2b_tls_destroy(b2b_t *b2b);

/* ------------------------------------------------------------ b2b_relay.c */

int b2b_on_a_request(nta_leg_magic_t *magic, nta_leg_t *leg, nta_incoming_t *irq,
		     sip_t const *sip);
int b2b_on_a_irq(nta_incoming_magic_t *magic, nta_incoming_t *irq, sip_t const *sip);
void b2b_release_unacked(struct b2b_call *call, const char *why);
void b2b_release_callee(struct b2b_call *call);
int b2b_on_b_request(nta_leg_magic_t *magic, nta_leg_t *leg, nta_incoming_t *irq,
		     sip_t const *sip);
int b2b_a_leg_create(struct b2b_call *call, nta_incoming_t *irq, sip_t const *sip,
		     const char *a_tag);
void b2b_relay_done(struct b2b_call *call);

/* ------------------------------------------------------------ b2b_adopt.c */

int b2b_adopt_encode(b2b_t *b2b, char *buf, size_t size, sip_t const *sip,
		     const char *branch, size_t *len);
int b2b_adopt_on_stray(nta_agent_magic_t *magic, nta_agent_t *agent, msg_t *msg, sip_t *sip);
int b2b_adopt_on_cancel(b2b_t *b2b, nta_incoming_t *irq, sip_t const *sip);
void b2b_adopt_destroy(b2b_t *b2b);
/* A leg again from its slot's copy `l`, with our next CSeq after
 * `local_cseq`; *addr: our address for its peer.  NULL: no memory. */
nta_leg_t *b2b_leg_rebuild(b2b_t *b2b, nta_request_f *cb, void *magic,
			   const struct shm_leg *l, uint32_t local_cseq, unsigned *addr);

/* ------------------------------------------------------------ b2b_rest.c */

int b2b_rest_create(b2b_t *b2b);
void b2b_rest_destroy(b2b_t *b2b);
/* Wake a call at rest before sending on it: 0 (also when it was awake), or
 * a negative errno (its legs could not be rebuilt: the caller ends it). */
int b2b_call_wake(struct b2b_call *call);
/* The call ends: out of the rest index. */
void b2b_rest_forget(struct b2b_call *call);
/* A request that matched no dialog: is it for a call at rest?  0 and
 * *status (what the leg's callback returned), or -ENOENT. */
int b2b_rest_on_request(b2b_t *b2b, nta_incoming_t *irq, sip_t const *sip, int *status);

/* ------------------------------------------------------------ b2b_stream.c */

/* A request the default leg got on a connection, for a call of another
 * worker: relayed there, its answers back on the connection.  0 when it
 * took the request (relayed or answered), -ENOENT when it is not such a
 * request (the caller goes on as before), -ENOMEM. */
int b2b_stream_relay(b2b_t *b2b, nta_incoming_t *irq, sip_t const *sip);
/* The caller sent an in-dialog request `sip`: if it came through another
 * worker, or the connection its INVITE came on (the A-leg's route) is
 * closed, the A-leg goes to its Contact. */
void b2b_stream_caller_moved(struct b2b_call *call, sip_t const *sip);
/* Before a request to a caller on a connection: 1 when it goes over the
 * caller's latest connection (call->a_nat), 0 when that connection is
 * closed (the route is dropped, logged: the request goes to its Contact,
 * where a caller that opens a connection per request listens) or there is
 * no route. */
int b2b_stream_caller_route(struct b2b_call *call);

/* ------------------------------------------------------------ b2b_timer.c */

void b2b_invite_timer_start(struct b2b_call *call);
void b2b_invite_timer_stop(struct b2b_call *call);
void b2b_timers_destroy(b2b_t *b2b);
int b2b_session_on(const b2b_t *b2b);
int b2b_session_check_a(struct b2b_call *call, sip_t const *invite);
void b2b_session_request_hdrs(struct b2b_call *call, enum b2b_leg leg, struct b2b_st_hdrs *h);
int b2b_session_uas(struct b2b_call *call, enum b2b_leg leg, sip_t const *req, unsigned *min_se);
void b2b_session_answer_hdrs(struct b2b_call *call, enum b2b_leg leg, struct b2b_st_hdrs *h);
void b2b_session_answered(struct b2b_call *call, enum b2b_leg leg);
void b2b_session_uac_2xx(struct b2b_call *call, enum b2b_leg leg, sip_t const *resp);
void b2b_session_keep_sdp(struct b2b_call *call, enum b2b_leg leg, msg_t *msg);
void b2b_session_start(struct b2b_call *call);
void b2b_session_release(struct b2b_call *call);
void b2b_session_rest(struct b2b_call *call);
void b2b_session_keep_sdp_answered(struct b2b_call *call, enum b2b_leg leg, msg_t *msg);
int b2b_session_answer_update(struct b2b_call *call, enum b2b_leg leg, nta_incoming_t *irq,
			      sip_t const *sip);
int b2b_session_refreshing(const struct b2b_call *call, enum b2b_leg leg);

/* ------------------------------------------------------------ b2b_policy.c */

int b2b_parse_routes(b2b_t *b2b);
int b2b_limits_create(b2b_t *b2b);
void b2b_limits_destroy(b2b_t *b2b);
/* b2b_policy.c: routes and rate limiters derived again after a reload (b2b_reload). */
int b2b_policy_reload(b2b_t *b2b, const struct config *old);
int b2b_rate_limited(b2b_t *b2b, nta_incoming_t *irq, sip_t const *sip);
void b2b_admit(struct b2b_call *call, nta_incoming_t *irq, sip_t const *sip);
int b2b_forward_on_failure(struct b2b_call *call);
/* The Diversion value for the call's next INVITE, "" when it was not forwarded. */
const char *b2b_diversion(const struct b2b_call *call);
/* Free what forwarding allocated for the call (b2b_call_free). */
void b2b_forwarding_free(struct b2b_call *call);
/* The value of the hand-off header (B2B_HANDOFF_HEADER) of a request, or NULL. */
const char *b2b_handoff_of(sip_t const *sip);

/* ------------------------------------------------------------ b2b_flow.c */

/* 1 when the request came from another worker of this host (its own port
 * on our listen or advertised address): a hand-off from it is trusted. */
int b2b_flow_sibling(b2b_t *b2b, nta_incoming_t *irq);
/* Is host:port another worker's own port of this host (host one of our
 * listen or advertise addresses, an IPv6 one with or without brackets)? */
int b2b_sibling_at(const b2b_t *b2b, const char *host, int port);
/* 1 when a request whose Via is ours is no loop: a hand-off from a
 * sibling worker, with its one Via. */
int b2b_flow_sibling_handoff(b2b_t *b2b, nta_incoming_t *irq, sip_t const *sip);
/* A binding with a flow, for the call's B-leg (the caller's worker):
 * *t gets the connection (held here) or the hand-off to the holding worker
 * or host, its route written into url.  0, -EHOSTDOWN (the holding host is
 * lost), or -ENOTCONN (the connection is gone: counted and logged). */
int b2b_flow_target(struct b2b_call *call, const struct registrar_contact *c,
		    struct b2b_target *t, char *url, size_t size);
/* The same for a hand-off this worker received for binding `c`: over the
 * connection when it is ours, to the flow worker when it came from another
 * host; -ENOTCONN otherwise (answer 430: counted and logged). */
int b2b_flow_handoff(struct b2b_call *call, const struct registrar_contact *c,
		     int from_sibling, struct b2b_target *t, char *url, size_t size);

#endif
