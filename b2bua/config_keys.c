/*
 * config_keys — one loader per configuration key, and the table of keys.
 * See config.h for the contract and config.c for the walk.
 *
 * Design note.  A loader checks its key's type, range and content and
 * stores it in struct config; it fails with config_fail(), "file:line:
 * key: what is wrong and what is allowed".  A value that does not fit its
 * field is an error naming the key, never a cut.  The table lists every
 * key the file may contain: a name without a loader is an unknown key.
 * The syntax helpers are strict on purpose: "127.0.0.256" is a typo, not a
 * host name, and a redis_address is checked by the store's own parser.
 */
#include "b2bua/config_keys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "b2bua/metrics_text.h"
#include "store/store.h"

/* sizeof(((struct sockaddr_un *)0)->sun_path) on Linux. */
#define CONFIG_SUN_PATH_MAX 108

/* ------------------------------------------------------------ typed values */

/* libconfig gives 32-bit and 64-bit integers different types; accept both. */
static int config_get_int(const struct config_ctx *ctx, const config_setting_t *s,
			  long long min, long long max, long long *out)
{
	const char *key = config_setting_name(s);
	int type = config_setting_type(s);
	long long v;

	if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
		return config_fail(ctx, s, key, "must be an integer between %lld and %lld",
				   min, max);
	v = config_setting_get_int64(s);
	if (v < min || v > max)
		return config_fail(ctx, s, key, "%lld is out of range: "
				   "must be between %lld and %lld", v, min, max);
	*out = v;
	return 0;
}

int config_get_int_field(const struct config_ctx *ctx, const config_setting_t *s,
			 long long min, long long max, int *field)
{
	long long v = 0;
	int rc = config_get_int(ctx, s, min, max, &v);

	if (rc == 0)
		*field = (int)v;
	return rc;
}

/* Copy a string setting into dst[size]; too long is an error, never a cut. */
static int config_get_string(const struct config_ctx *ctx, const config_setting_t *s,
			     const char *key, char *dst, size_t size)
{
	const char *v;
	size_t len;

	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return config_fail(ctx, s, key, "must be a string (in double quotes)");
	v = config_setting_get_string(s);
	len = strlen(v);
	if (len >= size)
		return config_fail(ctx, s, key, "too long (%zu bytes): at most %zu bytes",
				   len, size - 1);
	memcpy(dst, v, len + 1);
	return 0;
}

/* ------------------------------------------------------------ syntax helpers */

