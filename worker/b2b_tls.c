/*
 * b2b_tls — the agent's TLS transports (transports has "tls"): Sofia-SIP's
 * own TLS (tport_tls, OpenSSL 3 in Debian's build), set up from the tls_*
 * keys.  See docs/architecture.md, "Connections: TCP and TLS", "TLS".
 *
 * Design note.  What Sofia 1.12.11 does not do the way b2bua needs,
 * and how each is bridged without touching TLS itself:
 *
 *  - Files.  TPTAG_CERTIFICATE names a directory holding agent.pem (key
 *    and certificate) and cafile.pem.  The worker makes it from
 *    tls_certificate, tls_key and tls_ca_file: tls-<node_id>-w<i> beside
 *    cli_socket, mode 0700, files 0600, made afresh at start (a crashed
 *    predecessor's is replaced) and removed as soon as both TLS primaries
 *    are made: Sofia reads the files into its OpenSSL contexts then
 *    (tls_init_master) and never again, so no copy of the key stays on
 *    disk while the worker runs.
 *
 *  - The lowest version.  Sofia has no tag for it (TPTAG_TLS_VERSION picks
 *    an OpenSSL method, and Debian's build uses TLS_method for servers
 *    whatever it says).  OpenSSL's own SSL_CTX_set_min_proto_version() is
 *    the mechanism; Sofia makes its contexts with SSL_CTX_new(), so this
 *    file defines SSL_CTX_new() in the executable (the technique
 *    worker/reuseport.c uses for bind()): it calls OpenSSL's and sets the
 *    minimum on the new context.  Nothing else in a worker uses OpenSSL.
 *
 *  - Failed handshakes.  Sofia closes the connection quietly (tls_connect:
 *    tport_close) and tells NTA nothing.  SSL_accept() and SSL_connect(),
 *    which Sofia calls for every step of a handshake, are defined here the
 *    same way: a result that is neither done nor "want more" is a failed
 *    handshake, counted (SHM_CTR_TLS_HANDSHAKE_FAILED, the metric
 *    b2bua_tls_handshake_failures_total) and logged, rate-limited, with the
 *    peer's address.  Sofia then closes the connection as before.
 *
 *  - Closed connections.  Sofia's tls_free() never calls SSL_free(): every
 *    TLS connection leaked its SSL object and its buffers when it closed
 *    (LeakSanitizer on tests/e2e/tls_*.sh; Sofia-SIP upstream fixed it in
 *    2013, after Debian's 2011 snapshot).  SSL_shutdown() is defined here
 *    and frees the SSL (b2b_tls_release): tls_free() is Sofia's only
 *    caller of it.
 *
 *  - The peer's names.  Sofia's check of a peer certificate never frees
 *    the subjectAltName it decodes; X509V3_EXT_get(), X509V3_EXT_d2i() and
 *    SSL_get_verify_result() are defined here to free it (see "the peer's
 *    names" below).
 *
 * OpenSSL's functions are found with dlsym(RTLD_NEXT), and the few types
 * and numbers used are OpenSSL 3's stable ABI, written out below, so that
 * b2bua builds without OpenSSL's headers (Sofia's package does not pull
 * them in).  One agent per process: the state here is per process.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sofia-sip/nta.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_tag.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/url.h>

#include "b2bua/log.h"
#include "worker/b2b_int.h"

/* OpenSSL 3's ABI (openssl/ssl.h): opaque types and the numbers used. */
typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_method_st SSL_METHOD;
#define B2B_TLS_SSL_ERROR_WANT_READ            2
#define B2B_TLS_SSL_ERROR_WANT_WRITE           3
#define B2B_TLS_SSL_CTRL_SET_MIN_PROTO_VERSION 123

/* What the interposed functions need: set by b2b_tls_begin. */
static shm_t *b2b_tls_shm;
static unsigned b2b_tls_worker;
static int b2b_tls_min_version;   /* CONFIG_TLS_1_2 / _1_3; 0: not configured */

/* ------------------------------------------------------------ OpenSSL */

