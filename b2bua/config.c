/*
 * config — see config.h.  This file reads the file, walks it and checks
 * what involves several keys; each key's loader is in config_keys.c.
 *
 * Design: libconfig parses the file into a tree; we then walk the tree once,
 * top-level key by top-level key, in file order.  Each known key has one small
 * loader that checks its type, range and content and stores it in struct
 * config; a key with no loader is an error, so a typo can never silently fall
 * back to a default.  Checks that involve several keys (the worker port range,
 * the order of the REGISTER expiry bounds, advertise defaulting to listen,
 * realm to domain) run after the walk, on the final
 * values.
 *
 * Every error is one line, "file:line: key: what is wrong and what is
 * allowed", with the line taken from libconfig's record of where the setting
 * was written.  Strings are never truncated: a value that does not fit its
 * field is an error naming the key.
 */
#include "b2bua/config.h"
#include "b2bua/config_keys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libconfig.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ errors */

static void config_vset_err(const struct config_ctx *ctx, const char *fmt, va_list ap)
{
	if (ctx->err != NULL && ctx->errlen > 0)
		vsnprintf(ctx->err, ctx->errlen, fmt, ap);
}

void config_set_err(const struct config_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_vset_err(ctx, fmt, ap);
	va_end(ap);
}

/* "file:line" (or "file" when libconfig recorded no line) of setting s into
 * where[PATH_MAX + 16].  The file is the one libconfig recorded for the
 * setting (it differs from ctx->path inside an @include). */
static void config_where(const struct config_ctx *ctx, const config_setting_t *s, char *where)
{
	char file[PATH_MAX];
	const char *src = NULL;

	if (s != NULL)
		src = config_setting_source_file(s);
	/* libconfig records an included file as written in @include. */
	if (src == NULL || strcmp(src, ctx->path) == 0)
		snprintf(file, sizeof file, "%s", ctx->path);
	else if (src[0] != '/' && ctx->dir != NULL)
		snprintf(file, sizeof file, "%s/%s", ctx->dir, src);
	else
		snprintf(file, sizeof file, "%s", src);
	if (s != NULL && config_setting_source_line(s) > 0)
		snprintf(where, PATH_MAX + 16, "%s:%u", file, (unsigned)config_setting_source_line(s));
	else
		snprintf(where, PATH_MAX + 16, "%s", file);
}

int config_fail(const struct config_ctx *ctx, const config_setting_t *s,
		const char *key, const char *fmt, ...)
{
	char why[512], where[PATH_MAX + 16];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	config_where(ctx, s, where);
	config_set_err(ctx, "%s: %s: %s", where, key, why);
	return -EINVAL;
}

void config_warn(const struct config_ctx *ctx, const config_setting_t *s,
		 const char *key, const char *fmt, ...)
{
	char why[512], where[PATH_MAX + 16];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	config_where(ctx, s, where);
	log_warn("%s: %s: %s", where, key, why);
}

/* ------------------------------------------------------------ defaults */

/* The short host name, keeping only [A-Za-z0-9-]; "b2bua" if nothing is left. */
static void config_default_node_id(char *dst, size_t size)
{
	char host[256];
	size_t n = 0;

	if (gethostname(host, sizeof host) != 0)
		host[0] = '\0';
	host[sizeof host - 1] = '\0';
	for (const char *p = host; *p != '\0' && *p != '.' && n + 1 < size; p++)
		if (config_is_alnum(*p) || *p == '-')
			dst[n++] = *p;
	dst[n] = '\0';
	if (n == 0)
		snprintf(dst, size, "b2bua");
}

/* workers = 0: one per online CPU, at least 1, at most CONFIG_MAX_WORKERS. */
int config_cpu_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	if (n > CONFIG_MAX_WORKERS)
		n = CONFIG_MAX_WORKERS;
	return (int)n;
}