/* ASCII only: the locale must not change what a valid node_id is. */
int config_is_alnum(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int config_is_ip(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* RFC 1123 host name: dot-separated labels of [A-Za-z0-9-], no '-' at a label's ends. */
static int config_is_hostname(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
		} else if (config_is_alnum(c) || (c == '-' && label > 0)) {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return label > 0 && s[len - 1] != '-';
}

/* A port written after a host: 1..65535, digits only. */
static int config_is_port(const char *s, size_t len)
{
	long v = 0;

	if (len == 0 || len > 5)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (s[i] - '0');
	}
	return v >= 1 && v <= 65535;
}

/*
 * "sip:[user@]host[:port][;params][?headers]", host being a name, an IPv4
 * address or a bracketed IPv6 address.  Enough to catch typos at load time;
 * the worker hands the whole URI to Sofia-SIP.
 */
static int config_is_sip_target(const char *uri)
{
	const char *host, *end, *at;

	if (strncmp(uri, "sip:", 4) != 0)
		return 0;
	for (const char *p = uri; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return 0;
	host = uri + 4;
	at = strchr(host, '@');
	if (at != NULL)
		host = at + 1;
	if (*host == '[') {
		char v6[INET6_ADDRSTRLEN];
		unsigned char buf[sizeof(struct in6_addr)];

		end = strchr(host, ']');
		if (end == NULL || (size_t)(end - host - 1) >= sizeof v6)
			return 0;
		memcpy(v6, host + 1, (size_t)(end - host - 1));
		v6[end - host - 1] = '\0';
		if (inet_pton(AF_INET6, v6, buf) != 1)
			return 0;
		end++;
	} else {
		end = host + strcspn(host, ":;?");
		if (!config_is_hostname(host, (size_t)(end - host)))
			return 0;
	}
	if (*end == ':') {
		size_t len = strcspn(end + 1, ";?");

		if (!config_is_port(end + 1, len))
			return 0;
		end += 1 + len;
	}
	return *end == '\0' || *end == ';' || *end == '?';
}

/*
 * A host name or an IPv4 address.  Digits and dots alone are taken as an
 * IPv4 address and must be one: "127.0.0.256" is a typo, not a host name.
 */
static int config_is_host(const char *s, size_t len)
{
	char v4[INET_ADDRSTRLEN];
	unsigned char buf[sizeof(struct in_addr)];

	if (strspn(s, "0123456789.") < len)
		return config_is_hostname(s, len);
	if (len >= sizeof v4)
		return 0;
	memcpy(v4, s, len);
	v4[len] = '\0';
	return inet_pton(AF_INET, v4, buf) == 1;
}

/* ::ffff:a.b.c.d, i.e. an IPv4 address seen through an IPv6 socket. */
int config_is_v4mapped(const unsigned char *a16)
{
	static const unsigned char prefix[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
	};

	return memcmp(a16, prefix, sizeof prefix) == 0;
}

/* The "len" of "addr/len": 1 to 3 digits, 0..max; -1 when it is not. */
static int config_parse_prefix_len(const char *s, int max)
{
	size_t n = strlen(s);
	int v = 0;

	if (n == 0 || n > 3)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v <= max ? v : -1;
}

/* ------------------------------------------------------------ key loaders */

static int config_load_node_id(const struct config_ctx *ctx, const config_setting_t *s,
			       struct config *cfg)
{
	const char *key = config_setting_name(s);
	int rc = config_get_string(ctx, s, key, cfg->node_id, sizeof cfg->node_id);

	if (rc < 0)
		return rc;
	if (cfg->node_id[0] == '\0')
		return config_fail(ctx, s, key,
				   "must not be empty: 1 to %zu characters [A-Za-z0-9-]",
				   sizeof cfg->node_id - 1);
	for (const char *p = cfg->node_id; *p != '\0'; p++)
		if (!config_is_alnum(*p) && *p != '-')
			return config_fail(ctx, s, key,
					   "\"%s\" has '%c': only [A-Za-z0-9-] allowed",
					   cfg->node_id, *p);
	return 0;
}

/* A host's heartbeat lease (b2bua/hosts.h).  It must outlast the longest
 * pause of the management process that renews it (a `user list` may take
 * STORE_LIST_MAX_MS = 3 s, a heartbeat up to 1 s more), or a busy host
 * would be taken for lost; above a minute a lost host's calls stay up
 * (and unbilled) too long. */
static int config_load_host_lease(const struct config_ctx *ctx, const config_setting_t *s,
				  struct config *cfg)
{
	return config_get_int_field(ctx, s, 4000, 60000, &cfg->host_lease);
}

static int config_load_workers(const struct config_ctx *ctx, const config_setting_t *s,
			       struct config *cfg)
{
	/* 0 stays 0 here; config_finish resolves it to the CPU count. */
	return config_get_int_field(ctx, s, 0, CONFIG_MAX_WORKERS, &cfg->workers);
}

static int config_load_drain_timeout(const struct config_ctx *ctx, const config_setting_t *s,
				     struct config *cfg)
{
	return config_get_int_field(ctx, s, 0, 3600, &cfg->drain_timeout);
}

/*
 * listen and advertise: a string, or a list of strings (one per address,
 * docs/architecture.md "IPv6").  The entries of `s` (the string itself, or
 * each element) go to `dst`; *n their number, 1..CONFIG_MAX_LISTEN.
 */
static int config_get_addr_list(const struct config_ctx *ctx, const config_setting_t *s,
				char (*dst)[64], size_t *n)
{
	const char *key = config_setting_name(s);
	int type = config_setting_type(s);
	int len;
	char name[32];

	memset(dst, 0, sizeof(char[CONFIG_MAX_LISTEN][64]));
	if (type == CONFIG_TYPE_STRING) {
		*n = 1;
		return config_get_string(ctx, s, key, dst[0], sizeof dst[0]);
	}
	if (type != CONFIG_TYPE_LIST && type != CONFIG_TYPE_ARRAY)
		return config_fail(ctx, s, key, "must be a string or a list of strings: "
				   "\"::1\" or [ \"192.0.2.1\", \"2001:db8::1\" ]");
	len = config_setting_length(s);
	if (len < 1 || len > CONFIG_MAX_LISTEN)
		return config_fail(ctx, s, key, "%d entries: 1 to %d allowed", len,
				   CONFIG_MAX_LISTEN);
	for (int i = 0; i < len; i++) {
		int rc;

		snprintf(name, sizeof name, "%s[%d]", key, i);
		rc = config_get_string(ctx, config_setting_get_elem(s, (unsigned)i), name,
				       dst[i], sizeof dst[i]);
		if (rc < 0)
			return rc;
	}
	*n = (size_t)len;
	return 0;
}

static int config_load_listen(const struct config_ctx *ctx, const config_setting_t *s,
			      struct config *cfg)
{
	const char *key = config_setting_name(s);
	int rc = config_get_addr_list(ctx, s, cfg->listen, &cfg->n_listen);

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < cfg->n_listen; i++) {
		if (!config_is_ip(cfg->listen[i]))
			return config_fail(ctx, s, key,
					   "\"%s\" is not an IP address: write an IPv4 or IPv6 "
					   "literal (e.g. \"127.0.0.1\", \"::1\"), no brackets, "
					   "no host name", cfg->listen[i]);
		for (size_t j = 0; j < i; j++)
			if (strcmp(cfg->listen[i], cfg->listen[j]) == 0)
				return config_fail(ctx, s, key, "\"%s\" is listed twice",
						   cfg->listen[i]);
	}
	return 0;
}

/* Its count is checked against listen's once both are read (config.c). */
static int config_load_advertise(const struct config_ctx *ctx, const config_setting_t *s,
				 struct config *cfg)
{
	const char *key = config_setting_name(s);
	size_t n = 0;
	int rc = config_get_addr_list(ctx, s, cfg->advertise, &n);

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (!config_is_ip(cfg->advertise[i]) &&
		    !config_is_hostname(cfg->advertise[i], strlen(cfg->advertise[i])))
			return config_fail(ctx, s, key,
					   "\"%s\" is neither a host name nor an IPv4/IPv6 address "
					   "(no brackets, no port)", cfg->advertise[i]);
	return 0;
}

static int config_load_sip_port(const struct config_ctx *ctx, const config_setting_t *s,
				struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 65535, &cfg->sip_port);
}