/* OpenSSL's own `name` (the next definition after ours), or NULL. */
static void *b2b_tls_real(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

SSL_CTX *SSL_CTX_new(const SSL_METHOD *method)
{
	static SSL_CTX *(*real_new)(const SSL_METHOD *);
	static long (*real_ctrl)(SSL_CTX *, int, long, void *);
	SSL_CTX *ctx;

	if (real_new == NULL)
		real_new = (SSL_CTX *(*)(const SSL_METHOD *))b2b_tls_real("SSL_CTX_new");
	if (real_ctrl == NULL)
		real_ctrl = (long (*)(SSL_CTX *, int, long, void *))b2b_tls_real("SSL_CTX_ctrl");
	if (real_new == NULL)
		return NULL;
	ctx = real_new(method);
	if (ctx == NULL || b2b_tls_min_version == 0)
		return ctx;
	if (real_ctrl == NULL ||
	    real_ctrl(ctx, B2B_TLS_SSL_CTRL_SET_MIN_PROTO_VERSION, b2b_tls_min_version,
		      NULL) != 1) {
		/* A context that would accept less than configured is no context. */
		void (*ctx_free)(SSL_CTX *) = (void (*)(SSL_CTX *))b2b_tls_real("SSL_CTX_free");

		log_error("tls_min_version: OpenSSL refused the minimum version %#x",
			  b2b_tls_min_version);
		if (ctx_free != NULL)
			ctx_free(ctx);
		return NULL;
	}
	return ctx;
}

/* "ip:port" of the peer of `ssl`'s socket, or "a peer already gone". */
static void b2b_tls_peer(SSL *ssl, char *buf, size_t size)
{
	int (*get_fd)(const SSL *) = (int (*)(const SSL *))b2b_tls_real("SSL_get_fd");
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char ip[INET6_ADDRSTRLEN] = "";
	int fd = get_fd ? get_fd(ssl) : -1;
	int port = 0;

	if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip);
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip,
				  sizeof ip);
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		}
	}
	if (ip[0] == '\0')
		snprintf(buf, size, "a peer already gone");
	else
		snprintf(buf, size, "%s:%d", ip, port);
}

/* After a handshake step: count and log a failure (`who`: accept or connect). */
static int b2b_tls_step(SSL *ssl, int ret, const char *who)
{
	static struct log_limit lim = { .what = "TLS handshake failures" };
	static int (*get_error)(const SSL *, int);
	static unsigned long (*peek_error)(void);
	static const char *(*reason)(unsigned long);
	char peer[INET6_ADDRSTRLEN + 8];
	const char *why = NULL;
	unsigned long e;
	int err;

	if (ret == 1)
		return ret;
	if (get_error == NULL) {
		get_error = (int (*)(const SSL *, int))b2b_tls_real("SSL_get_error");
		peek_error = (unsigned long (*)(void))b2b_tls_real("ERR_peek_error");
		reason = (const char *(*)(unsigned long))b2b_tls_real("ERR_reason_error_string");
	}
	err = get_error ? get_error(ssl, ret) : 0;
	if (err == B2B_TLS_SSL_ERROR_WANT_READ || err == B2B_TLS_SSL_ERROR_WANT_WRITE)
		return ret;
	if (b2b_tls_shm != NULL)
		shm_counter_add(b2b_tls_shm, b2b_tls_worker, SHM_CTR_TLS_HANDSHAKE_FAILED, 1);
	b2b_tls_peer(ssl, peer, sizeof peer);
	e = peek_error ? peek_error() : 0;
	if (e != 0 && reason != NULL)
		why = reason(e);
	log_limited(&lim, LOG_WARN, "TLS handshake (%s) with %s failed: %s: connection closed",
		    who, peer, why ? why : "closed or reset by the peer");
	return ret;
}

int SSL_accept(SSL *ssl)
{
	static int (*real)(SSL *);

	if (real == NULL)
		real = (int (*)(SSL *))b2b_tls_real("SSL_accept");
	if (real == NULL)
		return -1;
	return b2b_tls_step(ssl, real(ssl), "accept");
}

int SSL_connect(SSL *ssl)
{
	static int (*real)(SSL *);

	if (real == NULL)
		real = (int (*)(SSL *))b2b_tls_real("SSL_connect");
	if (real == NULL)
		return -1;
	return b2b_tls_step(ssl, real(ssl), "connect");
}

typedef struct bio_st BIO;

/*
 * The SSL of a connection Sofia is freeing.  tls_free() calls
 * SSL_shutdown(), then releases one reference of the connection's context
 * (SSL_CTX_free: a secondary has its primary's type, so it does) and the
 * socket BIO it gave the SSL (BIO_free), and forgets the SSL.  SSL_free()
 * releases those two references too, so each gets one more first: each is
 * then released as often as it was taken (the context's by SSL_new, the
 * BIO's when Sofia made it), and the SSL with its buffers is freed.  A
 * context reference taken for nothing would only keep the context, which
 * lives as long as the process anyway.
 */
