/*
 * store — the names of the schema: the redis_address parser, the reading
 * of a sentinel's answer and the key builders.  See store.h; the keys are
 * listed in docs/redis-schema.md.
 *
 * Design note.  These are pure (libc only) and live in libb2bcore, so that
 * the configuration check, the workers' connection (worker/rds.c) and the
 * management side's connection (store_sync.c) accept exactly the same
 * addresses, and every key of a kind is spelt by one function.  A key that
 * does not fit is an error, never a silently shorter key.
 */
#include "store/store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

/* ------------------------------------------------------------ addresses */

/* A port written after a host: 1..65535, digits only. */
static int store_port_parse(const char *s, int *port)
{
	size_t len = strlen(s);
	long v = 0;

	if (len == 0 || len > 5)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -EINVAL;
	*port = (int)v;
	return 0;
}

/* "unix:/abs/path", the path shorter than sun_path. */
static const char *store_address_unix(const char *path, struct store_address *out)
{
	if (path[0] != '/')
		return "the socket path after \"unix:\" must be absolute";
	if (strlen(path) >= STORE_UNIX_PATH_MAX)
		return "the socket path must be shorter than 108 bytes";
	snprintf(out->unix_path, sizeof out->unix_path, "%s", path);
	return NULL;
}

/* "[v6]" at the start of s; *rest is what follows the bracket. */
static const char *store_address_v6(const char *s, struct store_address *out, const char **rest)
{
	unsigned char buf[sizeof(struct in6_addr)];
	const char *end = strchr(s, ']');

	if (end == NULL || (size_t)(end - s - 1) >= sizeof out->host)
		return "the host in brackets is not an IPv6 address";
	memcpy(out->host, s + 1, (size_t)(end - s - 1));
	out->host[end - s - 1] = '\0';
	if (inet_pton(AF_INET6, out->host, buf) != 1)
		return "the host in brackets is not an IPv6 address";
	*rest = end + 1;
	return NULL;
}

/* "a.b.c.d" up to the first ':'; *rest is from that ':' on. */
static const char *store_address_v4(const char *s, struct store_address *out, const char **rest)
{
	const char *colon = s + strcspn(s, ":");
	struct in_addr a4;

	/* An address, not a name: hiredis would resolve a name with a blocking
	 * lookup on every reconnect, stalling a worker's loop. */
	if ((size_t)(colon - s) >= INET_ADDRSTRLEN)
		return "the host must be an IPv4 address (or IPv6 in brackets, "
		       "\"[::1]:6379\"), not a name";
	memcpy(out->host, s, (size_t)(colon - s));
	out->host[colon - s] = '\0';
	if (inet_pton(AF_INET, out->host, &a4) != 1)
		return "the host must be an IPv4 address (or IPv6 in brackets, "
		       "\"[::1]:6379\"), not a name";
	*rest = colon;
	return NULL;
}

static const char *store_address_why(const char *s, struct store_address *out)
{
	const char *port = NULL, *why;

	if (strncmp(s, "unix:", 5) == 0)
		return store_address_unix(s + 5, out);
	if (s[0] == '[')
		why = store_address_v6(s, out, &port);
	else
		why = store_address_v4(s, out, &port);
	if (why != NULL)
		return why;
	if (*port != ':')
		return "no port: write \"host:port\"";
	if (store_port_parse(port + 1, &out->port) < 0)
		return "the port must be between 1 and 65535";
	return NULL;
}

int store_address_parse(const char *text, struct store_address *out, const char **why)
{
	struct store_address a;
	const char *reason;

	memset(&a, 0, sizeof a);
	reason = text != NULL ? store_address_why(text, &a) : "no address";
	if (why != NULL)
		*why = reason;
	if (reason != NULL)
		return -EINVAL;
	if (out != NULL)
		*out = a;
	return 0;
}

/* ------------------------------------------------------------ Sentinel */

int store_sentinel_parse(const char *text, struct store_address *out, const char **why)
{
	if (text != NULL && strncmp(text, "unix:", 5) == 0) {
		if (why != NULL)
			*why = "a sentinel listens on TCP: write \"ip:port\", not \"unix:\"";
		return -EINVAL;
	}
	return store_address_parse(text, out, why);
}

