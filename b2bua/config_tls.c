/*
 * config_tls — the loaders of the TLS keys (tls_port, tls_worker_port_base,
 * tls_certificate, tls_key, tls_ca_file, tls_verify_peer, tls_min_version)
 * and config_check_tls, their checks across keys.  See config.h for the
 * contract, config_keys.c for the table that names them.
 *
 * Design note.  The keys load whatever "transports" says, so that a file
 * can keep its TLS block while TLS is switched off; the checks that need
 * the files and the ports (config_check_tls) run only when "tls" is in
 * transports.  TLS itself is Sofia-SIP's (OpenSSL): the worker copies the
 * configured files into the directory Sofia wants (worker/b2b_tls.c).
 * Sofia reads a certificate or key it cannot use without failing (it logs
 * and goes on, and then every handshake fails), so the files are checked
 * here: readable, and holding a PEM block of the right kind, so that
 * `b2bua -t` catches a missing file or a certificate and key swapped.
 * The ports must not meet each other: the TLS ports are TCP ports, and
 * with "tcp" the public and worker ports are TCP ports too.
 */
#include "b2bua/config_keys.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* How much of a PEM file is searched for its block: a certificate chain
 * or a key is a few KB; a CA bundle may be larger, its first block counts. */
#define CONFIG_TLS_PEM_SCAN 65536

/* An absolute path into dst[size]; too long is an error, never a cut. */
static int config_tls_path(const struct config_ctx *ctx, const config_setting_t *s,
			   char *dst, size_t size)
{
	const char *key = config_setting_name(s);
	const char *v;

	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return config_fail(ctx, s, key, "must be a string (in double quotes): the "
				   "absolute path of a PEM file");
	v = config_setting_get_string(s);
	if (strlen(v) >= size)
		return config_fail(ctx, s, key, "too long (%zu bytes): at most %zu bytes",
				   strlen(v), size - 1);
	if (v[0] != '/')
		return config_fail(ctx, s, key, "\"%s\" must be an absolute path", v);
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

int config_load_tls_port(const struct config_ctx *ctx, const config_setting_t *s,
			 struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 65535, &cfg->tls_port);
}

int config_load_tls_worker_port_base(const struct config_ctx *ctx, const config_setting_t *s,
				     struct config *cfg)
{
	return config_get_int_field(ctx, s, 1, 65535, &cfg->tls_worker_port_base);
}

int config_load_tls_certificate(const struct config_ctx *ctx, const config_setting_t *s,
				struct config *cfg)
{
	return config_tls_path(ctx, s, cfg->tls_certificate, sizeof cfg->tls_certificate);
}

int config_load_tls_key(const struct config_ctx *ctx, const config_setting_t *s,
			struct config *cfg)
{
	return config_tls_path(ctx, s, cfg->tls_key, sizeof cfg->tls_key);
}

int config_load_tls_ca_file(const struct config_ctx *ctx, const config_setting_t *s,
			    struct config *cfg)
{
	return config_tls_path(ctx, s, cfg->tls_ca_file, sizeof cfg->tls_ca_file);
}

int config_load_tls_verify_peer(const struct config_ctx *ctx, const config_setting_t *s,
				struct config *cfg)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return config_fail(ctx, s, config_setting_name(s), "must be true or false");
	cfg->tls_verify_peer = config_setting_get_bool(s);
	return 0;
}

/* "1.2" or "1.3": the lowest TLS version a handshake may use.  Below 1.2
 * is not offered: OpenSSL 3 refuses 1.0 and 1.1 by default anyway. */
int config_load_tls_min_version(const struct config_ctx *ctx, const config_setting_t *s,
				struct config *cfg)
{
	const char *key = config_setting_name(s);
	const char *v = config_setting_type(s) == CONFIG_TYPE_STRING ?
			config_setting_get_string(s) : NULL;

	if (v != NULL && strcmp(v, "1.2") == 0)
		cfg->tls_min_version = CONFIG_TLS_1_2;
	else if (v != NULL && strcmp(v, "1.3") == 0)
		cfg->tls_min_version = CONFIG_TLS_1_3;
	else
		return config_fail(ctx, s, key, "must be \"1.2\" or \"1.3\" (a string)");
	return 0;
}

/* ------------------------------------------------------------ across keys */

/* The setting to point an error at: the first of the keys the file sets. */
static const config_setting_t *config_tls_at(const config_setting_t *root, const char *a,
					     const char *b, const char *c)
{
	const config_setting_t *at = config_setting_get_member(root, a);

	if (at == NULL && b != NULL)
		at = config_setting_get_member(root, b);
	if (at == NULL && c != NULL)
		at = config_setting_get_member(root, c);
	return at;
}

/* Do [a0, a1] and [b0, b1] share a port? */
static int config_tls_overlap(int a0, int a1, int b0, int b1)
{
	return a0 <= b1 && b0 <= a1;
}

