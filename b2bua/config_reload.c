/*
 * config_reload — see config_reload.h.
 *
 * Design note.  Two tables, both by key name.  config_restart_only says
 * which keys wait for a restart, each with why; it is the table of
 * docs/configuration.md.  config_fields says which bytes of struct config
 * each key fills, so that two loaded configurations compare key by key on
 * their final values (a default, a value derived from another key) and
 * not on what the file says.  A list key (routes, trusted,
 * redis_sentinels) is its array, zero past its count, and its count.
 */
#include "b2bua/config_reload.h"
#include "b2bua/config_keys.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/*
 * The keys a reload does not apply, and why.  Keep it short: a key belongs
 * here only when applying it live would need a new socket, a new shared
 * memory layout, or would break what calls in progress already depend on.
 */
static const struct {
	const char *key;
	const char *why;
} config_restart_only[] = {
	{ "node_id",          "in every call id, tag, spool file and host lease already made" },
	{ "host_lease",       "other hosts judge this host's liveness by the lease it started with" },
	{ "workers",          "the number of processes and of call table and hand-over queues" },
	{ "listen",           "the SIP sockets" },
	{ "advertise",        "in the Via and Contact of every dialog in progress" },
	{ "sip_port",         "the SIP sockets" },
	{ "worker_port_base", "the SIP sockets" },
	{ "udp_rcvbuf",       "set on the SIP sockets when they are made" },
	{ "socket_io",        "how the SIP sockets are read, chosen when they are made" },
	{ "transports",       "the SIP sockets" },
	{ "tls_port",             "the SIP sockets" },
	{ "tls_worker_port_base", "the SIP sockets" },
	{ "tls_certificate",  "read by the TLS ports when they are made" },
	{ "tls_key",          "read by the TLS ports when they are made" },
	{ "tls_ca_file",      "read by the TLS ports when they are made" },
	{ "tls_verify_peer",  "set on the TLS ports when they are made" },
	{ "tls_min_version",  "set on the TLS ports when they are made" },
	{ "call_capacity",    "the size of the shared call table" },
	{ "cli_socket",       "the CLI socket" },
	{ "metrics_address",  "the metrics socket" },
	{ "domain",           "whether a registrar runs, and the bindings it keeps" },
	{ "redis_address",    "the Redis connections carry the CDRs being written" },
	{ "redis_password",   "the Redis connections" },
	{ "redis_db",         "the Redis connections" },
	{ "redis_prefix",     "renames every key, the call limits of calls in progress too" },
	{ "redis_timeout",    "the Redis connections" },
	{ "redis_sentinels",  "the Redis connections" },
	{ "redis_master_name", "the Redis connections" },
	{ "redis_wait_replicas", "how the CDR writer confirms what it sent: a WAIT may be on the way" },
	{ "redis_wait_timeout",  "how the CDR writer confirms what it sent: a WAIT may be on the way" },
	{ "cdr_stream",       "the CDRs being written and the spool waiting for them" },
	{ "cdr_spool_dir",    "the open spool files" },
};

#define CONFIG_FIELD(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define CONFIG_NO_COUNT 0, 0