static void b2b_tls_release(SSL *ssl)
{
	static SSL_CTX *(*get_ctx)(const SSL *);
	static BIO *(*get_bio)(const SSL *);
	static int (*ctx_up_ref)(SSL_CTX *);
	static int (*bio_up_ref)(BIO *);
	static void (*ssl_free)(SSL *);
	SSL_CTX *ctx;
	BIO *bio;

	if (ssl_free == NULL) {
		get_ctx = (SSL_CTX *(*)(const SSL *))b2b_tls_real("SSL_get_SSL_CTX");
		get_bio = (BIO *(*)(const SSL *))b2b_tls_real("SSL_get_rbio");
		ctx_up_ref = (int (*)(SSL_CTX *))b2b_tls_real("SSL_CTX_up_ref");
		bio_up_ref = (int (*)(BIO *))b2b_tls_real("BIO_up_ref");
		ssl_free = (void (*)(SSL *))b2b_tls_real("SSL_free");
	}
	if (ssl == NULL || get_ctx == NULL || get_bio == NULL || ctx_up_ref == NULL ||
	    bio_up_ref == NULL || ssl_free == NULL)
		return;   /* leaked, as before */
	ctx = get_ctx(ssl);
	bio = get_bio(ssl);
	if ((ctx && ctx_up_ref(ctx) != 1) || (bio && bio_up_ref(bio) != 1))
		return;
	ssl_free(ssl);
}

int SSL_shutdown(SSL *ssl)
{
	static int (*real)(SSL *);
	int ret;

	if (real == NULL)
		real = (int (*)(SSL *))b2b_tls_real("SSL_shutdown");
	ret = real ? real(ssl) : -1;
	b2b_tls_release(ssl);
	return ret;
}

/* ------------------------------------------------------------ the peer's names */

/*
 * Sofia's post-handshake check (tls_connect, Debian's 1.12.11) reads the
 * peer certificate's subjectAltName for each connection whose peer sent a
 * certificate: method = X509V3_EXT_get(ext), names = X509V3_EXT_d2i(ext),
 * values = method->i2v(method, names, NULL), copies the "DNS" and
 * "IP Address" values into its own list, and frees neither `names` nor
 * `values`: about 312 bytes per connection (LeakSanitizer on
 * tests/e2e/tls_verify.sh, 936 bytes for 3 connections).  On a TLS edge
 * where phones reconnect all day that grows without bound.
 *
 * The two are freed here, once Sofia is done with them.  X509V3_EXT_get()
 * and X509V3_EXT_d2i() are defined in the executable like the functions
 * above; called from Sofia (the return address is in its library), the
 * first hands Sofia a copy of OpenSSL's method whose i2v is ours, which
 * calls OpenSSL's and keeps the list it returns, and the second keeps the
 * names it returns.  Both are freed at Sofia's next step: its next
 * X509V3_EXT_get() (a certificate with a second subjectAltName, which RFC
 * 5280 forbids) or its SSL_get_verify_result(), which it calls after the
 * loop over the values; b2b_tls_destroy() frees what a last handshake
 * left.  Calls from anywhere else (libcrypto calls X509V3_EXT_get itself,
 * through its PLT) get OpenSSL's answer, untouched and unkept.
 */

/* OpenSSL 3's X509V3_EXT_METHOD (openssl/x509v3.h, struct v3_ext_method):
 * two ints and twelve pointers; Sofia calls i2v, at offset 0x40. */
struct b2b_tls_ext_method {
	int ext_nid, ext_flags;
	void *it, *ext_new, *ext_free, *d2i, *i2d, *i2s, *s2i;
	void *(*i2v)(const struct b2b_tls_ext_method *, void *ext, void *list);
	void *v2i, *i2r, *r2i, *usr_data;
};
_Static_assert(sizeof(struct b2b_tls_ext_method) == 104, "OpenSSL 3's v3_ext_method");

