/*
 * b2b_flow — calls to a subscriber registered over a connection (a flow,
 * worker/flow.h): where the B-leg goes, and the hand-off between the
 * workers of one host.  See docs/architecture.md, "Connections: TCP and
 * TLS", "Flows in registrations".
 *
 * Design note.  A connection exists in the one worker that accepted it, so
 * only that worker (the binding's flow_worker, on the binding's host) can
 * reach the subscriber.  The worker that took the call:
 *
 *   - is the flow worker: the INVITE goes over the connection itself
 *     (b2b_flow_here: the connection found again by its token, never a new
 *     connection to the phone's Contact, which it does not listen on);
 *   - is another worker of this host: the call is handed to the flow
 *     worker exactly as another host hands a NAT'd call to the holding
 *     host (b2b_policy.c, B2B_HANDOFF_HEADER), to the flow worker's own UDP
 *     port; the flow worker relays it over the connection and writes no CDR;
 *   - is on another host: the hand-off goes to the binding's host, whose
 *     worker that receives it relays it once more, to the flow worker, when
 *     it is not that worker itself.
 *
 * When the connection is gone the flow worker answers the hand-off 430
 * (Flow Failed, RFC 5626 §5.3) and the first worker counts that binding as
 * unavailable (b2b_branch.c: 480 to the caller if nothing else answers);
 * a flow worker that took the call itself skips the binding at once.
 * Both count flow_failed and log the connection's token.
 *
 * The workers of one host trust each other's own ports (b2b_flow_sibling):
 * a hand-off from a sibling needs no `trusted` entry, as a hand-off from
 * another host does.  A hand-off from a sibling is never relayed again, so
 * two workers that disagree about a binding (it moved meanwhile) cannot
 * bounce a call between them: the second one answers 430.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>

#include <sofia-sip/tport.h>

#include "b2bua/log.h"
#include "worker/b2b_int.h"
#include "worker/flow.h"
#include "worker/registrar.h"

/* The address this host's workers reach each other at: the first listen
 * address, or its advertised one when it is a wildcard (no brackets). */
static const char *b2b_flow_host(const b2b_t *b2b)
{
	const char *l = b2b->cfg->listen[0];

	return strcmp(l, "0.0.0.0") == 0 || strcmp(l, "::") == 0 ? b2b->cfg->advertise[0] : l;
}

int b2b_sibling_at(const b2b_t *b2b, const char *host, int port)
{
	const struct config *cfg = b2b->cfg;
	char bare[sizeof cfg->listen[0]];
	size_t n = strlen(host);
	int ours = 0;

	if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof bare) {
		memcpy(bare, host + 1, n - 2);   /* "[v6]": listen/advertise have no brackets */
		bare[n - 2] = '\0';
		host = bare;
	}
	for (size_t i = 0; i < cfg->n_listen && !ours; i++)
		ours = strcasecmp(host, cfg->listen[i]) == 0 || strcasecmp(host, cfg->advertise[i]) == 0;
	return ours && port >= cfg->worker_port_base &&
	       port < cfg->worker_port_base + cfg->workers &&
	       port != cfg->worker_port_base + (int)b2b->worker;
}

/* "sip:host:port;transport=udp" of worker `w`'s own port: 0, or -EINVAL. */
static int b2b_flow_sibling_url(const b2b_t *b2b, int w, char *url, size_t size)
{
	const char *host = b2b_flow_host(b2b);
	char addr[sizeof b2b->cfg->listen[0] + 16];

	if (w < 0 || w >= b2b->cfg->workers)
		return -EINVAL;
	snprintf(addr, sizeof addr, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
		 b2b->cfg->worker_port_base + w);
	return registrar_addr_url(addr, url, size);
}

int b2b_flow_sibling(b2b_t *b2b, nta_incoming_t *irq)
{
	char source[REGISTRAR_ADDR_MAX];
	char *colon;

	if (registrar_request_source(irq, source, sizeof source) < 0 ||
	    (colon = strrchr(source, ':')) == NULL)
		return 0;
	*colon = '\0';   /* "host:port" or "[v6]:port" */
	return b2b_sibling_at(b2b, source, atoi(colon + 1));
}

int b2b_flow_sibling_handoff(b2b_t *b2b, nta_incoming_t *irq, sip_t const *sip)
{
	return b2b_handoff_of(sip) != NULL && sip->sip_via && sip->sip_via->v_next == NULL &&
	       b2b_flow_sibling(b2b, irq);
}

/*
 * The binding's connection, held by this worker: the INVITE goes over it
 * (t->conn) and every later request of the leg to its peer address with
 * the connection's transport, from the primary that accepted it, where
 * Sofia finds the connection again.  0, or -ENOTCONN when it is gone.
 */
static int b2b_flow_here(b2b_t *b2b, const struct registrar_contact *c, struct b2b_target *t,
			 char *url, size_t size)
{
	tport_t *conn = flow_connection(b2b->agent, c->transport, c->flow);
	char *udp;

	if (conn == NULL)
		return -ENOTCONN;
	if (registrar_addr_url(c->source, url, size) < 0 ||
	    (udp = strstr(url, ";transport=udp")) == NULL ||
	    (size_t)(udp - url) + sizeof ";transport=" + strlen(c->transport) > size)
		return -ENOTCONN;
	snprintf(udp, size - (size_t)(udp - url), ";transport=%s", c->transport);
	t->route = url;
	t->handoff = NULL;
	t->conn = conn;
	return 0;
}

/* The flow is gone: counted and logged, once per call and binding. */
static void b2b_flow_failed(struct b2b_call *call, const struct registrar_contact *c)
{
	shm_counter_add(call->b2b->shm, call->b2b->worker, SHM_CTR_FLOW_FAILED, 1);
	log_info("call %s: '%s' at %s registered over %s connection %s, which is gone "
		 "(flow failed)", call->id, call->cur_user, c->uri, c->transport, c->flow);
}

int b2b_flow_target(struct b2b_call *call, const struct registrar_contact *c,
		    struct b2b_target *t, char *url, size_t size)
{
	b2b_t *b2b = call->b2b;

	int ret;

	if (c->host[0] && strcmp(c->host, b2b->cfg->node_id) != 0) {
		/* Another host holds the connection: hand the call to it. */
		if (c->host_lost)
			return -EHOSTDOWN;
		ret = registrar_addr_url(c->host_address, url, size);
	} else if (c->flow_worker != (int)b2b->worker) {
		ret = b2b_flow_sibling_url(b2b, c->flow_worker, url, size);
	} else {
		ret = b2b_flow_here(b2b, c, t, url, size);
		if (ret == 0)
			return 0;
	}
	if (ret < 0) {
		/* Gone, or a binding that names no reachable holder (a worker
		 * index beyond `workers` after a restart with fewer). */
		b2b_flow_failed(call, c);
		return -ENOTCONN;
	}
	t->route = url;
	t->handoff = call->cur_user;
	return 0;
}

int b2b_flow_handoff(struct b2b_call *call, const struct registrar_contact *c,
		     int from_sibling, struct b2b_target *t, char *url, size_t size)
{
	b2b_t *b2b = call->b2b;

	if (c->flow_worker == (int)b2b->worker) {
		if (b2b_flow_here(b2b, c, t, url, size) == 0)
			return 0;
	} else if (!from_sibling && b2b_flow_sibling_url(b2b, c->flow_worker, url, size) == 0) {
		/* From another host, and another worker holds the connection. */
		t->route = url;
		t->handoff = call->cur_user;
		return 0;
	}
	b2b_flow_failed(call, c);
	return -ENOTCONN;
}