static int config_load_worker_port_base(const struct config_ctx *ctx,
					const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 65535, &cfg->worker_port_base);
}

static int config_load_socket_io(const struct config_ctx *ctx, const config_setting_t *s,
				 struct config *cfg)
{
	const char *v = config_setting_type(s) == CONFIG_TYPE_STRING ?
			config_setting_get_string(s) : "";

	if (strcmp(v, "auto") != 0 && strcmp(v, "ring") != 0 && strcmp(v, "poll") != 0)
		return config_fail(ctx, s, config_setting_name(s),
				   "must be \"auto\", \"ring\" or \"poll\"");
	snprintf(cfg->socket_io, sizeof cfg->socket_io, "%s", v);
	return 0;
}

/* transports = ["udp", "tcp", "tls"]: a list of names, "udp" always among
 * them (every worker's own port, and so every dialog, needs it).  "tls"
 * needs the tls_* keys (config_tls.c). */
static int config_load_transports(const struct config_ctx *ctx, const config_setting_t *s,
				  struct config *cfg)
{
	const char *key = config_setting_name(s);
	int type = config_setting_type(s);
	unsigned bits = 0;

	if (type != CONFIG_TYPE_LIST && type != CONFIG_TYPE_ARRAY)
		return config_fail(ctx, s, key, "must be a list: [ \"udp\", \"tcp\", \"tls\" ]");
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *v = config_setting_type(e) == CONFIG_TYPE_STRING ?
				config_setting_get_string(e) : "";

		if (strcmp(v, "udp") == 0)
			bits |= CONFIG_TP_UDP;
		else if (strcmp(v, "tcp") == 0)
			bits |= CONFIG_TP_TCP;
		else if (strcmp(v, "tls") == 0)
			bits |= CONFIG_TP_TLS;
		else
			return config_fail(ctx, s, key, "entry %d: \"%s\": must be \"udp\", "
					   "\"tcp\" or \"tls\"", i, v);
	}
	if (!(bits & CONFIG_TP_UDP))
		return config_fail(ctx, s, key, "must name \"udp\"");
	cfg->transports = bits;
	return 0;
}

static int config_load_udp_rcvbuf(const struct config_ctx *ctx, const config_setting_t *s,
				  struct config *cfg)
{
	return config_get_int_field(ctx, s, 65536, 268435456, &cfg->udp_rcvbuf);
}

static int config_load_max_forwards(const struct config_ctx *ctx, const config_setting_t *s,
				    struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 255, &cfg->max_forwards);
}

static int config_load_invite_timeout(const struct config_ctx *ctx, const config_setting_t *s,
				      struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 600, &cfg->invite_timeout);
}

static int config_load_call_capacity(const struct config_ctx *ctx, const config_setting_t *s,
				     struct config *cfg)
{
	long long v = 0;
	int rc = config_get_int(ctx, s, 1, 4194304, &v);

	if (rc == 0)
		cfg->call_capacity = (unsigned)v;
	return rc;
}

static int config_load_cli_socket(const struct config_ctx *ctx, const config_setting_t *s,
				  struct config *cfg)
{
	const char *key = config_setting_name(s);
	int rc;

	/* The limit is the kernel's sun_path, far below the field's PATH_MAX. */
	rc = config_get_string(ctx, s, key, cfg->cli_socket, CONFIG_SUN_PATH_MAX);
	if (rc < 0)
		return rc;
	if (cfg->cli_socket[0] == '\0')
		return config_fail(ctx, s, key, "must not be empty: a Unix socket path "
				   "shorter than %d bytes", CONFIG_SUN_PATH_MAX);
	return 0;
}

/* "ip:port" or "[v6]:port" of the metrics endpoint (metrics_text.h's parser);
 * "" turns it off. */
static int config_load_metrics_address(const struct config_ctx *ctx, const config_setting_t *s,
				       struct config *cfg)
{
	const char *key = config_setting_name(s);
	const char *why = NULL;
	int rc = config_get_string(ctx, s, key, cfg->metrics_address, sizeof cfg->metrics_address);

	if (rc < 0 || cfg->metrics_address[0] == '\0')
		return rc;
	if (metrics_address_parse(cfg->metrics_address, NULL, NULL, &why) < 0)
		return config_fail(ctx, s, key, "\"%s\": %s; it is \"ip:port\" (e.g. "
				   "\"127.0.0.1:9464\" or \"[::1]:9464\"), or \"\" for off",
				   cfg->metrics_address, why);
	return 0;
}

static int config_load_log_level(const struct config_ctx *ctx, const config_setting_t *s,
				 struct config *cfg)
{
	const char *key = config_setting_name(s);

	if (config_setting_type(s) != CONFIG_TYPE_STRING ||
	    log_level_parse(config_setting_get_string(s), &cfg->log_level) < 0)
		return config_fail(ctx, s, key,
				   "must be one of \"error\", \"warn\", \"info\", \"debug\"");
	return 0;
}

