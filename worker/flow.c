/*
 * flow — a registration's flow: the connection its REGISTER came over.
 * See flow.h.
 *
 * Design note.  The token is built from what Sofia already knows about a
 * connection it accepted: the secondary tport's address is the peer's, its
 * primary's address is the socket it was accepted on (the public port or the
 * worker's own port).  Finding the connection again is Sofia's own lookup
 * (tport_by_name on that primary, which searches the primary's open
 * connections by peer address and skips closed ones), so a token names
 * exactly one live connection or none.  Nothing is cached: a connection that
 * closes needs no bookkeeping here.
 */
#include "worker/flow.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sofia-sip/su.h>
#include <sofia-sip/tport.h>

#include "shm/shm.h"

/* "ip:port" ("[v6]:port") of a socket address: 0, or -EAFNOSUPPORT. */
static int flow_addr(struct sockaddr const *sa, char *out, size_t size)
{
	const su_sockaddr_t *su = (const su_sockaddr_t *)sa;
	char ip[INET6_ADDRSTRLEN];

	if (sa && sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &su->su_sin.sin_addr, ip, sizeof ip);
		snprintf(out, size, "%s:%u", ip, ntohs(su->su_sin.sin_port));
		return 0;
	}
	if (sa && sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &su->su_sin6.sin6_addr, ip, sizeof ip);
		snprintf(out, size, "[%s]:%u", ip, ntohs(su->su_sin6.sin6_port));
		return 0;
	}
	return -EAFNOSUPPORT;
}

/* The address of a tport as "ip:port": a primary's is ours, a
 * connection's is the peer's. */
static int flow_tport_addr(tport_t const *tp, char *out, size_t size)
{
	su_addrinfo_t const *ai = tport_get_address(tp);

	return ai ? flow_addr(ai->ai_addr, out, size) : -EAFNOSUPPORT;
}

/* One name per transport, the names of shm_transport_name(). */
static const char *flow_transport_of(tport_t const *tp)
{
	if (tport_has_tls(tp))
		return shm_transport_name(SHM_TP_TLS);
	if (!tport_is_dgram(tp))
		return shm_transport_name(SHM_TP_TCP);
	return shm_transport_name(SHM_TP_UDP);
}

int flow_of_request(nta_incoming_t *irq, struct flow *out)
{
	tport_t *tp = nta_incoming_transport(NULL, irq, NULL);
	char local[FLOW_TOKEN_MAX / 2], remote[FLOW_TOKEN_MAX / 2];
	int ret = 0;

	snprintf(out->transport, sizeof out->transport, "%s", shm_transport_name(SHM_TP_UDP));
	out->token[0] = '\0';
	if (tp == NULL)
		return -ENOENT;
	if (!tport_is_dgram(tp)) {
		snprintf(out->transport, sizeof out->transport, "%s", flow_transport_of(tp));
		if (tport_is_secondary(tp) &&
		    flow_tport_addr(tport_parent(tp), local, sizeof local) == 0 &&
		    flow_tport_addr(tp, remote, sizeof remote) == 0)
			snprintf(out->token, sizeof out->token, "%s/%s", local, remote);
		else
			ret = -ENOENT;
	}
	tport_unref(tp);
	return ret;
}

/* Split a token into our end and the peer's host and port: 0, or -EINVAL. */
static int flow_token_split(const char *token, char *local, size_t lsize, char *host,
			    size_t hsize, char *port, size_t psize)
{
	const char *slash = strchr(token, '/');
	const char *colon;

	if (slash == NULL || (size_t)(slash - token) >= lsize)
		return -EINVAL;
	memcpy(local, token, (size_t)(slash - token));
	local[slash - token] = '\0';
	colon = strrchr(slash + 1, ':');
	if (colon == NULL || colon == slash + 1 || (size_t)(colon - slash - 1) >= hsize ||
	    strlen(colon + 1) >= psize || colon[1] == '\0')
		return -EINVAL;
	memcpy(host, slash + 1, (size_t)(colon - slash - 1));
	host[colon - slash - 1] = '\0';
	snprintf(port, psize, "%s", colon + 1);
	return 0;
}

tport_t *flow_connection(nta_agent_t *agent, const char *transport, const char *token)
{
	char local[FLOW_TOKEN_MAX], host[FLOW_TOKEN_MAX], port[8], addr[FLOW_TOKEN_MAX];

	if (agent == NULL || transport == NULL || token == NULL ||
	    flow_token_split(token, local, sizeof local, host, sizeof host, port, sizeof port) < 0)
		return NULL;
	for (tport_t *pri = tport_primaries(nta_agent_tports(agent)); pri; pri = tport_next(pri)) {
		tp_name_t tpn = { 0 };
		tport_t *conn;

		if (tport_is_dgram(pri) || strcmp(flow_transport_of(pri), transport) != 0 ||
		    flow_tport_addr(pri, addr, sizeof addr) < 0 || strcmp(addr, local) != 0)
			continue;
		tpn.tpn_proto = tport_name(pri)->tpn_proto;
		tpn.tpn_canon = host;
		tpn.tpn_host = host;
		tpn.tpn_port = port;
		conn = tport_by_name(pri, &tpn);
		if (conn && conn != pri && tport_is_secondary(conn) && !tport_is_closed(conn))
			return conn;
	}
	return NULL;
}