/* tls_port and the TLS worker range, against each other, sip_port and the
 * worker range (TCP ports when "tcp" is on, and kept apart always). */
static int config_tls_check_ports(const struct config_ctx *ctx, const config_setting_t *root,
				  const struct config *cfg)
{
	int n = cfg->workers;
	int last = cfg->tls_worker_port_base + n - 1;
	int wlast = cfg->worker_port_base + n - 1;
	const config_setting_t *at;

	at = config_tls_at(root, "tls_worker_port_base", "tls_port", "transports");
	if (last > 65535)
		return config_fail(ctx, at, "tls_worker_port_base", "TLS worker ports %d..%d (one "
				   "per worker, %d workers) go past 65535: must be at most %d",
				   cfg->tls_worker_port_base, last, n, 65535 - n + 1);
	if (config_tls_overlap(cfg->tls_worker_port_base, last, cfg->worker_port_base, wlast))
		return config_fail(ctx, at, "tls_worker_port_base", "TLS worker ports %d..%d "
				   "overlap the worker ports %d..%d (worker_port_base): the "
				   "ranges must not overlap", cfg->tls_worker_port_base, last,
				   cfg->worker_port_base, wlast);
	if (cfg->sip_port >= cfg->tls_worker_port_base && cfg->sip_port <= last)
		return config_fail(ctx, at, "tls_worker_port_base", "TLS worker ports %d..%d "
				   "contain sip_port %d", cfg->tls_worker_port_base, last,
				   cfg->sip_port);
	at = config_tls_at(root, "tls_port", "transports", NULL);
	if (cfg->tls_port >= cfg->tls_worker_port_base && cfg->tls_port <= last)
		return config_fail(ctx, at, "tls_port", "%d is in the TLS worker ports %d..%d "
				   "(tls_worker_port_base)", cfg->tls_port,
				   cfg->tls_worker_port_base, last);
	if (cfg->tls_port == cfg->sip_port ||
	    (cfg->tls_port >= cfg->worker_port_base && cfg->tls_port <= wlast))
		return config_fail(ctx, at, "tls_port", "%d is sip_port or one of the worker "
				   "ports %d..%d: a TLS port must be a port of its own",
				   cfg->tls_port, cfg->worker_port_base, wlast);
	return 0;
}

/* Is `path` readable and does it hold "-----BEGIN <what>"?  `what` may be
 * a suffix ("PRIVATE KEY-----" matches RSA, EC and PKCS#8 keys). */
static int config_tls_pem(const char *path, const char *what, const char **why)
{
	static char buf[CONFIG_TLS_PEM_SCAN + 1];
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL) {
		*why = strerror(errno);
		return -errno;
	}
	n = fread(buf, 1, CONFIG_TLS_PEM_SCAN, f);
	fclose(f);
	buf[n] = '\0';
	for (const char *p = strstr(buf, "-----BEGIN "); p; p = strstr(p + 1, "-----BEGIN ")) {
		const char *eol = strchr(p, '\n');
		const char *hit = strstr(p, what);

		if (hit != NULL && (eol == NULL || hit < eol))
			return 0;
	}
	*why = "no PEM block of the right kind";
	return -EINVAL;
}

/* One PEM file key: set, readable, of the right kind. */
static int config_tls_check_file(const struct config_ctx *ctx, const config_setting_t *root,
				 const char *key, const char *path, const char *what,
				 const char *needed_for)
{
	const config_setting_t *at = config_setting_get_member(root, key);
	const char *why = NULL;

	if (path[0] == '\0')
		return config_fail(ctx, config_setting_get_member(root, "transports"), key,
				   "missing: required when %s (a PEM file)", needed_for);
	if (config_tls_pem(path, what, &why) < 0)
		return config_fail(ctx, at, key, "\"%s\": %s (a PEM file with \"-----BEGIN "
				   "%s\")", path, why, what);
	return 0;
}

int config_check_tls(const struct config_ctx *ctx, const config_setting_t *root,
		     const struct config *cfg)
{
	int rc;

	if (!(cfg->transports & CONFIG_TP_TLS))
		return 0;
	rc = config_tls_check_ports(ctx, root, cfg);
	if (rc == 0)
		rc = config_tls_check_file(ctx, root, "tls_certificate", cfg->tls_certificate,
					   "CERTIFICATE-----", "transports has \"tls\"");
	if (rc == 0)
		rc = config_tls_check_file(ctx, root, "tls_key", cfg->tls_key,
					   "PRIVATE KEY-----", "transports has \"tls\"");
	if (rc == 0 && (cfg->tls_verify_peer || cfg->tls_ca_file[0] != '\0'))
		rc = config_tls_check_file(ctx, root, "tls_ca_file", cfg->tls_ca_file,
					   "CERTIFICATE-----", "tls_verify_peer is true");
	return rc;
}