static int config_load_domain(const struct config_ctx *ctx, const config_setting_t *s,
			      struct config *cfg)
{
	const char *key = config_setting_name(s);
	int rc = config_get_string(ctx, s, key, cfg->domain, sizeof cfg->domain);

	if (rc < 0)
		return rc;
	if (!config_is_ip(cfg->domain) && !config_is_host(cfg->domain, strlen(cfg->domain)))
		return config_fail(ctx, s, key,
				   "\"%s\" is neither a host name nor an IPv4/IPv6 address "
				   "(no brackets, no port)", cfg->domain);
	return 0;
}

/* The realm is sent inside a quoted string: no quote, no backslash, no control. */
static int config_load_realm(const struct config_ctx *ctx, const config_setting_t *s,
			     struct config *cfg)
{
	const char *key = config_setting_name(s);
	int rc = config_get_string(ctx, s, key, cfg->realm, sizeof cfg->realm);

	if (rc < 0)
		return rc;
	if (cfg->realm[0] == '\0')
		return config_fail(ctx, s, key, "must not be empty: 1 to %zu printable "
				   "ASCII characters, no '\"' or '\\'", sizeof cfg->realm - 1);
	for (const char *p = cfg->realm; *p != '\0'; p++)
		if (*p < ' ' || *p > '~' || *p == '"' || *p == '\\')
			return config_fail(ctx, s, key, "has character 0x%02x: only printable "
					   "ASCII allowed, no '\"' or '\\'", (unsigned char)*p);
	return 0;
}

/* The value is a secret: errors give its length, never its text. */
static int config_load_auth_secret(const struct config_ctx *ctx, const config_setting_t *s,
				   struct config *cfg)
{
	const char *key = config_setting_name(s);
	int rc = config_get_string(ctx, s, key, cfg->auth_secret, sizeof cfg->auth_secret);
	size_t len;

	if (rc < 0)
		return rc;
	len = strlen(cfg->auth_secret);
	if (len > 0 && len < 16)
		return config_fail(ctx, s, key, "too short (%zu bytes): at least 16 bytes, "
				   "or \"\" to have one generated at start", len);
	return 0;
}

static int config_load_nonce_ttl(const struct config_ctx *ctx, const config_setting_t *s,
				 struct config *cfg)
{
	return config_get_int_field(ctx, s, 10, 3600, &cfg->nonce_ttl);
}

/* The order min <= default <= max is checked by config_finish. */
static int config_load_register_min_expires(const struct config_ctx *ctx,
					    const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 86400, &cfg->register_min_expires);
}

static int config_load_register_default_expires(const struct config_ctx *ctx,
						const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 86400, &cfg->register_default_expires);
}

static int config_load_register_max_expires(const struct config_ctx *ctx,
					    const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 86400, &cfg->register_max_expires);
}

static int config_load_auth_fail_limit(const struct config_ctx *ctx, const config_setting_t *s,
				       struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 100000, &cfg->auth_fail_limit);
}

static int config_load_auth_fail_window(const struct config_ctx *ctx,
					const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 86400, &cfg->auth_fail_window);
}

static int config_load_nat_keepalive_interval(const struct config_ctx *ctx,
					      const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 0, 3600, &cfg->nat_keepalive_interval);
}

/*
 * One trusted source, "addr" or "addr/len"; `i` is its index, used in the key
 * name.  Host bits past the prefix are kept as written and ignored when
 * matching.  An IPv4-mapped IPv6 entry is refused: IPv4 sources, also those
 * that arrive as ::ffff:a.b.c.d, are matched against IPv4 entries only, so
 * such an entry could never match and is surely a mistake.
 */
static int config_load_trusted_one(const struct config_ctx *ctx, const config_setting_t *s,
				   unsigned i, struct config *cfg)
{
	struct config_trusted *t = &cfg->trusted[i];
	unsigned char buf[sizeof(struct in6_addr)];
	char key[32], addr[INET6_ADDRSTRLEN];
	const char *slash;
	size_t alen;
	int rc, max;

	snprintf(key, sizeof key, "trusted[%u]", i);
	memset(t, 0, sizeof *t);
	rc = config_get_string(ctx, s, key, t->text, sizeof t->text);
	if (rc < 0)
		return rc;
	slash = strchr(t->text, '/');
	alen = slash != NULL ? (size_t)(slash - t->text) : strlen(t->text);
	if (alen > 0 && alen < sizeof addr) {
		memcpy(addr, t->text, alen);
		addr[alen] = '\0';
	} else {
		addr[0] = '\0';
	}
	memset(buf, 0, sizeof buf);
	if (inet_pton(AF_INET, addr, buf) == 1) {
		t->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, buf) == 1) {
		t->family = AF_INET6;
		max = 128;
	} else {
		return config_fail(ctx, s, key, "\"%s\" is not an IP address: write \"a.b.c.d\" "
				   "or an IPv6 address, optionally with \"/len\"", t->text);
	}
	if (t->family == AF_INET6 && config_is_v4mapped(buf))
		return config_fail(ctx, s, key, "\"%s\" is an IPv4-mapped IPv6 address: "
				   "write the IPv4 form (it also matches ::ffff:a.b.c.d sources)",
				   t->text);
	memcpy(t->addr, buf, sizeof t->addr);
	t->prefix_len = slash != NULL ? config_parse_prefix_len(slash + 1, max) : max;
	if (t->prefix_len < 0)
		return config_fail(ctx, s, key, "\"%s\": the prefix length must be "
				   "between 0 and %d for an %s address", t->text, max,
				   max == 32 ? "IPv4" : "IPv6");
	return 0;
}