void config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	config_default_node_id(cfg->node_id, sizeof cfg->node_id);
	cfg->host_lease = 5000;
	cfg->workers = config_cpu_workers();
	cfg->drain_timeout = 30;
	snprintf(cfg->listen[0], sizeof cfg->listen[0], "127.0.0.1");
	snprintf(cfg->advertise[0], sizeof cfg->advertise[0], "127.0.0.1");
	cfg->n_listen = 1;
	cfg->sip_port = 5060;
	cfg->worker_port_base = 5070;
	cfg->udp_rcvbuf = 1048576;
	snprintf(cfg->socket_io, sizeof cfg->socket_io, "auto");
	cfg->transports = CONFIG_TP_UDP;
	cfg->max_forwards = 70;
	cfg->invite_timeout = 180;
	cfg->call_capacity = 16384;
	cfg->overload_queue_delay_ms = 20;
	cfg->overload_setup_calls = 0;
	cfg->overload_retry_after = 5;
	cfg->tcp_idle_timeout = 300;
	cfg->tcp_message_timeout = 10;
	cfg->tcp_max_connections = 1000;
	cfg->tcp_max_per_source = 100;
	snprintf(cfg->cli_socket, sizeof cfg->cli_socket, "/run/b2bua/b2bua.sock");
	cfg->log_level = LOG_INFO;
	cfg->metrics_address[0] = '\0';   /* metrics off */

	/* No domain: no registrar, every call follows the static routes. */
	cfg->domain[0] = '\0';
	cfg->realm[0] = '\0';
	cfg->auth_secret[0] = '\0';	/* the master generates one */
	cfg->nonce_ttl = 300;
	/* MD5 only: what every phone answers (docs/configuration.md, auth_algorithms). */
	cfg->n_auth_algorithms = 1;
	cfg->auth_algorithms[0] = DIGEST_MD5;
	cfg->register_min_expires = 60;
	cfg->register_default_expires = 3600;
	cfg->register_max_expires = 86400;
	cfg->auth_fail_limit = 10;
	cfg->auth_fail_window = 60;
	cfg->nat_keepalive_interval = 30;
	cfg->n_trusted = 0;
	cfg->untrusted_invite = CONFIG_UNTRUSTED_CHALLENGE;
	cfg->allow_unauthenticated_to_local = 1;
	cfg->rate_limit_invite = 20;
	cfg->rate_limit_invite_burst = 40;
	cfg->rate_limit_register = 20;
	cfg->rate_limit_register_burst = 40;

	snprintf(cfg->redis_address, sizeof cfg->redis_address, "unix:/run/b2bua/redis.sock");
	cfg->redis_password[0] = '\0';
	cfg->redis_db = 0;
	cfg->n_redis_sentinels = 0;
	cfg->redis_master_name[0] = '\0';
	cfg->redis_timeout = 1000;
	cfg->redis_wait_replicas = 0;
	cfg->redis_wait_timeout = 500;
	snprintf(cfg->redis_prefix, sizeof cfg->redis_prefix, "b2bua:");
	snprintf(cfg->cdr_stream, sizeof cfg->cdr_stream, "cdr");
	snprintf(cfg->cdr_spool_dir, sizeof cfg->cdr_spool_dir, "/var/spool/b2bua");
	cfg->no_answer_timeout = 20;
	cfg->forward_max_hops = 3;
	cfg->max_call_duration = 43200;
	cfg->call_rest_after = 30;
	cfg->session_expires = 1800;
	cfg->min_se = 90;

	/* TLS: 5061 (RFC 3261); the own ports above the worker ports' widest
	 * range (5070 + CONFIG_MAX_WORKERS), so that no defaults meet. */
	cfg->tls_port = 5061;
	cfg->tls_worker_port_base = 5170;
	cfg->tls_verify_peer = 0;
	cfg->tls_min_version = CONFIG_TLS_1_2;

	cfg->n_routes = 0;
}

/* ------------------------------------------------------------ whole file */

/*
 * The worker port range must fit below 65536 and must not contain sip_port.
 * An error names worker_port_base and points at the first of the involved
 * keys that the file sets (with all three at their defaults there is no
 * conflict).
 */
