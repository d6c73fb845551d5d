/*
 * config_keys — what config.c (the walk over the file) and config_keys.c
 * (one loader per key) share.  Private to the config module: other modules
 * include config.h only.
 */
#ifndef B2BUA_CONFIG_KEYS_H
#define B2BUA_CONFIG_KEYS_H

#include <stddef.h>

#include <libconfig.h>

#include "b2bua/config.h"

/* What every loader needs to report an error. */
struct config_ctx {
	const char *path;
	const char *dir;	/* directory of path, for @include'd files; NULL: "." */
	char *err;
	size_t errlen;
};

/* Write the one-line error into ctx->err. */
void config_set_err(const struct config_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Report "file:line: key: why" for setting `s` and return -EINVAL, so that a
 * loader can simply `return config_fail(...)`.
 */
int config_fail(const struct config_ctx *ctx, const config_setting_t *s,
		const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Log (warn) "file:line: key: why" for setting `s`: a file that loads but
 * says something the operator should change (a deprecated key).
 */
void config_warn(const struct config_ctx *ctx, const config_setting_t *s,
		 const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* An integer setting between min and max into *field; out of range or not
 * an integer is an error naming the key (shared by the config_*.c files). */
int config_get_int_field(const struct config_ctx *ctx, const config_setting_t *s,
			 long long min, long long max, int *field);

/* The authentication keys' loaders (config_auth.c). */
int config_load_auth_algorithms(const struct config_ctx *ctx, const config_setting_t *s,
				struct config *cfg);
int config_load_auth_sha256(const struct config_ctx *ctx, const config_setting_t *s,
			    struct config *cfg);

/* The TLS keys' loaders and their checks across keys (config_tls.c). */
int config_load_tls_port(const struct config_ctx *ctx, const config_setting_t *s,
			 struct config *cfg);
int config_load_tls_worker_port_base(const struct config_ctx *ctx, const config_setting_t *s,
				     struct config *cfg);
int config_load_tls_certificate(const struct config_ctx *ctx, const config_setting_t *s,
				struct config *cfg);
int config_load_tls_key(const struct config_ctx *ctx, const config_setting_t *s,
			struct config *cfg);
int config_load_tls_ca_file(const struct config_ctx *ctx, const config_setting_t *s,
			    struct config *cfg);
int config_load_tls_verify_peer(const struct config_ctx *ctx, const config_setting_t *s,
				struct config *cfg);
int config_load_tls_min_version(const struct config_ctx *ctx, const config_setting_t *s,
				struct config *cfg);
/* With "tls" in transports: the TLS ports apart from the others and from
 * each other, the certificate and key (and the CA file when verifying)
 * readable PEM files.  0 or -EINVAL with the error in ctx. */
int config_check_tls(const struct config_ctx *ctx, const config_setting_t *root,
		     const struct config *cfg);

/* Load one top-level setting through its key's loader; an unknown key is an error. */
int config_key_load(const struct config_ctx *ctx, const config_setting_t *s,
		    struct config *cfg);

/* The name of the i-th key the file may contain, or NULL past the last one. */
const char *config_key_name(size_t i);

/* workers = 0: one per online CPU, at least 1, at most CONFIG_MAX_WORKERS. */
int config_cpu_workers(void);

/* [A-Za-z0-9], whatever the locale. */
int config_is_alnum(char c);

/* ::ffff:a.b.c.d, i.e. an IPv4 address seen through an IPv6 socket. */
int config_is_v4mapped(const unsigned char *a16);

#endif