/* A list ( "..." ) or, libconfig's other form for scalars, an array [ "..." ]. */
static int config_load_trusted(const struct config_ctx *ctx, const config_setting_t *s,
			       struct config *cfg)
{
	const char *key = config_setting_name(s);
	int type = config_setting_type(s), n;

	if (type != CONFIG_TYPE_LIST && type != CONFIG_TYPE_ARRAY)
		return config_fail(ctx, s, key, "must be a list of strings: "
				   "( \"192.0.2.0/24\", \"2001:db8::1\", ... )");
	n = config_setting_length(s);
	if (n > CONFIG_MAX_TRUSTED)
		return config_fail(ctx, s, key, "%d entries: at most %d allowed",
				   n, CONFIG_MAX_TRUSTED);
	cfg->n_trusted = 0;
	for (int i = 0; i < n; i++) {
		int rc = config_load_trusted_one(ctx, config_setting_get_elem(s, (unsigned)i),
						 (unsigned)i, cfg);

		if (rc < 0)
			return rc;
		cfg->n_trusted = (size_t)i + 1;
	}
	return 0;
}

/* The one parser of redis_address (store/store.h), so that what loads here
 * is what both Redis connections accept. */
static int config_load_redis_address(const struct config_ctx *ctx,
				     const config_setting_t *s, struct config *cfg)
{
	const char *key = config_setting_name(s);
	int rc = config_get_string(ctx, s, key, cfg->redis_address, sizeof cfg->redis_address);
	const char *why;

	if (rc < 0)
		return rc;
	if (store_address_parse(cfg->redis_address, NULL, &why) < 0)
		return config_fail(ctx, s, key, "\"%s\": %s; write \"unix:/path\" or "
				   "\"host:port\"", cfg->redis_address, why);
	return 0;
}

/* The value is a secret: errors never show it. */
static int config_load_redis_password(const struct config_ctx *ctx,
				      const config_setting_t *s, struct config *cfg)
{
	return config_get_string(ctx, s, config_setting_name(s), cfg->redis_password,
				 sizeof cfg->redis_password);
}

static int config_load_redis_db(const struct config_ctx *ctx, const config_setting_t *s,
				struct config *cfg)
{
	return config_get_int_field(ctx, s, 0, 15, &cfg->redis_db);
}

/* Above 1500 ms a REGISTER or an INVITE waiting on a hung Redis would miss
 * its 2 s answer; below 50 ms a busy but healthy Redis would be dropped. */
static int config_load_redis_timeout(const struct config_ctx *ctx, const config_setting_t *s,
				     struct config *cfg)
{
	return config_get_int_field(ctx, s, 50, 1500, &cfg->redis_timeout);
}

/* Replicas a CDR must reach before it leaves the spool (WAIT).  More than
 * a deployment ever runs would only make every CDR wait in vain. */
static int config_load_redis_wait_replicas(const struct config_ctx *ctx,
					   const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 0, 16, &cfg->redis_wait_replicas);
}

/* The bound of one WAIT; against redis_timeout in config.c (config_check_wait). */
static int config_load_redis_wait_timeout(const struct config_ctx *ctx,
					  const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 10, 750, &cfg->redis_wait_timeout);
}

/* Characters that need no quoting in redis-cli and no escaping in KEYS patterns. */
static int config_load_redis_prefix(const struct config_ctx *ctx, const config_setting_t *s,
				    struct config *cfg)
{
	const char *key = config_setting_name(s);
	int rc = config_get_string(ctx, s, key, cfg->redis_prefix, sizeof cfg->redis_prefix);

	if (rc < 0)
		return rc;
	for (const char *p = cfg->redis_prefix; *p != '\0'; p++)
		if (!config_is_alnum(*p) && strchr(":_-.", *p) == NULL)
			return config_fail(ctx, s, key,
					   "\"%s\" has '%c': only [A-Za-z0-9:_.-] allowed",
					   cfg->redis_prefix, *p);
	return 0;
}

/* One sentinel, "ip:port" as redis_address's TCP form (store.h's parser). */
static int config_load_redis_sentinel_one(const struct config_ctx *ctx,
					  const config_setting_t *s, unsigned i,
					  struct config *cfg)
{
	char key[32];
	const char *why;
	int rc;

	snprintf(key, sizeof key, "redis_sentinels[%u]", i);
	rc = config_get_string(ctx, s, key, cfg->redis_sentinels[i], CONFIG_SENTINEL_MAX);
	if (rc < 0)
		return rc;
	if (store_sentinel_parse(cfg->redis_sentinels[i], NULL, &why) < 0)
		return config_fail(ctx, s, key, "\"%s\": %s; write \"ip:port\" "
				   "(\"[::1]:26379\" for IPv6)", cfg->redis_sentinels[i], why);
	return 0;
}