/* Which bytes each key fills.  A new key needs its line here. */
static const struct config_field {
	const char *key;
	size_t off, size;
	size_t off2, size2;     /* a list's count; 0, 0 for others */
} config_fields[] = {
	{ "node_id",          CONFIG_FIELD(node_id), CONFIG_NO_COUNT },
	{ "host_lease",       CONFIG_FIELD(host_lease), CONFIG_NO_COUNT },
	{ "workers",          CONFIG_FIELD(workers), CONFIG_NO_COUNT },
	{ "drain_timeout",    CONFIG_FIELD(drain_timeout), CONFIG_NO_COUNT },
	{ "listen",           CONFIG_FIELD(listen), CONFIG_FIELD(n_listen) },
	{ "advertise",        CONFIG_FIELD(advertise), CONFIG_FIELD(n_listen) },
	{ "sip_port",         CONFIG_FIELD(sip_port), CONFIG_NO_COUNT },
	{ "worker_port_base", CONFIG_FIELD(worker_port_base), CONFIG_NO_COUNT },
	{ "udp_rcvbuf",       CONFIG_FIELD(udp_rcvbuf), CONFIG_NO_COUNT },
	{ "socket_io",        CONFIG_FIELD(socket_io), CONFIG_NO_COUNT },
	{ "transports",       CONFIG_FIELD(transports), CONFIG_NO_COUNT },
	{ "tcp_idle_timeout",    CONFIG_FIELD(tcp_idle_timeout), CONFIG_NO_COUNT },
	{ "tcp_message_timeout", CONFIG_FIELD(tcp_message_timeout), CONFIG_NO_COUNT },
	{ "tcp_max_connections", CONFIG_FIELD(tcp_max_connections), CONFIG_NO_COUNT },
	{ "tcp_max_per_source",  CONFIG_FIELD(tcp_max_per_source), CONFIG_NO_COUNT },
	{ "tls_port",             CONFIG_FIELD(tls_port), CONFIG_NO_COUNT },
	{ "tls_worker_port_base", CONFIG_FIELD(tls_worker_port_base), CONFIG_NO_COUNT },
	{ "tls_certificate",  CONFIG_FIELD(tls_certificate), CONFIG_NO_COUNT },
	{ "tls_key",          CONFIG_FIELD(tls_key), CONFIG_NO_COUNT },
	{ "tls_ca_file",      CONFIG_FIELD(tls_ca_file), CONFIG_NO_COUNT },
	{ "tls_verify_peer",  CONFIG_FIELD(tls_verify_peer), CONFIG_NO_COUNT },
	{ "tls_min_version",  CONFIG_FIELD(tls_min_version), CONFIG_NO_COUNT },
	{ "max_forwards",     CONFIG_FIELD(max_forwards), CONFIG_NO_COUNT },
	{ "invite_timeout",   CONFIG_FIELD(invite_timeout), CONFIG_NO_COUNT },
	{ "call_capacity",    CONFIG_FIELD(call_capacity), CONFIG_NO_COUNT },
	{ "cli_socket",       CONFIG_FIELD(cli_socket), CONFIG_NO_COUNT },
	{ "log_level",        CONFIG_FIELD(log_level), CONFIG_NO_COUNT },
	{ "domain",           CONFIG_FIELD(domain), CONFIG_NO_COUNT },
	{ "realm",            CONFIG_FIELD(realm), CONFIG_NO_COUNT },
	{ "auth_secret",      CONFIG_FIELD(auth_secret), CONFIG_NO_COUNT },
	{ "nonce_ttl",        CONFIG_FIELD(nonce_ttl), CONFIG_NO_COUNT },
	{ "auth_algorithms",  CONFIG_FIELD(auth_algorithms), CONFIG_FIELD(n_auth_algorithms) },
	/* auth_sha256: the deprecated spelling of auth_algorithms (config_auth.c) */
	{ "auth_sha256",      CONFIG_FIELD(auth_algorithms), CONFIG_FIELD(n_auth_algorithms) },
	{ "register_min_expires",     CONFIG_FIELD(register_min_expires), CONFIG_NO_COUNT },
	{ "register_default_expires", CONFIG_FIELD(register_default_expires), CONFIG_NO_COUNT },
	{ "register_max_expires",     CONFIG_FIELD(register_max_expires), CONFIG_NO_COUNT },
	{ "auth_fail_limit",  CONFIG_FIELD(auth_fail_limit), CONFIG_NO_COUNT },
	{ "auth_fail_window", CONFIG_FIELD(auth_fail_window), CONFIG_NO_COUNT },
	{ "nat_keepalive_interval", CONFIG_FIELD(nat_keepalive_interval), CONFIG_NO_COUNT },
	{ "trusted",          CONFIG_FIELD(trusted), CONFIG_FIELD(n_trusted) },
	{ "untrusted_invite", CONFIG_FIELD(untrusted_invite), CONFIG_NO_COUNT },
	{ "allow_unauthenticated_to_local", CONFIG_FIELD(allow_unauthenticated_to_local),
	  CONFIG_NO_COUNT },
	{ "rate_limit_invite",         CONFIG_FIELD(rate_limit_invite), CONFIG_NO_COUNT },
	{ "rate_limit_invite_burst",   CONFIG_FIELD(rate_limit_invite_burst), CONFIG_NO_COUNT },
	{ "rate_limit_register",       CONFIG_FIELD(rate_limit_register), CONFIG_NO_COUNT },
	{ "rate_limit_register_burst", CONFIG_FIELD(rate_limit_register_burst), CONFIG_NO_COUNT },
	{ "redis_address",    CONFIG_FIELD(redis_address), CONFIG_NO_COUNT },
	{ "redis_password",   CONFIG_FIELD(redis_password), CONFIG_NO_COUNT },
	{ "redis_db",         CONFIG_FIELD(redis_db), CONFIG_NO_COUNT },
	{ "redis_prefix",     CONFIG_FIELD(redis_prefix), CONFIG_NO_COUNT },
	{ "redis_timeout",    CONFIG_FIELD(redis_timeout), CONFIG_NO_COUNT },
	{ "redis_sentinels",  CONFIG_FIELD(redis_sentinels), CONFIG_FIELD(n_redis_sentinels) },
	{ "redis_master_name", CONFIG_FIELD(redis_master_name), CONFIG_NO_COUNT },
	{ "redis_wait_replicas", CONFIG_FIELD(redis_wait_replicas), CONFIG_NO_COUNT },
	{ "redis_wait_timeout",  CONFIG_FIELD(redis_wait_timeout), CONFIG_NO_COUNT },
	{ "cdr_stream",       CONFIG_FIELD(cdr_stream), CONFIG_NO_COUNT },
	{ "cdr_spool_dir",    CONFIG_FIELD(cdr_spool_dir), CONFIG_NO_COUNT },
	{ "no_answer_timeout", CONFIG_FIELD(no_answer_timeout), CONFIG_NO_COUNT },
	{ "forward_max_hops", CONFIG_FIELD(forward_max_hops), CONFIG_NO_COUNT },
	{ "max_call_duration", CONFIG_FIELD(max_call_duration), CONFIG_NO_COUNT },
	{ "call_rest_after",  CONFIG_FIELD(call_rest_after), CONFIG_NO_COUNT },
	{ "session_expires",  CONFIG_FIELD(session_expires), CONFIG_NO_COUNT },
	{ "min_se",           CONFIG_FIELD(min_se), CONFIG_NO_COUNT },
	{ "overload_queue_delay_ms", CONFIG_FIELD(overload_queue_delay_ms), CONFIG_NO_COUNT },
	{ "overload_setup_calls",    CONFIG_FIELD(overload_setup_calls), CONFIG_NO_COUNT },
	{ "overload_retry_after",    CONFIG_FIELD(overload_retry_after), CONFIG_NO_COUNT },
	{ "routes",           CONFIG_FIELD(routes), CONFIG_FIELD(n_routes) },
	{ "metrics_address",  CONFIG_FIELD(metrics_address), CONFIG_NO_COUNT },
};

