/*
 * store — the names of the schema: the redis_address parser and the key
 * builders.  See store.h; the keys are listed in docs/redis-schema.md.
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

/* ------------------------------------------------------------ key names */

static const char *const store_key_kinds[] = {
	[STORE_KEY_USER] = "user",
	[STORE_KEY_LOCATION] = "loc",
	[STORE_KEY_ACTIVE] = "active",
	[STORE_KEY_NONCE_COUNT] = "nc",
	[STORE_KEY_AUTH_FAIL] = "authfail",
	[STORE_KEY_CALLS] = "calls",
	[STORE_KEY_HOST] = "host",
	[STORE_KEY_HOST_CLAIM] = "hostclaim",
	[STORE_KEY_CALLS_BAD] = "callsbad",
};

int store_hosts_key(const char *prefix, char *out, size_t size)
{
	int n = snprintf(out, size, "%shosts", prefix);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

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