static struct b2b_tls_ext_method b2b_tls_method;        /* the copy Sofia gets */
static const struct b2b_tls_ext_method *b2b_tls_method_of;  /* ...of this one */
static void *b2b_tls_names;    /* X509V3_EXT_d2i's GENERAL_NAMES, Sofia's */
static void *b2b_tls_values;   /* i2v's STACK_OF(CONF_VALUE), Sofia's */

/* The code at `ret` (a return address) is Sofia-SIP's. */
static int b2b_tls_from_sofia(const void *ret)
{
	static const void *sofia;   /* the base address of libsofia-sip-ua */
	Dl_info info;

	if (sofia == NULL) {
		void *fn = dlsym(RTLD_DEFAULT, "tport_tcreate");

		if (fn == NULL || dladdr(fn, &info) == 0)
			return 0;
		sofia = info.dli_fbase;
	}
	return dladdr(ret, &info) != 0 && info.dli_fbase == sofia;
}

/* Free what Sofia's last post-handshake check left. */
static void b2b_tls_names_free(void)
{
	static void (*names_free)(void *);
	static void (*pop_free)(void *, void (*)(void *));
	static void (*conf_free)(void *);

	if (names_free == NULL) {
		names_free = (void (*)(void *))b2b_tls_real("GENERAL_NAMES_free");
		pop_free = (void (*)(void *, void (*)(void *)))b2b_tls_real("OPENSSL_sk_pop_free");
		conf_free = (void (*)(void *))b2b_tls_real("X509V3_conf_free");
	}
	if (b2b_tls_names != NULL && names_free != NULL)
		names_free(b2b_tls_names);
	if (b2b_tls_values != NULL && pop_free != NULL && conf_free != NULL)
		pop_free(b2b_tls_values, conf_free);
	b2b_tls_names = NULL;
	b2b_tls_values = NULL;
}

/* The copy's i2v: OpenSSL's, with the list it makes kept for freeing. */
static void *b2b_tls_i2v(const struct b2b_tls_ext_method *m, void *ext, void *list)
{
	void *values;

	(void)m;
	values = b2b_tls_method_of->i2v(b2b_tls_method_of, ext, list);
	if (list == NULL && b2b_tls_values == NULL)   /* a new list, nothing kept */
		b2b_tls_values = values;
	return values;
}

const void *X509V3_EXT_get(void *ext)
{
	static const struct b2b_tls_ext_method *(*real)(void *);
	const struct b2b_tls_ext_method *m;

	if (real == NULL)
		real = (const struct b2b_tls_ext_method *(*)(void *))b2b_tls_real("X509V3_EXT_get");
	m = real ? real(ext) : NULL;
	if (m == NULL || m->i2v == NULL || !b2b_tls_from_sofia(__builtin_return_address(0)))
		return m;
	b2b_tls_names_free();   /* Sofia is done with the previous extension's */
	if (b2b_tls_method_of != m) {
		b2b_tls_method = *m;
		b2b_tls_method.i2v = b2b_tls_i2v;
		b2b_tls_method_of = m;
	}
	return &b2b_tls_method;
}

void *X509V3_EXT_d2i(void *ext)
{
	static void *(*real)(void *);
	void *names;

	if (real == NULL)
		real = (void *(*)(void *))b2b_tls_real("X509V3_EXT_d2i");
	names = real ? real(ext) : NULL;
	if (b2b_tls_names == NULL && b2b_tls_from_sofia(__builtin_return_address(0)))
		b2b_tls_names = names;
	return names;
}

long SSL_get_verify_result(const SSL *ssl)
{
	static long (*real)(const SSL *);

	if (real == NULL)
		real = (long (*)(const SSL *))b2b_tls_real("SSL_get_verify_result");
	if (b2b_tls_from_sofia(__builtin_return_address(0)))
		b2b_tls_names_free();   /* Sofia copied the names it wanted */
	return real ? real(ssl) : 1;   /* X509_V_ERR_UNSPECIFIED */
}

/* ------------------------------------------------------------ the directory */

/* Append the file `src` to the open `fd`.  0 or a negative errno. */
static int b2b_tls_append(int fd, const char *src)
{
	char buf[4096];
	int in = open(src, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	int ret = 0;

	if (in < 0)
		return -errno;
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(fd, buf, (size_t)n) != n) {
			ret = -EIO;
			break;
		}
	if (n < 0)
		ret = -errno;
	close(in);
	/* PEM blocks of two files must not share a line. */
	if (ret == 0 && write(fd, "\n", 1) != 1)
		ret = -EIO;
	return ret;
}