int config_key_restart_only(const char *key)
{
	for (size_t i = 0; i < sizeof config_restart_only / sizeof config_restart_only[0]; i++)
		if (strcmp(config_restart_only[i].key, key) == 0)
			return 1;
	return 0;
}

static const struct config_field *config_field_of(const char *key)
{
	for (size_t i = 0; i < sizeof config_fields / sizeof config_fields[0]; i++)
		if (strcmp(config_fields[i].key, key) == 0)
			return &config_fields[i];
	return NULL;
}

int config_key_field(const char *key, size_t *off, size_t *size, size_t *off2,
		     size_t *size2)
{
	const struct config_field *f = config_field_of(key);

	if (f == NULL)
		return -ENOENT;
	*off = f->off;
	*size = f->size;
	*off2 = f->off2;
	*size2 = f->size2;
	return 0;
}

/* Do a and b differ in the bytes of field f? */
static int config_field_differs(const struct config_field *f, const struct config *a,
				const struct config *b)
{
	const char *pa = (const char *)a, *pb = (const char *)b;

	return memcmp(pa + f->off, pb + f->off, f->size) != 0 ||
	       memcmp(pa + f->off2, pb + f->off2, f->size2) != 0;
}

/* Give `to` the value `from` has for field f. */
static void config_field_copy(const struct config_field *f, struct config *to,
			      const struct config *from)
{
	memcpy((char *)to + f->off, (const char *)from + f->off, f->size);
	memcpy((char *)to + f->off2, (const char *)from + f->off2, f->size2);
}

void config_reload_plan(const struct config *cur, struct config *next,
			struct config_reload_plan *plan)
{
	const char *key;

	memset(plan, 0, sizeof *plan);
	/* No auth_secret in the file: the running one, maybe this start's random one. */
	if (next->auth_secret[0] == '\0')
		memcpy(next->auth_secret, cur->auth_secret, sizeof next->auth_secret);
	/* realm follows domain unless set (config.c): while a new domain waits
	 * for a restart, a realm that only follows it waits too. */
	if (strcmp(next->realm, next->domain) == 0 && strcmp(cur->realm, cur->domain) == 0)
		memcpy(next->realm, cur->realm, sizeof next->realm);
	for (size_t i = 0; (key = config_key_name(i)) != NULL; i++) {
		const struct config_field *f = config_field_of(key);

		if (f == NULL || !config_field_differs(f, cur, next))
			continue;
		if (strcmp(key, "auth_sha256") == 0)
			continue;   /* the same field as auth_algorithms: named once, by that name */
		if (config_key_restart_only(key)) {
			if (plan->n_restart < CONFIG_RELOAD_KEYS_MAX)
				plan->restart_needed[plan->n_restart++] = key;
			config_field_copy(f, next, cur);
		} else if (plan->n_applied < CONFIG_RELOAD_KEYS_MAX) {
			plan->applied[plan->n_applied++] = key;
		}
	}
}

/* Append "name KEY KEY...\n" to buf at *len. */
static int config_reload_line(const char *name, const char *const *keys, size_t n,
			      char *buf, size_t size, size_t *len)
{
	int w = snprintf(buf + *len, size - *len, "%s", name);

	if (w < 0 || (size_t)w >= size - *len)
		return -ENOSPC;
	*len += (size_t)w;
	for (size_t i = 0; i < n; i++) {
		w = snprintf(buf + *len, size - *len, " %s", keys[i]);
		if (w < 0 || (size_t)w >= size - *len)
			return -ENOSPC;
		*len += (size_t)w;
	}
	w = snprintf(buf + *len, size - *len, "\n");
	if (w < 0 || (size_t)w >= size - *len)
		return -ENOSPC;
	*len += (size_t)w;
	return 0;
}

int config_reload_format(const struct config_reload_plan *plan, char *buf, size_t size)
{
	size_t len = 0;
	int rc;

	if (size == 0)
		return -ENOSPC;
	buf[0] = '\0';
	rc = config_reload_line("applied", plan->applied, plan->n_applied, buf, size, &len);
	if (rc == 0)
		rc = config_reload_line("restart_needed", plan->restart_needed, plan->n_restart,
					buf, size, &len);
	return rc;
}