/* A list ( "ip:port", ... ) or an array [ ... ]; at least one entry. */
static int config_load_redis_sentinels(const struct config_ctx *ctx,
				       const config_setting_t *s, struct config *cfg)
{
	const char *key = config_setting_name(s);
	int type = config_setting_type(s), n;

	if (type != CONFIG_TYPE_LIST && type != CONFIG_TYPE_ARRAY)
		return config_fail(ctx, s, key, "must be a list of strings: "
				   "( \"192.0.2.1:26379\", \"192.0.2.2:26379\", ... )");
	n = config_setting_length(s);
	if (n < 1 || n > CONFIG_MAX_SENTINELS)
		return config_fail(ctx, s, key, "%d entries: between 1 and %d allowed",
				   n, CONFIG_MAX_SENTINELS);
	cfg->n_redis_sentinels = 0;
	for (int i = 0; i < n; i++) {
		int rc = config_load_redis_sentinel_one(ctx,
							config_setting_get_elem(s, (unsigned)i),
							(unsigned)i, cfg);

		if (rc < 0)
			return rc;
		cfg->n_redis_sentinels = (size_t)i + 1;
	}
	return 0;
}

/* What Sentinel accepts in `sentinel monitor NAME ...` and we can log. */
static int config_load_redis_master_name(const struct config_ctx *ctx,
					 const config_setting_t *s, struct config *cfg)
{
	const char *key = config_setting_name(s);
	int rc = config_get_string(ctx, s, key, cfg->redis_master_name,
				   sizeof cfg->redis_master_name);

	if (rc < 0)
		return rc;
	if (cfg->redis_master_name[0] == '\0')
		return config_fail(ctx, s, key, "must not be empty");
	for (const char *p = cfg->redis_master_name; *p != '\0'; p++)
		if (!config_is_alnum(*p) && strchr("_-.", *p) == NULL)
			return config_fail(ctx, s, key,
					   "\"%s\" has '%c': only [A-Za-z0-9_.-] allowed",
					   cfg->redis_master_name, *p);
	return 0;
}

static int config_load_cdr_stream(const struct config_ctx *ctx, const config_setting_t *s,
				  struct config *cfg)
{
	const char *key = config_setting_name(s);
	int rc = config_get_string(ctx, s, key, cfg->cdr_stream, sizeof cfg->cdr_stream);

	if (rc < 0)
		return rc;
	if (cfg->cdr_stream[0] == '\0')
		return config_fail(ctx, s, key, "must not be empty");
	for (const char *p = cfg->cdr_stream; *p != '\0'; p++)
		if (!config_is_alnum(*p) && strchr(":_-.", *p) == NULL)
			return config_fail(ctx, s, key,
					   "\"%s\" has '%c': only [A-Za-z0-9:_.-] allowed",
					   cfg->cdr_stream, *p);
	return 0;
}

static int config_load_cdr_spool_dir(const struct config_ctx *ctx, const config_setting_t *s,
				     struct config *cfg)
{
	const char *key = config_setting_name(s);
	/* Room for "/cdr-<node_id>-w<index>.spool" after the directory. */
	int rc = config_get_string(ctx, s, key, cfg->cdr_spool_dir, sizeof cfg->cdr_spool_dir - 64);

	if (rc < 0)
		return rc;
	if (cfg->cdr_spool_dir[0] != '/')
		return config_fail(ctx, s, key, "\"%s\" must be an absolute path",
				   cfg->cdr_spool_dir);
	return 0;
}

static int config_load_no_answer_timeout(const struct config_ctx *ctx, const config_setting_t *s,
					 struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 600, &cfg->no_answer_timeout);
}

static int config_load_max_call_duration(const struct config_ctx *ctx,
					 const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 0, 604800, &cfg->max_call_duration);
}

static int config_load_call_rest_after(const struct config_ctx *ctx,
				       const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 0, 86400, &cfg->call_rest_after);
}

static int config_load_forward_max_hops(const struct config_ctx *ctx, const config_setting_t *s,
					struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 10, &cfg->forward_max_hops);
}

/* ------------------------------------------------------------ admission, rate limits */

static int config_load_untrusted_invite(const struct config_ctx *ctx, const config_setting_t *s,
					struct config *cfg)
{
	const char *v = config_setting_type(s) == CONFIG_TYPE_STRING ?
			config_setting_get_string(s) : "";

	if (strcmp(v, "challenge") == 0)
		cfg->untrusted_invite = CONFIG_UNTRUSTED_CHALLENGE;
	else if (strcmp(v, "reject") == 0)
		cfg->untrusted_invite = CONFIG_UNTRUSTED_REJECT;
	else
		return config_fail(ctx, s, config_setting_name(s),
				   "must be \"challenge\" (407) or \"reject\" (403)");
	return 0;
}

static int config_load_allow_unauthenticated_to_local(const struct config_ctx *ctx,
						      const config_setting_t *s,
						      struct config *cfg)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return config_fail(ctx, s, config_setting_name(s), "must be true or false");
	cfg->allow_unauthenticated_to_local = config_setting_get_bool(s);
	return 0;
}

static int config_load_rate_limit_invite(const struct config_ctx *ctx,
					 const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 0, 100000, &cfg->rate_limit_invite);
}