void store_address_format(const struct store_address *a, char *out, size_t size)
{
	if (a->unix_path[0] != '\0')
		snprintf(out, size, "unix:%s", a->unix_path);
	else if (strchr(a->host, ':') != NULL)
		snprintf(out, size, "[%s]:%d", a->host, a->port);
	else
		snprintf(out, size, "%s:%d", a->host, a->port);
}

/* The two strings of a sentinel's answer, host and port, as one address
 * through the one parser (so a name, or a host with junk, is refused). */
static int store_sentinel_pair(const redisReply *host, const redisReply *port,
			       struct store_address *out, char *why, size_t whylen)
{
	char text[STORE_ADDRESS_TEXT_MAX + 8];
	const char *reason;
	int n;

	if (host->len >= STORE_HOST_MAX || port->len > 5 || memchr(host->str, '\0', host->len)) {
		snprintf(why, whylen, "answered an address too long to be one");
		return -EBADMSG;
	}
	if (memchr(host->str, ':', host->len) != NULL)
		n = snprintf(text, sizeof text, "[%.*s]:%.*s", (int)host->len, host->str,
			     (int)port->len, port->str);
	else
		n = snprintf(text, sizeof text, "%.*s:%.*s", (int)host->len, host->str,
			     (int)port->len, port->str);
	if (n < 0 || (size_t)n >= sizeof text ||
	    store_sentinel_parse(text, out, &reason) < 0) {
		snprintf(why, whylen, "answered \"%.60s\": %s", text,
			 n < 0 || (size_t)n >= sizeof text ? "too long" : reason);
		return -EBADMSG;
	}
	return 0;
}

int store_sentinel_answer(const struct redisReply *r, struct store_address *out, char *why,
			  size_t whylen)
{
	if (r == NULL) {
		snprintf(why, whylen, "no answer");
		return -EBADMSG;
	}
	if (r->type == REDIS_REPLY_NIL) {
		snprintf(why, whylen, "answered nil: it monitors no master of that name");
		return -ENOENT;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(why, whylen, "answered an error: %.120s", r->str);
		return -EBADMSG;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING) {
		snprintf(why, whylen, "answered something other than [ip, port] (reply type %d, "
			 "%zu elements)", r->type, r->type == REDIS_REPLY_ARRAY ? r->elements : 0);
		return -EBADMSG;
	}
	return store_sentinel_pair(r->element[0], r->element[1], out, why, whylen);
}

int store_role_is_master(const struct redisReply *r, const char **role)
{
	const char *what = "no valid ROLE answer";
	int master = 0;

	if (r != NULL && r->type == REDIS_REPLY_ERROR) {
		what = "ROLE refused";
	} else if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
		   (r->element[0]->type == REDIS_REPLY_STRING ||
		    r->element[0]->type == REDIS_REPLY_STATUS)) {
		/* Redis says "master", "slave" or "sentinel"; keep our text static. */
		if (strcmp(r->element[0]->str, "master") == 0) {
			what = "master";
			master = 1;
		} else if (strcmp(r->element[0]->str, "slave") == 0) {
			what = "slave (a replica)";
		} else if (strcmp(r->element[0]->str, "sentinel") == 0) {
			what = "sentinel";
		} else {
			what = "unknown";
		}
	}
	if (role != NULL)
		*role = what;
	return master;
}

/* ------------------------------------------------------------ key names */

static const char *const store_key_kinds[] = {
	[STORE_KEY_USER] = "user",
	[STORE_KEY_LOCATION] = "loc",
	[STORE_KEY_ACTIVE] = "active",
	[STORE_KEY_NONCE_COUNT] = "nc",
	[STORE_KEY_AUTH_FAIL] = "authfail",
	[STORE_KEY_CALLS] = "calls",
};

int store_key(const char *prefix, enum store_key_kind kind, const char *id, char *out,
	      size_t size)
{
	int n;

	if ((unsigned)kind >= sizeof store_key_kinds / sizeof store_key_kinds[0])
		return -EINVAL;
	n = snprintf(out, size, "%s%s:%s", prefix, store_key_kinds[kind], id);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int store_cdr_stream_key(const char *prefix, const char *cdr_stream, char *out, size_t size)
{
	int n = snprintf(out, size, "%s%s", prefix, cdr_stream);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int store_cdr_seen_key(const char *stream_key, const char *id, char *out, size_t size)
{
	int n = snprintf(out, size, "%s:seen:%s", stream_key, id);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}