static int config_check_ports(const struct config_ctx *ctx, const config_setting_t *root,
			      const struct config *cfg)
{
	const config_setting_t *at;
	int last;

	at = config_setting_get_member(root, "worker_port_base");
	if (at == NULL)
		at = config_setting_get_member(root, "sip_port");
	if (at == NULL)
		at = config_setting_get_member(root, "workers");
	last = cfg->worker_port_base + cfg->workers - 1;
	if (last > 65535)
		return config_fail(ctx, at, "worker_port_base",
				   "worker ports %d..%d (one per worker, %d workers) go past "
				   "65535: must be at most %d", cfg->worker_port_base, last,
				   cfg->workers, 65535 - cfg->workers + 1);
	if (cfg->sip_port >= cfg->worker_port_base && cfg->sip_port <= last)
		return config_fail(ctx, at, "worker_port_base",
				   "worker ports %d..%d (one per worker, %d workers) contain "
				   "sip_port %d: the ranges must not overlap",
				   cfg->worker_port_base, last, cfg->workers, cfg->sip_port);
	return 0;
}

/*
 * register_min_expires <= register_default_expires <= register_max_expires.
 * Same convention: the error names register_default_expires and points at
 * the first of the three that the file sets.
 */
static int config_check_expires(const struct config_ctx *ctx, const config_setting_t *root,
				const struct config *cfg)
{
	const config_setting_t *at;

	if (cfg->register_min_expires <= cfg->register_default_expires &&
	    cfg->register_default_expires <= cfg->register_max_expires)
		return 0;
	at = config_setting_get_member(root, "register_default_expires");
	if (at == NULL)
		at = config_setting_get_member(root, "register_min_expires");
	if (at == NULL)
		at = config_setting_get_member(root, "register_max_expires");
	return config_fail(ctx, at, "register_default_expires",
			   "register_min_expires %d, register_default_expires %d, "
			   "register_max_expires %d: must be min <= default <= max",
			   cfg->register_min_expires, cfg->register_default_expires,
			   cfg->register_max_expires);
}

/* A session interval we offer must be one we accept ourselves. */
static int config_check_session_timer(const struct config_ctx *ctx,
				      const config_setting_t *root, const struct config *cfg)
{
	const config_setting_t *at;

	if (cfg->session_expires == 0 || cfg->session_expires >= cfg->min_se)
		return 0;
	at = config_setting_get_member(root, "session_expires");
	if (at == NULL)
		at = config_setting_get_member(root, "min_se");
	return config_fail(ctx, at, "session_expires",
			   "session_expires %d is below min_se %d: must be 0 (off) or at "
			   "least min_se", cfg->session_expires, cfg->min_se);
}

/* Sentinels and a master name go together: one without the other is a
 * half-done Sentinel setup (redis_address is not used once sentinels are
 * set, so it cannot be the fallback the operator meant). */
static int config_check_sentinels(const struct config_ctx *ctx, const config_setting_t *root,
				  const struct config *cfg)
{
	if (cfg->n_redis_sentinels > 0 && cfg->redis_master_name[0] == '\0')
		return config_fail(ctx, config_setting_get_member(root, "redis_sentinels"),
				   "redis_master_name", "missing: required when redis_sentinels "
				   "is set (the name the sentinels monitor, as in `sentinel "
				   "monitor NAME ip port quorum`)");
	if (cfg->n_redis_sentinels == 0 && cfg->redis_master_name[0] != '\0')
		return config_fail(ctx, config_setting_get_member(root, "redis_master_name"),
				   "redis_master_name", "set without redis_sentinels: list the "
				   "sentinels, or remove redis_master_name to use redis_address");
	return 0;
}

/*
 * redis_wait_replicas when the file does not set it: 1 when Redis is
 * reached through Sentinel (replicas are then part of the deployment),
 * else 0 (a lone Redis has no replica to wait for).  This is the one place
 * that rule lives.
 */
static int config_wait_replicas_default(const struct config *cfg)
{
	return cfg->n_redis_sentinels > 0 ? 1 : 0;
}

/*
 * A CDR WAIT holds the worker's Redis connection (Redis answers nothing
 * else on it meanwhile) and is itself a command under redis_timeout: it
 * must end well within it, or a missing replica would look like a hung
 * Redis and drop the connection.  Unset, redis_wait_timeout is 500 or half
 * of redis_timeout, whichever is less; set, it must be at most half.
 */
static int config_check_wait(const struct config_ctx *ctx, const config_setting_t *root,
			     struct config *cfg)
{
	const config_setting_t *at = config_setting_get_member(root, "redis_wait_timeout");