static int config_load_rate_limit_invite_burst(const struct config_ctx *ctx,
					       const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 1000000, &cfg->rate_limit_invite_burst);
}

static int config_load_rate_limit_register(const struct config_ctx *ctx,
					   const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 0, 100000, &cfg->rate_limit_register);
}

static int config_load_rate_limit_register_burst(const struct config_ctx *ctx,
						 const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 1000000, &cfg->rate_limit_register_burst);
}

/* RFC 4028 wants Min-SE >= 90; smaller values are for tests only (see
 * docs/configuration.md). */
static int config_load_session_expires(const struct config_ctx *ctx,
				       const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 0, 86400, &cfg->session_expires);
}

static int config_load_min_se(const struct config_ctx *ctx, const config_setting_t *s,
			      struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 86400, &cfg->min_se);
}

/* One route group; `i` is its index in the list, used in key names. */
static int config_load_route(const struct config_ctx *ctx, const config_setting_t *grp,
			     unsigned i, struct config *cfg)
{
	struct config_route *r = &cfg->routes[i];
	const config_setting_t *prefix = NULL, *target = NULL;
	char key[64];
	int rc;

	snprintf(key, sizeof key, "routes[%u]", i);
	if (config_setting_type(grp) != CONFIG_TYPE_GROUP)
		return config_fail(ctx, grp, key,
				   "must be a group { prefix = \"...\"; target = \"sip:...\"; }");
	for (int m = 0; m < config_setting_length(grp); m++) {
		const config_setting_t *s = config_setting_get_elem(grp, (unsigned)m);
		const char *name = config_setting_name(s);

		if (strcmp(name, "prefix") == 0) {
			prefix = s;
		} else if (strcmp(name, "target") == 0) {
			target = s;
		} else {
			snprintf(key, sizeof key, "routes[%u].%s", i, name);
			return config_fail(ctx, s, key,
					   "unknown key (a route has only prefix and target)");
		}
	}

	snprintf(key, sizeof key, "routes[%u].prefix", i);
	if (prefix == NULL)
		return config_fail(ctx, grp, key, "missing: every route needs a prefix "
				   "(\"\" matches every user)");
	rc = config_get_string(ctx, prefix, key, r->prefix, sizeof r->prefix);
	if (rc < 0)
		return rc;
	for (const char *p = r->prefix; *p != '\0'; p++)
		if (!config_is_alnum(*p) && *p != '+' && *p != '*' && *p != '#')
			return config_fail(ctx, prefix, key, "\"%s\" has '%c': only digits, "
					   "letters, '+', '*' and '#' allowed", r->prefix, *p);
	for (unsigned j = 0; j < i; j++)
		if (strcmp(cfg->routes[j].prefix, r->prefix) == 0)
			return config_fail(ctx, prefix, key,
					   "duplicate prefix \"%s\" (already in routes[%u]): "
					   "each prefix may appear once", r->prefix, j);

	snprintf(key, sizeof key, "routes[%u].target", i);
	if (target == NULL)
		return config_fail(ctx, grp, key, "missing: every route needs a target "
				   "(\"sip:host[:port][;params]\")");
	rc = config_get_string(ctx, target, key, r->target, sizeof r->target);
	if (rc < 0)
		return rc;
	if (!config_is_sip_target(r->target))
		return config_fail(ctx, target, key, "\"%s\" is not a SIP URI: write "
				   "\"sip:[user@]host[:port][;params]\"", r->target);
	return 0;
}

static int config_load_routes(const struct config_ctx *ctx, const config_setting_t *s,
			      struct config *cfg)
{
	const char *key = config_setting_name(s);
	int n;

	if (config_setting_type(s) != CONFIG_TYPE_LIST)
		return config_fail(ctx, s, key, "must be a list of groups: "
				   "( { prefix = \"...\"; target = \"sip:...\"; }, ... )");
	n = config_setting_length(s);
	if (n > CONFIG_MAX_ROUTES)
		return config_fail(ctx, s, key, "%d routes: at most %d allowed",
				   n, CONFIG_MAX_ROUTES);
	for (int i = 0; i < n; i++) {
		int rc = config_load_route(ctx, config_setting_get_elem(s, (unsigned)i),
					   (unsigned)i, cfg);

		if (rc < 0)
			return rc;
		cfg->n_routes = (size_t)i + 1;
	}
	return 0;
}

static int config_load_overload_queue_delay_ms(const struct config_ctx *ctx,
					       const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 0, 10000, &cfg->overload_queue_delay_ms);
}

static int config_load_overload_setup_calls(const struct config_ctx *ctx,
					    const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 0, 4194304, &cfg->overload_setup_calls);
}

static int config_load_overload_retry_after(const struct config_ctx *ctx,
					    const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 3600, &cfg->overload_retry_after);
}

/* TCP and TLS connections (worker/conn.c).  tcp_max_connections stays
 * below the worker's table of watched sockets (worker/uport.c). */
static int config_load_tcp_idle_timeout(const struct config_ctx *ctx, const config_setting_t *s,
					struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 86400, &cfg->tcp_idle_timeout);
}

static int config_load_tcp_message_timeout(const struct config_ctx *ctx,
					   const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 300, &cfg->tcp_message_timeout);
}