/* dir/name made (mode 0600) from the files `a` and `b` (b may be NULL). */
static int b2b_tls_write(const char *dir, const char *name, const char *a, const char *b)
{
	char path[PATH_MAX];
	int fd, ret;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	ret = b2b_tls_append(fd, a);
	if (ret == 0 && b != NULL)
		ret = b2b_tls_append(fd, b);
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret < 0)
		log_error("TLS: cannot copy %s%s%s into %s: %s", a, b ? " and " : "", b ? b : "",
			  path, strerror(-ret));
	return ret;
}

/* Remove the directory and what Sofia or we put in it (flat: files only). */
static void b2b_tls_remove(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(dir);
}

/* tls-<node_id>-w<i> beside cli_socket, made afresh: 0 or a negative errno. */
static int b2b_tls_dir_create(b2b_t *b2b)
{
	const struct config *cfg = b2b->cfg;
	const char *slash = strrchr(cfg->cli_socket, '/');
	int base = slash ? (int)(slash - cfg->cli_socket) : 1;
	char dir[PATH_MAX];
	int n, ret;

	n = snprintf(dir, sizeof dir, "%.*s/tls-%s-w%u", base,
		     slash ? cfg->cli_socket : ".", cfg->node_id, b2b->worker);
	if (n < 0 || (size_t)n >= sizeof dir)
		return -ENAMETOOLONG;
	b2b_tls_remove(dir);   /* a crashed predecessor's */
	if (mkdir(dir, 0700) < 0) {
		ret = -errno;
		log_error("TLS: cannot make the certificate directory %s: %s", dir, strerror(errno));
		return ret;
	}
	b2b->tls_dir = su_strdup(b2b->home, dir);
	if (b2b->tls_dir == NULL)
		return -ENOMEM;
	ret = b2b_tls_write(dir, "agent.pem", cfg->tls_certificate, cfg->tls_key);
	if (ret == 0 && cfg->tls_ca_file[0] != '\0')
		ret = b2b_tls_write(dir, "cafile.pem", cfg->tls_ca_file, NULL);
	return ret;
}

/* ------------------------------------------------------------ transports */

/* One TLS primary named `ident` on `port`.  0, or -EADDRINUSE (logged). */
static int b2b_tls_add(b2b_t *b2b, const char *listen, int port, const char *ident)
{
	char *url = su_sprintf(b2b->home, "sips:%s:%d", listen, port);
	unsigned policy = b2b->cfg->tls_verify_peer ? TPTLS_VERIFY_ALL : TPTLS_VERIFY_NONE;

	if (url == NULL)
		return -ENOMEM;
	if (nta_agent_add_tport(b2b->agent, URL_STRING_MAKE(url), TPTAG_IDENT(ident),
				TPTAG_CERTIFICATE(b2b->tls_dir),
				TPTAG_TLS_VERIFY_POLICY(policy), TAG_END()) < 0) {
		log_error("cannot listen on %s: %m", url);
		return -EADDRINUSE;
	}
	return 0;
}

int b2b_tls_begin(b2b_t *b2b)
{
	b2b_tls_shm = b2b->shm;
	b2b_tls_worker = b2b->worker;
	b2b_tls_min_version = b2b->cfg->tls_min_version;
	return b2b_tls_dir_create(b2b);
}

int b2b_tls_create(b2b_t *b2b, const char *listen, const char *adv, struct b2b_addr *a)
{
	const struct config *cfg = b2b->cfg;
	int own = cfg->tls_worker_port_base + (int)b2b->worker;
	int ret = b2b->tls_dir ? 0 : -EINVAL;   /* b2b_tls_begin first */

	if (ret == 0)
		ret = b2b_tls_add(b2b, listen, cfg->tls_port, a->ident_public);
	if (ret == 0)
		ret = b2b_tls_add(b2b, listen, own, a->ident_own);
	if (ret < 0)
		return ret;
	a->contact_tls = sip_contact_format(b2b->home, "<sip:%s@%s:%d;transport=tls>",
					    cfg->node_id, adv, own);
	return a->contact_tls ? 0 : -ENOMEM;
}

void b2b_tls_destroy(b2b_t *b2b)
{
	b2b_tls_names_free();
	if (b2b->tls_dir != NULL)
		b2b_tls_remove(b2b->tls_dir);
	b2b->tls_dir = NULL;
}