	if (config_setting_get_member(root, "redis_wait_replicas") == NULL)
		cfg->redis_wait_replicas = config_wait_replicas_default(cfg);
	if (at == NULL) {
		if (cfg->redis_wait_timeout > cfg->redis_timeout / 2)
			cfg->redis_wait_timeout = cfg->redis_timeout / 2;
		return 0;
	}
	if (cfg->redis_wait_timeout <= cfg->redis_timeout / 2)
		return 0;
	return config_fail(ctx, at, "redis_wait_timeout",
			   "%d ms is more than half of redis_timeout %d ms: a WAIT for a "
			   "missing replica must end well before the connection is taken "
			   "for hung; must be at most %d", cfg->redis_wait_timeout,
			   cfg->redis_timeout, cfg->redis_timeout / 2);
}

/*
 * advertise, when given, names one host per listen address, in the same
 * order (a string with one listen address); an IP literal in it must be of
 * its address's family: a leg on an IPv6 socket cannot be reached at an
 * IPv4 address.
 */
static int config_check_advertise(const struct config_ctx *ctx, const config_setting_t *root,
				  struct config *cfg)
{
	const config_setting_t *at = config_setting_get_member(root, "advertise");
	unsigned char buf[sizeof(struct in6_addr)];
	size_t n;

	if (at == NULL)
		return 0;
	n = config_setting_type(at) == CONFIG_TYPE_STRING ? 1 : (size_t)config_setting_length(at);
	if (n != cfg->n_listen)
		return config_fail(ctx, at, "advertise", "%zu entries for %zu listen addresses: "
				   "give one host per listen address, in the same order",
				   n, cfg->n_listen);
	for (size_t i = 0; i < cfg->n_listen; i++) {
		int v6 = strchr(cfg->listen[i], ':') != NULL;

		if ((inet_pton(AF_INET, cfg->advertise[i], buf) == 1 && v6) ||
		    (inet_pton(AF_INET6, cfg->advertise[i], buf) == 1 && !v6))
			return config_fail(ctx, at, "advertise", "\"%s\" is not of the family of "
					   "listen address \"%s\"", cfg->advertise[i],
					   cfg->listen[i]);
	}
	return 0;
}

/* Rules that involve several keys, checked on the final values. */
static int config_finish(const struct config_ctx *ctx, const config_setting_t *root,
			 struct config *cfg)
{
	int rc;

	/* Whole fields are copied so that trailing bytes stay zero. */
	if (config_setting_get_member(root, "advertise") == NULL)
		memcpy(cfg->advertise, cfg->listen, sizeof cfg->advertise);
	rc = config_check_advertise(ctx, root, cfg);
	if (rc < 0)
		return rc;
	if (config_setting_get_member(root, "realm") == NULL) {
		_Static_assert(sizeof cfg->realm == sizeof cfg->domain,
			       "realm must hold any domain value");
		memcpy(cfg->realm, cfg->domain, sizeof cfg->realm);
	}
	if (cfg->workers == 0)
		cfg->workers = config_cpu_workers();

	rc = config_check_ports(ctx, root, cfg);
	if (rc == 0)
		rc = config_check_expires(ctx, root, cfg);
	if (rc == 0)
		rc = config_check_session_timer(ctx, root, cfg);
	if (rc == 0)
		rc = config_check_sentinels(ctx, root, cfg);
	if (rc == 0)
		rc = config_check_wait(ctx, root, cfg);
	if (rc == 0)
		rc = config_check_tls(ctx, root, cfg);
	return rc;
}

static int config_walk(const struct config_ctx *ctx, const config_setting_t *root,
		       struct config *cfg)
{
	for (int i = 0; i < config_setting_length(root); i++) {
		const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
		int rc = config_key_load(ctx, s, cfg);

		if (rc < 0)
			return rc;
	}
	return config_finish(ctx, root, cfg);
}

/*
 * libconfig only says "file I/O error" for a file it cannot open; check
 * first so the message carries the real reason.  A directory opens fine with
 * fopen(), hence the stat().
 */