static int config_load_tcp_max_connections(const struct config_ctx *ctx,
					   const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 4000, &cfg->tcp_max_connections);
}

static int config_load_tcp_max_per_source(const struct config_ctx *ctx,
					  const config_setting_t *s, struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 4000, &cfg->tcp_max_per_source);
}

struct config_key {
	const char *name;
	int (*load)(const struct config_ctx *ctx, const config_setting_t *s, struct config *cfg);
};

/* Every key the file may contain, in the order of etc/b2bua.conf. */
static const struct config_key config_keys[] = {
	{ "node_id",          config_load_node_id },
	{ "host_lease",       config_load_host_lease },
	{ "workers",          config_load_workers },
	{ "drain_timeout",    config_load_drain_timeout },
	{ "listen",           config_load_listen },
	{ "advertise",        config_load_advertise },
	{ "sip_port",         config_load_sip_port },
	{ "worker_port_base", config_load_worker_port_base },
	{ "udp_rcvbuf",       config_load_udp_rcvbuf },
	{ "socket_io",        config_load_socket_io },
	{ "transports",       config_load_transports },
	{ "tcp_idle_timeout",    config_load_tcp_idle_timeout },
	{ "tcp_message_timeout", config_load_tcp_message_timeout },
	{ "tcp_max_connections", config_load_tcp_max_connections },
	{ "tcp_max_per_source",  config_load_tcp_max_per_source },
	{ "tls_port",             config_load_tls_port },
	{ "tls_worker_port_base", config_load_tls_worker_port_base },
	{ "tls_certificate",      config_load_tls_certificate },
	{ "tls_key",              config_load_tls_key },
	{ "tls_ca_file",          config_load_tls_ca_file },
	{ "tls_verify_peer",      config_load_tls_verify_peer },
	{ "tls_min_version",      config_load_tls_min_version },
	{ "max_forwards",     config_load_max_forwards },
	{ "invite_timeout",   config_load_invite_timeout },
	{ "call_capacity",    config_load_call_capacity },
	{ "cli_socket",       config_load_cli_socket },
	{ "log_level",        config_load_log_level },
	{ "metrics_address",  config_load_metrics_address },
	{ "domain",           config_load_domain },
	{ "realm",            config_load_realm },
	{ "auth_secret",      config_load_auth_secret },
	{ "nonce_ttl",        config_load_nonce_ttl },
	{ "auth_algorithms",  config_load_auth_algorithms },
	{ "auth_sha256",      config_load_auth_sha256 },	/* deprecated alias */
	{ "register_min_expires",     config_load_register_min_expires },
	{ "register_default_expires", config_load_register_default_expires },
	{ "register_max_expires",     config_load_register_max_expires },
	{ "auth_fail_limit",  config_load_auth_fail_limit },
	{ "auth_fail_window", config_load_auth_fail_window },
	{ "nat_keepalive_interval", config_load_nat_keepalive_interval },
	{ "trusted",          config_load_trusted },
	{ "untrusted_invite", config_load_untrusted_invite },
	{ "allow_unauthenticated_to_local", config_load_allow_unauthenticated_to_local },
	{ "rate_limit_invite",          config_load_rate_limit_invite },
	{ "rate_limit_invite_burst",    config_load_rate_limit_invite_burst },
	{ "rate_limit_register",        config_load_rate_limit_register },
	{ "rate_limit_register_burst",  config_load_rate_limit_register_burst },
	{ "redis_address",    config_load_redis_address },
	{ "redis_password",   config_load_redis_password },
	{ "redis_db",         config_load_redis_db },
	{ "redis_prefix",     config_load_redis_prefix },
	{ "redis_timeout",    config_load_redis_timeout },
	{ "redis_sentinels",   config_load_redis_sentinels },
	{ "redis_master_name", config_load_redis_master_name },
	{ "redis_wait_replicas", config_load_redis_wait_replicas },
	{ "redis_wait_timeout",  config_load_redis_wait_timeout },
	{ "cdr_stream",       config_load_cdr_stream },
	{ "cdr_spool_dir",    config_load_cdr_spool_dir },
	{ "no_answer_timeout", config_load_no_answer_timeout },
	{ "forward_max_hops", config_load_forward_max_hops },
	{ "max_call_duration", config_load_max_call_duration },
	{ "call_rest_after", config_load_call_rest_after },
	{ "session_expires",  config_load_session_expires },
	{ "min_se",           config_load_min_se },
	{ "overload_queue_delay_ms", config_load_overload_queue_delay_ms },
	{ "overload_setup_calls",    config_load_overload_setup_calls },
	{ "overload_retry_after",    config_load_overload_retry_after },
	{ "routes",           config_load_routes },
};

int config_key_load(const struct config_ctx *ctx, const config_setting_t *s,
		    struct config *cfg)
{
	const char *name = config_setting_name(s);

	for (size_t i = 0; i < sizeof config_keys / sizeof config_keys[0]; i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return config_keys[i].load(ctx, s, cfg);
	return config_fail(ctx, s, name, "unknown key");
}

/* The name of the i-th key of the table, or NULL past its end (config_reload.c
 * walks every key to compare two configurations). */
const char *config_key_name(size_t i)
{
	return i < sizeof config_keys / sizeof config_keys[0] ? config_keys[i].name : NULL;
}
