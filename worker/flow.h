/*
 * flow — a registration's flow: the connection its REGISTER came over
 * (RFC 5626 in spirit; docs/architecture.md, "Connections: TCP and TLS",
 * "Flows in registrations").
 *
 * A connection (any transport that is not a datagram: TCP, TLS) exists in
 * the one worker that accepted it, and Sofia's tport pointer means nothing
 * in any other process.  So a binding names its connection by a token that
 * any process can read and only the holding worker can resolve: the
 * connection's two ends, "<our address:port>/<peer address:port>" (IPv6 in
 * brackets), e.g. "127.0.0.1:5060/127.0.0.1:40118".  The holding worker
 * finds the live connection again from it (flow_connection); a connection
 * that closed is simply not found, and the call gets the answer of a failed
 * flow (430, RFC 5626 §5.3).
 */
#ifndef B2BUA_FLOW_H
#define B2BUA_FLOW_H

#include <sofia-sip/nta.h>
#include <sofia-sip/nta_tport.h>

/* "[v6]:port/[v6]:port" with room to spare. */
#define FLOW_TOKEN_MAX 112

/* The flow of one received request. */
struct flow {
	char transport[8];            /* "udp", "tcp", "tls" (shm_transport_name) */
	char token[FLOW_TOKEN_MAX];   /* the connection's token; "" for a datagram */
};

/* The flow `irq` came over into *out: 0 (a datagram has transport "udp" and
 * no token), or -ENOENT when NTA knows no transport for it (out is then a
 * datagram's). */
int flow_of_request(nta_incoming_t *irq, struct flow *out);

/* The live connection of `agent` that `token` names, over `transport`
 * ("tcp", "tls"), or NULL when it is gone (closed by the peer, by an idle
 * timeout, or held by another worker).  No reference is taken: use it at
 * once, on this loop turn. */
tport_t *flow_connection(nta_agent_t *agent, const char *transport, const char *token);

#endif