static int config_check_readable(const struct config_ctx *ctx)
{
	struct stat st;
	FILE *f;

	if (stat(ctx->path, &st) == 0 && S_ISDIR(st.st_mode)) {
		config_set_err(ctx, "%s: cannot read: %s", ctx->path, strerror(EISDIR));
		return -EISDIR;
	}
	f = fopen(ctx->path, "r");
	if (f == NULL) {
		int rc = errno;

		config_set_err(ctx, "%s: cannot read: %s", ctx->path, strerror(rc));
		return -rc;
	}
	fclose(f);
	return 0;
}

/* The directory part of path into dir[PATH_MAX]; NULL when path has none. */
static const char *config_dir_of(const char *path, char *dir)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return NULL;
	if (slash == path)
		slash++;	/* "/b2bua.conf": the directory is "/" */
	snprintf(dir, PATH_MAX, "%.*s", (int)(slash - path), path);
	return dir;
}

int config_load(const char *path, struct config *cfg, char *err, size_t errlen)
{
	struct config_ctx ctx = { .path = path, .err = err, .errlen = errlen };
	char dir[PATH_MAX];
	config_t lc;
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (path == NULL || cfg == NULL)
		return -EINVAL;
	config_defaults(cfg);
	if (strlen(path) >= sizeof cfg->path) {
		config_set_err(&ctx, "%s: cannot read: %s", path, strerror(ENAMETOOLONG));
		return -ENAMETOOLONG;
	}
	memcpy(cfg->path, path, strlen(path) + 1);
	cfg->workers = 0;	/* "unset"; resolved by config_finish */

	rc = config_check_readable(&ctx);
	if (rc < 0)
		return rc;

	/* Relative @include paths are relative to this file's directory. */
	ctx.dir = config_dir_of(path, dir);
	config_init(&lc);
	if (ctx.dir != NULL)
		config_set_include_dir(&lc, ctx.dir);
	if (config_read_file(&lc, path) != CONFIG_TRUE) {
		/* An I/O error here means the file vanished or failed since the check. */
		if (config_error_type(&lc) == CONFIG_ERR_FILE_IO) {
			config_set_err(&ctx, "%s: cannot read: %s", path,
				       config_error_text(&lc));
			rc = -EIO;
		} else {
			config_set_err(&ctx, "%s:%d: syntax error: %s",
				       config_error_file(&lc) ? config_error_file(&lc) : path,
				       config_error_line(&lc), config_error_text(&lc));
			rc = -EINVAL;
		}
		config_destroy(&lc);
		return rc;
	}
	rc = config_walk(&ctx, config_root_setting(&lc), cfg);
	config_destroy(&lc);
	return rc;
}

/* ------------------------------------------------------------ trusted sources */

/* Do the first `bits` bits of a and b agree?  Bits past them are ignored. */
static int config_prefix_match(const unsigned char *a, const unsigned char *b, int bits)
{
	int bytes = bits / 8, rest = bits % 8;
	unsigned char mask;

	if (memcmp(a, b, (size_t)bytes) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (unsigned char)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}


/*
 * An IPv4 source that reaches an IPv6 socket as ::ffff:a.b.c.d is an IPv4
 * source: it is matched against the IPv4 entries, and never against IPv6
 * ones, so that "::/0" does not silently trust every IPv4 address too.
 */
void config_listen_text(const struct config *cfg, int port, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < cfg->n_listen && used < size; i++) {
		int n = snprintf(buf + used, size - used, strchr(cfg->listen[i], ':') ?
				 "%s[%s]:%d" : "%s%s:%d", i ? ", " : "", cfg->listen[i], port);

		if (n < 0)
			break;
		used += (size_t)n;
	}
}

int config_is_trusted(const struct config *cfg, const struct sockaddr *sa)
{
	unsigned char addr[16];
	int family;

	if (cfg == NULL || sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		family = AF_INET;
		memcpy(addr, &in->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		memcpy(addr, in6->sin6_addr.s6_addr, 16);
		family = AF_INET6;
		if (config_is_v4mapped(addr)) {
			family = AF_INET;
			memmove(addr, addr + 12, 4);
		}
	} else {
		return 0;
	}
	for (size_t i = 0; i < cfg->n_trusted; i++) {
		const struct config_trusted *t = &cfg->trusted[i];

		if (t->family == family && config_prefix_match(t->addr, addr, t->prefix_len))
			return 1;
	}
	return 0;
}
