/*
 * check_store — the subscriber store against a real redis-server: the
 * management side (every `user ...` change, `user show` with bindings,
 * `user list`, `cdr tail`, and its failures: no such user, exists, Redis
 * unreachable or silent), the worker side where it meets the management
 * side (bindings written by the REGISTER script and read back by the C
 * decoder, lookups, CDRs added and tailed), and the pure parts (the
 * address parser, key names, the binding decoder).
 *
 * Each test has its own redis-server (tests/testenv.c); Redis is looked
 * at directly with a blocking client to check what the store wrote.
 */
#include "store/store.h"
#include "worker/rds.h"
#include "tests/testenv.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "b2bua/digest.h"
#include "shm/shm.h"

#define PREFIX     "b2bua:"
#define REALM      "example.com"
#define CONNECT_MS 3000

static store_sync_t *t_store;
static rds_t *t_rds;

/* ------------------------------------------------------------ helpers */

static void make_store(const char *address, const char *password)
{
	struct config cfg;

	config_defaults(&cfg);
	snprintf(cfg.redis_address, sizeof cfg.redis_address, "%s", address);
	snprintf(cfg.redis_password, sizeof cfg.redis_password, "%s", password ? password : "");
	snprintf(cfg.redis_prefix, sizeof cfg.redis_prefix, PREFIX);
	snprintf(cfg.realm, sizeof cfg.realm, REALM);
	ck_assert_int_eq(store_sync_create(&cfg, &t_store), 0);
}

static const char *unix_address(void)
{
	static char address[160];

	snprintf(address, sizeof address, "unix:%s", testenv_redis_sock());
	return address;
}

/* A running redis-server and a store on it. */
static void start(void)
{
	testenv_redis_start(0, NULL);
	make_store(unix_address(), NULL);
}

static void teardown(void)
{
	store_sync_destroy(t_store);
	t_store = NULL;
	rds_destroy(t_rds);
	t_rds = NULL;
	testenv_teardown();
}

/* One command on a blocking connection; the reply is the caller's. */
static redisReply *probe(const char *fmt, ...)
{
	redisContext *c = testenv_redis_connect(NULL);
	redisReply *r;
	va_list ap;

	ck_assert_ptr_nonnull(c);
	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	redisFree(c);
	ck_assert_ptr_nonnull(r);
	return r;
}

/* HGET key field as a string ("" when nil). */
static void probe_hget(const char *key, const char *field, char *out, size_t size)
{
	redisReply *r = probe("HGET %s %s", key, field);

	snprintf(out, size, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
	freeReplyObject(r);
}

static long long probe_int(const char *fmt, const char *arg)
{
	redisReply *r = probe(fmt, arg);
	long long v;

	ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
	v = r->integer;
	freeReplyObject(r);
	return v;
}

static void add_user(const char *name, const char *password)
{
	struct store_error err = { "" };

	ck_assert_int_eq(store_user_add(t_store, name, password, NULL, 0, &err), 0);
}

static int name_ok(const char *name)
{
	return name[0] != '\0' && strchr(name, ':') == NULL;
}

/* An rds on the test's root, up. */
static int is_up(void *arg)
{
	return rds_connected(arg);
}

static rds_t *start_rds(void)
{
	struct rds_config cfg = { .db = 0 };

	snprintf(cfg.address, sizeof cfg.address, "%s", unix_address());
	snprintf(cfg.prefix, sizeof cfg.prefix, PREFIX);
	ck_assert_int_eq(rds_create(testenv_root(), &cfg, &t_rds), 0);
	ck_assert(testenv_run_until(is_up, t_rds, CONNECT_MS));
	return t_rds;
}

/* ------------------------------------------------------------ pure parts */

START_TEST(test_address_parse)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
		{ "", "the host must be an IPv4 address (or IPv6 in brackets, \"[::1]:6379\"), "
		      "not a name" },
		{ "unix:", "the socket path after \"unix:\" must be absolute" },
		{ "unix:run/redis.sock", "the socket path after \"unix:\" must be absolute" },
		{ "localhost:6379", "the host must be an IPv4 address (or IPv6 in brackets, "
				    "\"[::1]:6379\"), not a name" },
		{ "127.0.0.1", "no port: write \"host:port\"" },
		{ "127.0.0.1:", "the port must be between 1 and 65535" },
		{ "127.0.0.1:0", "the port must be between 1 and 65535" },
		{ "127.0.0.1:65536", "the port must be between 1 and 65535" },
		{ "127.0.0.1:+1", "the port must be between 1 and 65535" },
		{ "[::1]", "no port: write \"host:port\"" },
		{ "[zz::1]:6379", "the host in brackets is not an IPv6 address" },
		{ "[127.0.0.1]:6379", "the host in brackets is not an IPv6 address" },
		{ "::1:6379", "the host must be an IPv4 address (or IPv6 in brackets, "
			      "\"[::1]:6379\"), not a name" },
		{ "127.0.0.256:6379", "the host must be an IPv4 address (or IPv6 in brackets, "
				      "\"[::1]:6379\"), not a name" },
	};
	struct store_address a;
	const char *why = "unset";
	char path[200];

	ck_assert_int_eq(store_address_parse("unix:/run/redis.sock", &a, &why), 0);
	ck_assert_ptr_null(why);
	ck_assert_str_eq(a.unix_path, "/run/redis.sock");
	ck_assert_int_eq(store_address_parse("10.1.2.3:6380", &a, NULL), 0);
	ck_assert_str_eq(a.unix_path, "");
	ck_assert_str_eq(a.host, "10.1.2.3");
	ck_assert_int_eq(a.port, 6380);
	ck_assert_int_eq(store_address_parse("[2001:db8::7]:1", &a, NULL), 0);
	ck_assert_str_eq(a.host, "2001:db8::7");
	ck_assert_int_eq(a.port, 1);
	ck_assert_int_eq(store_address_parse("[::1]:65535", NULL, NULL), 0);

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why = NULL;
		ck_assert_msg(store_address_parse(bad[i].text, &a, &why) == -EINVAL,
			      "\"%s\" accepted", bad[i].text);
		ck_assert_msg(why && strcmp(why, bad[i].why) == 0, "\"%s\": %s", bad[i].text,
			      why ? why : "(null)");
	}

	/* The socket path must fit sun_path: 107 bytes parse, 108 do not. */
	memset(path, 'a', sizeof path);
	memcpy(path, "unix:/", 6);
	path[5 + 107] = '\0';
	ck_assert_int_eq(store_address_parse(path, NULL, NULL), 0);
	path[5 + 107] = 'a';
	path[5 + 108] = '\0';
	ck_assert_int_eq(store_address_parse(path, NULL, &why), -EINVAL);
	ck_assert_str_eq(why, "the socket path must be shorter than 108 bytes");
}
END_TEST

START_TEST(test_keys)
{
	char key[STORE_KEY_MAX], small[12], longname[300];

	ck_assert_int_eq(store_key("b2bua:", STORE_KEY_USER, "alice", key, sizeof key), 0);
	ck_assert_str_eq(key, "b2bua:user:alice");
	ck_assert_int_eq(store_key("p:", STORE_KEY_LOCATION, "bob", key, sizeof key), 0);
	ck_assert_str_eq(key, "p:loc:bob");
	ck_assert_int_eq(store_key("", STORE_KEY_ACTIVE, "bob", key, sizeof key), 0);
	ck_assert_str_eq(key, "active:bob");
	ck_assert_int_eq(store_key("x:", STORE_KEY_NONCE_COUNT, "n0nce:00000001", key,
				   sizeof key), 0);
	ck_assert_str_eq(key, "x:nc:n0nce:00000001");
	ck_assert_int_eq(store_key("x:", STORE_KEY_AUTH_FAIL, "::1", key, sizeof key), 0);
	ck_assert_str_eq(key, "x:authfail:::1");
	ck_assert_int_eq(store_key("b2bua:", STORE_KEY_CALLS, "edge1", key, sizeof key), 0);
	ck_assert_str_eq(key, "b2bua:calls:edge1");
	ck_assert_int_eq(store_cdr_stream_key("b2bua:", "cdr", key, sizeof key), 0);
	ck_assert_str_eq(key, "b2bua:cdr");
	ck_assert_int_eq(store_cdr_seen_key("b2bua:cdr", "n1-7", key, sizeof key), 0);
	ck_assert_str_eq(key, "b2bua:cdr:seen:n1-7");
	ck_assert_int_eq(store_key("b2bua:", STORE_KEY_HOST, "edge1", key, sizeof key), 0);
	ck_assert_str_eq(key, "b2bua:host:edge1");
	ck_assert_int_eq(store_key("b2bua:", STORE_KEY_HOST_CLAIM, "edge1", key, sizeof key), 0);
	ck_assert_str_eq(key, "b2bua:hostclaim:edge1");
	ck_assert_int_eq(store_key("b2bua:", STORE_KEY_CALLS, "edge1", key, sizeof key), 0);
	ck_assert_str_eq(key, "b2bua:calls:edge1");
	ck_assert_int_eq(store_key("b2bua:", STORE_KEY_CALLS_BAD, "edge1", key, sizeof key), 0);
	ck_assert_str_eq(key, "b2bua:callsbad:edge1");
	ck_assert_int_eq(store_hosts_key("b2bua:", key, sizeof key), 0);
	ck_assert_str_eq(key, "b2bua:hosts");
	ck_assert_int_eq(store_hosts_key("b2bua:", small, 6), -ENAMETOOLONG);

	/* Never a shorter key. */
	ck_assert_int_eq(store_key("b2bua:", STORE_KEY_USER, "alice", small, sizeof small),
			 -ENAMETOOLONG);
	memset(longname, 'n', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	ck_assert_int_eq(store_key("b2bua:", STORE_KEY_USER, longname, key, sizeof key),
			 -ENAMETOOLONG);
	ck_assert_int_eq(store_cdr_seen_key("s", longname, key, sizeof key), -ENAMETOOLONG);
	ck_assert_int_eq(store_key("b2bua:", (enum store_key_kind)99, "a", key, sizeof key),
			 -EINVAL);
}
END_TEST

START_TEST(test_binding_decode)
{
	/* What cjson writes: big numbers may come as reals. */
	static const char json[] =
		"{\"expires\":2.0e12,\"registered\":1999999990000,\"cseq\":7,"
		"\"call_id\":\"c1@h\",\"source\":\"192.0.2.1:5060\",\"transport\":\"udp\","
		"\"user_agent\":\"ua\xff x\",\"host\":\"node1\",\"worker\":3}";
	struct store_binding b;

	ck_assert_int_eq(store_binding_decode("sip:a@192.0.2.1", json, strlen(json),
					      1999999999000ull, &b), 0);
	ck_assert_str_eq(b.contact, "sip:a@192.0.2.1");
	ck_assert_int_eq(b.expires_ms, 2000000000000ll);
	ck_assert_int_eq(b.registered_ms, 1999999990000ll);
	ck_assert_int_eq(b.cseq, 7);
	ck_assert_str_eq(b.call_id, "c1@h");
	ck_assert_str_eq(b.source, "192.0.2.1:5060");
	ck_assert_str_eq(b.transport, "udp");
	ck_assert_str_eq(b.user_agent, "ua? x");   /* not UTF-8: '?' */
	ck_assert_str_eq(b.host, "node1");
	ck_assert_int_eq(b.worker, 3);
	store_binding_clear(&b);
	ck_assert_ptr_null(b.contact);

	/* Expired (at now), garbled, or no object. */
	ck_assert_int_eq(store_binding_decode("c", json, strlen(json), 2000000000000ull, &b),
			 -ESTALE);
	ck_assert_int_eq(store_binding_decode("c", "{\"expires\":", 11, 0, &b), -EBADMSG);
	ck_assert_int_eq(store_binding_decode("c", "[1,2]", 5, 0, &b), -EBADMSG);
	/* Members missing: "" and 0, still a binding while unexpired. */
	ck_assert_int_eq(store_binding_decode("c", "{\"expires\":5}", 13, 4, &b), 0);
	ck_assert_str_eq(b.source, "");
	ck_assert_int_eq(b.worker, 0);
	store_binding_clear(&b);
}
END_TEST

/* ------------------------------------------------------------ user changes */

START_TEST(test_user_add)
{
	struct store_error err = { "" };
	char md5[DIGEST_HA1_SIZE], sha[DIGEST_HA1_SIZE], got[128];
	uint64_t before = shm_now_ms();
	struct store_binding *b = NULL;
	struct store_user u;
	size_t n = 99;

	start();
	/* A location hash left by an earlier alice goes with the new one. */
	freeReplyObject(probe("HSET " PREFIX "loc:alice sip:old {\"expires\":1e15}"));
	ck_assert_int_eq(store_user_add(t_store, "alice", "s3cret", "Alice A.", 2, &err), 0);
	ck_assert_int_eq(probe_int("EXISTS %s", PREFIX "loc:alice"), 0);

	ck_assert_int_eq(digest_ha1(DIGEST_MD5, "alice", REALM, "s3cret", md5), 0);
	ck_assert_int_eq(digest_ha1(DIGEST_SHA256, "alice", REALM, "s3cret", sha), 0);
	probe_hget(PREFIX "user:alice", "ha1_md5", got, sizeof got);
	ck_assert_str_eq(got, md5);
	probe_hget(PREFIX "user:alice", "ha1_sha256", got, sizeof got);
	ck_assert_str_eq(got, sha);
	probe_hget(PREFIX "user:alice", "password", got, sizeof got);
	ck_assert_str_eq(got, "");   /* never the password itself */

	ck_assert_int_eq(store_user_show(t_store, "alice", &u, &b, &n, &err), 0);
	ck_assert_str_eq(u.display, "Alice A.");
	ck_assert_int_eq(u.enabled, 1);
	ck_assert_uint_eq(u.max_calls, 2);
	ck_assert(u.created_ms >= before && u.created_ms <= shm_now_ms());
	ck_assert_str_eq(u.fwd_always, "");
	ck_assert_uint_eq(u.fwd_noanswer_timeout, 0);
	ck_assert_uint_eq(n, 0);
	store_bindings_free(b, n);

	ck_assert_int_eq(store_user_add(t_store, "alice", "other", NULL, 0, &err), -EEXIST);
	ck_assert_str_eq(err.text, "user alice exists");
	probe_hget(PREFIX "user:alice", "ha1_md5", got, sizeof got);
	ck_assert_str_eq(got, md5);   /* unchanged */
}
END_TEST

START_TEST(test_user_passwd_enable)
{
	struct store_error err = { "" };
	char md5[DIGEST_HA1_SIZE], got[128];

	start();
	add_user("bob", "one");
	ck_assert_int_eq(store_user_passwd(t_store, "bob", "two", &err), 0);
	ck_assert_int_eq(digest_ha1(DIGEST_MD5, "bob", REALM, "two", md5), 0);
	probe_hget(PREFIX "user:bob", "ha1_md5", got, sizeof got);
	ck_assert_str_eq(got, md5);

	ck_assert_int_eq(store_user_set_enabled(t_store, "bob", 0, &err), 0);
	probe_hget(PREFIX "user:bob", "enabled", got, sizeof got);
	ck_assert_str_eq(got, "0");
	ck_assert_int_eq(store_user_set_enabled(t_store, "bob", 1, &err), 0);
	probe_hget(PREFIX "user:bob", "enabled", got, sizeof got);
	ck_assert_str_eq(got, "1");

	/* No such user: nothing is created by the way. */
	ck_assert_int_eq(store_user_passwd(t_store, "carol", "x", &err), -ENOENT);
	ck_assert_str_eq(err.text, "no such user carol");
	ck_assert_int_eq(store_user_set_enabled(t_store, "carol", 1, &err), -ENOENT);
	ck_assert_str_eq(err.text, "no such user carol");
	ck_assert_int_eq(probe_int("EXISTS %s", PREFIX "user:carol"), 0);
}
END_TEST

START_TEST(test_user_forward)
{
	struct store_forward_change all = { "sip:voicemail@192.0.2.9", "carol", "dave", 25 };
	struct store_forward_change busy = { .busy = "erin" };
	struct store_forward_change none = { 0 };
	struct store_error err = { "" };
	struct store_binding *b = NULL;
	struct store_user u;
	size_t n;

	start();
	add_user("bob", "pw");
	ck_assert_int_eq(store_user_forward_set(t_store, "bob", &all, &err), 0);
	ck_assert_int_eq(store_user_forward_set(t_store, "bob", &busy, &err), 0);
	ck_assert_int_eq(store_user_show(t_store, "bob", &u, &b, &n, &err), 0);
	store_bindings_free(b, n);
	ck_assert_str_eq(u.fwd_always, "sip:voicemail@192.0.2.9");
	ck_assert_str_eq(u.fwd_busy, "erin");        /* set */
	ck_assert_str_eq(u.fwd_noanswer, "dave");    /* kept */
	ck_assert_uint_eq(u.fwd_noanswer_timeout, 25);

	ck_assert_int_eq(store_user_forward_set(t_store, "bob", &none, &err), -EINVAL);
	ck_assert_int_eq(store_user_forward_set(t_store, "nobody", &busy, &err), -ENOENT);
	ck_assert_str_eq(err.text, "no such user nobody");

	ck_assert_int_eq(store_user_forward_clear(t_store, "bob", &err), 0);
	ck_assert_int_eq(probe_int("HEXISTS %s fwd_always", PREFIX "user:bob"), 0);
	ck_assert_int_eq(probe_int("HEXISTS %s fwd_noanswer_timeout", PREFIX "user:bob"), 0);
	ck_assert_int_eq(probe_int("HEXISTS %s ha1_md5", PREFIX "user:bob"), 1);
	ck_assert_int_eq(store_user_forward_clear(t_store, "nobody", &err), -ENOENT);
	ck_assert_str_eq(err.text, "no such user nobody");
}
END_TEST

START_TEST(test_user_del)
{
	struct store_error err = { "" };
	struct store_binding *b = NULL;
	struct store_user u;
	size_t n;

	start();
	add_user("bob", "pw");
	freeReplyObject(probe("HSET " PREFIX "loc:bob sip:b {\"expires\":1e15}"));
	ck_assert_int_eq(store_user_del(t_store, "bob", &err), 0);
	ck_assert_int_eq(probe_int("EXISTS %s", PREFIX "user:bob"), 0);
	ck_assert_int_eq(probe_int("EXISTS %s", PREFIX "loc:bob"), 0);
	ck_assert_int_eq(store_user_del(t_store, "bob", &err), -ENOENT);
	ck_assert_str_eq(err.text, "no such user bob");
	ck_assert_int_eq(store_user_show(t_store, "bob", &u, &b, &n, &err), -ENOENT);
	ck_assert_str_eq(err.text, "no such user bob");
}
END_TEST

/* ------------------------------------------------------------ bindings: worker writes, CLI reads */

struct registered {
	int done;
	int err;
	enum store_register_result result;
	size_t n_left;
};

static void on_registered(void *arg, int err, enum store_register_result result,
			  const struct store_binding_left *left, size_t n_left)
{
	struct registered *r = arg;

	(void)left;
	r->done = 1;
	r->err = err;
	r->result = result;
	r->n_left = n_left;
}

static int registered_done(void *arg)
{
	return ((struct registered *)arg)->done;
}

static void do_register(const char *call_id, uint32_t cseq, const char *contact, int expires,
			const char *replay, enum store_register_result want, size_t want_left)
{
	const char *contacts[] = { contact };
	const int exp[] = { expires };
	struct store_register_req req = {
		.user = "alice", .replay_key = replay, .nonce_ttl = 300, .call_id = call_id,
		.cseq = cseq, .source = "192.0.2.1:5062", .transport = "udp",
		.user_agent = "softphone/1.0", .host = "node7", .worker = 3,
		.host_address = "198.51.100.7:5060", .n_contacts = 1, .contacts = contacts, .expires = exp,
	};
	struct registered r = { 0 };

	ck_assert_int_eq(store_register(t_rds, &req, on_registered, &r), 0);
	ck_assert(testenv_run_until(registered_done, &r, 2000));
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(r.result, want);
	ck_assert_uint_eq(r.n_left, want_left);
}

struct looked_up {
	int done;
	int err;
	enum store_lookup_result result;
	unsigned n;
	char first[STORE_URI_MAX];
	char first_source[64];
	char first_host[64];
	char first_host_address[64];
	char first_transport[8];
	char first_flow[128];
	int first_flow_worker;
	char busy[STORE_URI_MAX];
};

static void on_lookup(void *arg, int err, enum store_lookup_result result,
		      const struct store_contact *contacts, unsigned n,
		      const struct store_forward *fwd)
{
	struct looked_up *l = arg;

	l->done = 1;
	l->err = err;
	l->result = result;
	l->n = n;
	snprintf(l->first, sizeof l->first, "%s", n ? contacts[0].uri : "");
	snprintf(l->first_source, sizeof l->first_source, "%s", n ? contacts[0].source : "");
	snprintf(l->first_host, sizeof l->first_host, "%s", n ? contacts[0].host : "");
	snprintf(l->first_host_address, sizeof l->first_host_address, "%s",
		 n ? contacts[0].host_address : "");
	snprintf(l->first_transport, sizeof l->first_transport, "%s", n ? contacts[0].transport : "");
	snprintf(l->first_flow, sizeof l->first_flow, "%s", n ? contacts[0].flow : "");
	l->first_flow_worker = n ? contacts[0].flow_worker : -2;
	snprintf(l->busy, sizeof l->busy, "%s", fwd ? fwd->busy : "-");
}

static int lookup_done(void *arg)
{
	return ((struct looked_up *)arg)->done;
}

START_TEST(test_show_bindings)
{
	struct store_forward_change busy = { .busy = "carol" };
	struct store_error err = { "" };
	struct store_binding *b = NULL;
	struct looked_up l = { 0 };
	uint64_t now = shm_now_ms();
	struct store_user u;
	size_t n = 0;

	start();
	start_rds();
	add_user("alice", "pw");
	ck_assert_int_eq(store_user_forward_set(t_store, "alice", &busy, &err), 0);
	do_register("cid-1", 1, "sip:alice@192.0.2.1:5062", 600, "n1:00000001",
		    STORE_REGISTERED, 1);
	testenv_run_for(20);   /* a later registration: it comes first */
	do_register("cid-2", 5, "sip:alice@192.0.2.2:5062", 3600, "n1:00000002",
		    STORE_REGISTERED, 2);
	/* The same nonce-count again; an older CSeq of the same Call-ID. */
	do_register("cid-2", 6, "sip:alice@192.0.2.2:5062", 3600, "n1:00000002",
		    STORE_REPLAYED, 0);
	do_register("cid-2", 4, "sip:alice@192.0.2.2:5062", 3600, "",
		    STORE_OUT_OF_ORDER, 0);
	/* Neither an expired binding nor a garbled one is a registration. */
	freeReplyObject(probe("HSET " PREFIX "loc:alice sip:gone {\"expires\":1000}"));
	freeReplyObject(probe("HSET " PREFIX "loc:alice sip:bad {garbled"));

	ck_assert_int_eq(store_user_show(t_store, "alice", &u, &b, &n, &err), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(b[0].contact, "sip:alice@192.0.2.2:5062");
	ck_assert_str_eq(b[1].contact, "sip:alice@192.0.2.1:5062");
	ck_assert(b[0].registered_ms >= b[1].registered_ms);
	ck_assert(b[0].expires_ms >= (int64_t)now + 3599000 &&
		  b[0].expires_ms <= (int64_t)shm_now_ms() + 3600000);
	ck_assert_str_eq(b[0].call_id, "cid-2");
	ck_assert_int_eq(b[0].cseq, 5);
	ck_assert_str_eq(b[0].source, "192.0.2.1:5062");
	ck_assert_str_eq(b[0].transport, "udp");
	ck_assert_str_eq(b[0].user_agent, "softphone/1.0");
	ck_assert_str_eq(b[0].host, "node7");
	ck_assert_int_eq(b[0].worker, 3);
	ck_assert_str_eq(b[0].host_address, "198.51.100.7:5060");
	store_bindings_free(b, n);

	/* The worker's lookup sees the same order and the forwarding (its script,
	 * like the REGISTER script, fails on a garbled binding: none is written
	 * but by hand). */
	freeReplyObject(probe("HDEL " PREFIX "loc:alice sip:bad"));
	ck_assert_int_eq(store_lookup(t_rds, "alice", NULL, on_lookup, &l), 0);
	ck_assert(testenv_run_until(lookup_done, &l, 2000));
	ck_assert_int_eq(l.err, 0);
	ck_assert_int_eq(l.result, STORE_FOUND);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_str_eq(l.first, "sip:alice@192.0.2.2:5062");
	ck_assert_str_eq(l.first_source, "192.0.2.1:5062");
	ck_assert_str_eq(l.first_host, "node7");
	ck_assert_str_eq(l.first_host_address, "198.51.100.7:5060");
	ck_assert_str_eq(l.first_transport, "udp");
	ck_assert_str_eq(l.first_flow, "");        /* a datagram REGISTER: no flow */
	ck_assert_int_eq(l.first_flow_worker, -1);
	ck_assert_str_eq(l.busy, "carol");

	/* Disabled: unknown to the worker side. */
	ck_assert_int_eq(store_user_set_enabled(t_store, "alice", 0, &err), 0);
	memset(&l, 0, sizeof l);
	ck_assert_int_eq(store_lookup(t_rds, "alice", NULL, on_lookup, &l), 0);
	ck_assert(testenv_run_until(lookup_done, &l, 2000));
	ck_assert_int_eq(l.result, STORE_UNKNOWN);
	ck_assert_str_eq(l.busy, "-");
}
END_TEST

/* ------------------------------------------------------------ a binding's flow */

/* A REGISTER read on a connection stores its transport, token and worker;
 * the lookup hands them back; the JSON of a datagram binding has neither
 * flow nor flow_worker, and one written before flows existed reads as udp
 * without a flow. */
START_TEST(test_flow_binding)
{
	const char *contacts[] = { "sip:alice@192.0.2.9:5090;transport=tcp" };
	const int exp[] = { 600 };
	struct store_register_req req = {
		.user = "alice", .nonce_ttl = 300, .call_id = "cid-f", .cseq = 1,
		.source = "192.0.2.9:40118", .transport = "tcp", .user_agent = "",
		.host = "node7", .worker = 1, .host_address = "198.51.100.7:5060",
		.flow = "198.51.100.7:5060/192.0.2.9:40118", .flow_worker = 1,
		.n_contacts = 1, .contacts = contacts, .expires = exp,
	};
	struct registered r = { 0 };
	struct looked_up l = { 0 };
	redisReply *v;

	start();
	start_rds();
	add_user("alice", "pw");
	ck_assert_int_eq(store_register(t_rds, &req, on_registered, &r), 0);
	ck_assert(testenv_run_until(registered_done, &r, 2000));
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(store_lookup(t_rds, "alice", NULL, on_lookup, &l), 0);
	ck_assert(testenv_run_until(lookup_done, &l, 2000));
	ck_assert_int_eq(l.result, STORE_FOUND);
	ck_assert_str_eq(l.first_transport, "tcp");
	ck_assert_str_eq(l.first_flow, "198.51.100.7:5060/192.0.2.9:40118");
	ck_assert_int_eq(l.first_flow_worker, 1);

	/* A binding as an older b2bua wrote it. */
	freeReplyObject(probe("DEL " PREFIX "loc:alice"));
	freeReplyObject(probe("HSET " PREFIX "loc:alice sip:old {\"expires\":99999999999999}"));
	memset(&l, 0, sizeof l);
	ck_assert_int_eq(store_lookup(t_rds, "alice", NULL, on_lookup, &l), 0);
	ck_assert(testenv_run_until(lookup_done, &l, 2000));
	ck_assert_str_eq(l.first, "sip:old");
	ck_assert_str_eq(l.first_transport, "udp");
	ck_assert_str_eq(l.first_flow, "");
	ck_assert_int_eq(l.first_flow_worker, -1);

	/* A datagram REGISTER writes no flow keys at all. */
	req.transport = "udp";
	req.flow = "";
	req.call_id = "cid-u";
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(store_register(t_rds, &req, on_registered, &r), 0);
	ck_assert(testenv_run_until(registered_done, &r, 2000));
	v = probe("HGET " PREFIX "loc:alice sip:alice@192.0.2.9:5090;transport=tcp");
	ck_assert_int_eq(v->type, REDIS_REPLY_STRING);
	ck_assert_ptr_null(strstr(v->str, "flow"));
	ck_assert_ptr_nonnull(strstr(v->str, "\"transport\":\"udp\""));
	freeReplyObject(v);
}
END_TEST

/* ------------------------------------------------------------ a dead NAT binding */

struct dropped {
	int done;
	int err;
	int removed;
};

static void on_dropped(void *arg, int err, int removed)
{
	struct dropped *d = arg;

	d->done = 1;
	d->err = err;
	d->removed = removed;
}

static int dropped_done(void *arg)
{
	return ((struct dropped *)arg)->done;
}

static int drop_binding(const char *contact, const char *call_id, uint32_t cseq)
{
	struct dropped d = { 0 };

	ck_assert_int_eq(store_binding_drop(t_rds, "alice", contact, call_id, cseq, on_dropped,
					    &d), 0);
	ck_assert(testenv_run_until(dropped_done, &d, 2000));
	ck_assert_int_eq(d.err, 0);
	return d.removed;
}

/* Only the binding the keepalives knew goes: a refresh since (a higher CSeq,
 * another Call-ID) keeps it, and another binding is never touched. */
START_TEST(test_binding_drop)
{
	start();
	start_rds();
	add_user("alice", "pw");
	do_register("cid-1", 1, "sip:alice@192.0.2.1:5062", 600, "", STORE_REGISTERED, 1);
	do_register("cid-1", 2, "sip:alice@192.0.2.2:5062", 600, "", STORE_REGISTERED, 2);
	ck_assert_int_eq(drop_binding("sip:alice@192.0.2.1:5062", "cid-1", 7), 0);
	ck_assert_int_eq(drop_binding("sip:alice@192.0.2.1:5062", "cid-9", 1), 0);
	ck_assert_int_eq(drop_binding("sip:alice@192.0.2.9:5062", "cid-1", 1), 0);
	ck_assert_int_eq(probe_int("HEXISTS %s sip:alice@192.0.2.1:5062", PREFIX "loc:alice"), 1);
	ck_assert_int_eq(drop_binding("sip:alice@192.0.2.1:5062", "cid-1", 1), 1);
	ck_assert_int_eq(probe_int("HEXISTS %s sip:alice@192.0.2.1:5062", PREFIX "loc:alice"), 0);
	ck_assert_int_eq(probe_int("HEXISTS %s sip:alice@192.0.2.2:5062", PREFIX "loc:alice"), 1);
	ck_assert_int_eq(drop_binding("sip:alice@192.0.2.1:5062", "cid-1", 1), 0);
}
END_TEST

/* ------------------------------------------------------------ user list */

START_TEST(test_user_list)
{
	struct store_error err = { "" };
	struct store_user_row *rows = NULL;
	size_t n = 0;

	start();
	ck_assert_int_eq(store_user_list(t_store, name_ok, &rows, &n, &err), 0);
	ck_assert_uint_eq(n, 0);
	free(rows);

	ck_assert_int_eq(store_user_add(t_store, "carol", "pw", "Carol", 3, &err), 0);
	add_user("alice", "pw");
	add_user("bob", "pw");
	ck_assert_int_eq(store_user_set_enabled(t_store, "bob", 0, &err), 0);
	freeReplyObject(probe("HSET " PREFIX "loc:alice a {\"expires\":1e15} b {\"expires\":1e15}"
			      " c {\"expires\":1}"));
	/* Not subscribers: the name check refuses the suffix, or another prefix. */
	freeReplyObject(probe("HSET " PREFIX "user:x:y display z"));
	freeReplyObject(probe("HSET other:user:dave display d"));

	ck_assert_int_eq(store_user_list(t_store, name_ok, &rows, &n, &err), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(rows[0].name, "alice");
	ck_assert_uint_eq(rows[0].registrations, 2);
	ck_assert_int_eq(rows[0].enabled, 1);
	ck_assert_str_eq(rows[1].name, "bob");
	ck_assert_int_eq(rows[1].enabled, 0);
	ck_assert_str_eq(rows[2].name, "carol");
	ck_assert_str_eq(rows[2].display, "Carol");
	ck_assert_uint_eq(rows[2].max_calls, 3);
	ck_assert_uint_eq(rows[2].registrations, 0);
	free(rows);
}
END_TEST

/* More users than one pipelined batch. */
START_TEST(test_user_list_batches)
{
	struct store_error err = { "" };
	struct store_user_row *rows = NULL;
	unsigned count = STORE_LIST_BATCH * 2 + 7;
	redisContext *c;
	size_t n = 0;

	start();
	c = testenv_redis_connect(NULL);
	ck_assert_ptr_nonnull(c);
	for (unsigned i = 0; i < count; i++)
		redisAppendCommand(c, "HSET " PREFIX "user:u%04u enabled 1 display d%u", i, i);
	for (unsigned i = 0; i < count; i++) {
		void *r = NULL;

		ck_assert_int_eq(redisGetReply(c, &r), REDIS_OK);
		freeReplyObject(r);
	}
	redisFree(c);
	ck_assert_int_eq(store_user_list(t_store, name_ok, &rows, &n, &err), 0);
	ck_assert_uint_eq(n, count);
	for (unsigned i = 0; i < count; i++) {
		char want[16];

		snprintf(want, sizeof want, "u%04u", i);
		ck_assert_str_eq(rows[i].name, want);
	}
	free(rows);
}
END_TEST

/* ------------------------------------------------------------ CDRs */

struct cdr_result {
	int done;
	enum store_cdr_outcome outcome;
};

static void on_cdr(void *arg, enum store_cdr_outcome outcome, const char *error)
{
	struct cdr_result *r = arg;

	(void)error;
	r->done = 1;
	r->outcome = outcome;
}

static int cdr_done(void *arg)
{
	return ((struct cdr_result *)arg)->done;
}

static void add_cdr(const char *id, enum store_cdr_outcome want)
{
	const char *fields[] = { "id", "caller", "disposition" };
	const char *values[] = { id, "sip:alice@example.com", "ANSWERED" };
	struct cdr_result r = { 0 };

	ck_assert_int_eq(store_cdr_add(t_rds, PREFIX "cdr", id, "n1", 3, fields, values, on_cdr,
				       &r), 0);
	ck_assert(testenv_run_until(cdr_done, &r, 2000));
	ck_assert_int_eq(r.outcome, want);
}

START_TEST(test_cdr_tail)
{
	struct store_error err = { "" };
	struct store_cdr_entry *e = NULL;
	size_t n = 99;

	start();
	start_rds();
	ck_assert_int_eq(store_cdr_tail(t_store, 10, &e, &n, &err), 0);
	ck_assert_uint_eq(n, 0);
	store_cdr_entries_free(e, n);

	/* The calls' records (<p>calls:<node_id>) go with their CDRs. */
	freeReplyObject(probe("HSET %s n1-1 rec1 n1-2 rec2 n1-9 rec9", PREFIX "calls:n1"));
	add_cdr("n1-1", STORE_CDR_STORED);
	ck_assert_int_eq(probe_int("HEXISTS %s n1-1", PREFIX "calls:n1"), 0);
	ck_assert_int_eq(probe_int("HEXISTS %s n1-2", PREFIX "calls:n1"), 1);
	add_cdr("n1-2", STORE_CDR_STORED);
	add_cdr("n1-3", STORE_CDR_STORED);
	/* A dup deletes the record too, and refreshes the seen key (a write
	 * that replicates, for WAIT). */
	freeReplyObject(probe("HSET %s n1-2 rec2again", PREFIX "calls:n1"));
	freeReplyObject(probe("EXPIRE %s 100", PREFIX "cdr:seen:n1-2"));
	add_cdr("n1-2", STORE_CDR_DUP);   /* stored once */
	ck_assert_int_eq(probe_int("XLEN %s", PREFIX "cdr"), 3);
	ck_assert_int_eq(probe_int("HEXISTS %s n1-2", PREFIX "calls:n1"), 0);
	ck_assert_int_eq(probe_int("HEXISTS %s n1-9", PREFIX "calls:n1"), 1);   /* others stay */
	ck_assert_int_gt(probe_int("TTL %s", PREFIX "cdr:seen:n1-2"), 600000);

	ck_assert_int_eq(store_cdr_tail(t_store, 2, &e, &n, &err), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(store_cdr_field(&e[0], "id"), "n1-2");   /* oldest first */
	ck_assert_str_eq(store_cdr_field(&e[1], "id"), "n1-3");
	ck_assert_uint_eq(e[1].n_fields, 3);
	ck_assert_str_eq(e[1].fields[1].name, "caller");
	ck_assert_str_eq(e[1].fields[1].value, "sip:alice@example.com");
	ck_assert_ptr_null(store_cdr_field(&e[1], "nonesuch"));
	ck_assert(strchr(e[0].stream_id, '-') != NULL);
	ck_assert(strcmp(e[0].stream_id, e[1].stream_id) != 0);
	store_cdr_entries_free(e, n);

	/* Not a stream: Redis's own error, named. */
	freeReplyObject(probe("DEL %s", PREFIX "cdr"));
	freeReplyObject(probe("SET %s x", PREFIX "cdr"));
	ck_assert_int_eq(store_cdr_tail(t_store, 2, &e, &n, &err), -EPROTO);
	ck_assert_msg(strstr(err.text, ": XREVRANGE: WRONGTYPE") != NULL, "%s", err.text);
	add_cdr("n1-4", STORE_CDR_REJECT);
}
END_TEST

/* ------------------------------------------------------------ hosts */

/* One host of the list by node_id. */
static const struct store_host *find_host(const struct store_host *h, size_t n, const char *node)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(h[i].node, node) == 0)
			return &h[i];
	return NULL;
}

/* The lease by Redis's clock, the claim (one closer only), closing a call
 * (active entry, CDR, record in one go, idempotent), the note of the
 * closing, and a restart's leftovers. */
START_TEST(test_hosts)
{
	struct store_error err = { "" };
	struct store_host *list;
	const struct store_host *h;
	struct store_host_claim cl, other;
	struct store_call_rec *recs;
	size_t n;
	uint64_t now;
	const char *names[] = { "bob" };
	const char *fields[] = { "id", "caller", "cause", "closed_by" };
	const char *values[] = { "edge2-w0-1-1", "sip:alice@example.com", "host_lost", "edge1" };
	struct store_close_item item = {
		.id = "edge2-w0-1-1", .names = names, .n_names = 1, .n = 4,
		.fields = fields, .values = values,
	};

	start();
	ck_assert_int_eq(store_host_beat(t_store, "edge1", 10, "10.0.0.1:5060", 4000, &err), 0);
	ck_assert_int_eq(store_host_beat(t_store, "edge2", 20, "10.0.0.2:5060", 4000, &err), 0);
	freeReplyObject(probe("HSET %s c1 x c2 y", PREFIX "calls:edge1"));
	ck_assert_int_eq(store_hosts_list(t_store, &list, &n, &now, &err), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(list[0].node, "edge1");   /* sorted */
	ck_assert_str_eq(list[0].sip, "10.0.0.1:5060");
	ck_assert_uint_eq(list[0].epoch, 10);
	ck_assert_uint_eq(list[0].lease_ms, 4000);
	ck_assert_uint_eq(list[0].calls, 2);
	ck_assert(list[0].beat_ms <= now && list[0].beat_ms + 1000 > now);   /* Redis's clock */
	ck_assert_uint_eq(list[0].started_ms, list[0].beat_ms);
	free(list);

	/* Alive: no work, no claim. */
	ck_assert_int_eq(store_host_claim(t_store, "edge2", "edge1", 30000, &cl, &err), 0);

	/* edge1 stops on purpose: not while calls are left, and a stopped life
	 * whose lease runs out is no work for a closer; a new beat clears it. */
	ck_assert_int_eq(store_host_stop(t_store, "edge1", 10, &err), 0);
	freeReplyObject(probe("DEL %s", PREFIX "calls:edge1"));
	ck_assert_int_eq(store_host_stop(t_store, "edge1", 9, &err), 0);   /* not its life */
	ck_assert_int_eq(store_host_stop(t_store, "edge1", 10, &err), 1);
	freeReplyObject(probe("HSET %s beat_ms 1000", PREFIX "host:edge1"));
	ck_assert_int_eq(store_host_claim(t_store, "edge1", "edge2", 30000, &cl, &err), 0);
	ck_assert_int_eq(store_hosts_list(t_store, &list, &n, &now, &err), 0);
	ck_assert_uint_eq(find_host(list, n, "edge1")->stopped_epoch, 10);
	free(list);
	ck_assert_int_eq(store_host_beat(t_store, "edge1", 10, "10.0.0.1:5060", 4000, &err), 0);
	ck_assert_int_eq(probe_int("HEXISTS " PREFIX "host:edge1 %s", "stopped_epoch"), 0);

	/* edge2 lost with one answered call, counted against bob. */
	freeReplyObject(probe("HSET %s beat_ms 1000", PREFIX "host:edge2"));
	freeReplyObject(probe("HSET %s edge2-w0-1-1 rec", PREFIX "calls:edge2"));
	freeReplyObject(probe("ZADD %s 1 edge2-w0-1-1", PREFIX "active:bob"));
	ck_assert_int_eq(store_host_claim(t_store, "edge2", "edge1", 30000, &cl, &err), 1);
	ck_assert(cl.dead);
	ck_assert_uint_eq(cl.epoch, 20);
	ck_assert_uint_eq(cl.beat_ms, 1000);
	ck_assert_uint_gt(cl.now_ms, 1000);
	/* Exactly one closer: the next one finds it claimed. */
	ck_assert_int_eq(store_host_claim(t_store, "edge2", "edge3", 30000, &other, &err), 0);

	ck_assert_int_eq(store_call_recs(t_store, "edge2", &recs, &n, &err), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(recs[0].id, "edge2-w0-1-1");
	ck_assert_str_eq(recs[0].text, "rec");
	ck_assert_uint_eq(recs[0].len, 3);
	store_call_recs_free(recs, n);

	ck_assert_int_eq(store_host_close(t_store, "edge2", &item, 1, &err), 0);
	ck_assert_int_eq(item.outcome, STORE_CDR_STORED);
	ck_assert_int_eq(probe_int("XLEN %s", PREFIX "cdr"), 1);
	ck_assert_int_eq(probe_int("HLEN %s", PREFIX "calls:edge2"), 0);
	ck_assert_int_eq(probe_int("ZCARD %s", PREFIX "active:bob"), 0);
	/* Again (a closer that died after it): stored once. */
	freeReplyObject(probe("HSET %s edge2-w0-1-1 rec", PREFIX "calls:edge2"));
	ck_assert_int_eq(store_host_close(t_store, "edge2", &item, 1, &err), 0);
	ck_assert_int_eq(item.outcome, STORE_CDR_DUP);
	ck_assert_int_eq(probe_int("XLEN %s", PREFIX "cdr"), 1);
	ck_assert_int_eq(probe_int("HLEN %s", PREFIX "calls:edge2"), 0);

	ck_assert_int_eq(store_host_closed(t_store, "edge2", "edge1", 20, 1, 1, &err), 0);
	ck_assert_int_eq(probe_int("EXISTS %s", PREFIX "hostclaim:edge2"), 0);
	ck_assert_int_eq(store_hosts_list(t_store, &list, &n, &now, &err), 0);
	h = find_host(list, n, "edge2");
	ck_assert_ptr_nonnull(h);
	ck_assert_str_eq(h->closed_by, "edge1");
	ck_assert_uint_eq(h->closed_calls, 1);
	ck_assert_uint_eq(h->closed_epoch, 20);
	ck_assert(h->closed_ms > 1000 && h->closed_ms <= now);
	free(list);
	/* Handled: nobody claims it again. */
	ck_assert_int_eq(store_host_claim(t_store, "edge2", "edge3", 30000, &other, &err), 0);

	/* edge2 restarts (epoch 21) with a record of its previous life left. */
	freeReplyObject(probe("HSET %s edge2-w0-1-2 rec2", PREFIX "calls:edge2"));
	ck_assert_int_eq(store_host_beat(t_store, "edge2", 21, "10.0.0.2:5060", 4000, &err), 0);
	ck_assert_int_eq(store_hosts_list(t_store, &list, &n, &now, &err), 0);
	h = find_host(list, n, "edge2");
	ck_assert(h->prev_open);
	ck_assert_uint_eq(h->epoch, 21);
	free(list);
	ck_assert_int_eq(store_host_claim(t_store, "edge2", "edge2", 30000, &cl, &err), 1);
	ck_assert(!cl.dead);
	ck_assert_uint_eq(cl.epoch, 21);
	ck_assert_uint_eq(cl.prev_epoch, 20);
	ck_assert_uint_eq(cl.prev_beat_ms, 1000);
	/* A record that is no record goes aside. */
	ck_assert_int_eq(store_call_rec_aside(t_store, "edge2", "edge2-w0-1-2", &err), 0);
	ck_assert_int_eq(probe_int("HLEN %s", PREFIX "calls:edge2"), 0);
	ck_assert_int_eq(probe_int("HLEN %s", PREFIX "callsbad:edge2"), 1);
	ck_assert_int_eq(store_host_closed(t_store, "edge2", "edge2", 20, 0, 0, &err), 0);
	ck_assert_int_eq(store_hosts_list(t_store, &list, &n, &now, &err), 0);
	h = find_host(list, n, "edge2");
	ck_assert(!h->prev_open);
	ck_assert_str_eq(h->prev_closed_by, "edge2");
	ck_assert_uint_eq(h->bad, 1);
	free(list);
	ck_assert_int_eq(store_host_claim(t_store, "edge2", "edge1", 30000, &cl, &err), 0);
}
END_TEST

/* ------------------------------------------------------------ Redis unreachable */

START_TEST(test_unreachable)
{
	struct store_error err = { "" };
	struct store_cdr_entry *e = NULL;
	struct store_user_row *rows = NULL;
	char want[300];
	size_t n;

	/* Nothing listens on the socket. */
	make_store(unix_address(), NULL);
	snprintf(want, sizeof want, "redis %s: cannot connect: ", unix_address());
	ck_assert_int_eq(store_user_add(t_store, "bob", "pw", NULL, 0, &err), -ENOTCONN);
	ck_assert_msg(strncmp(err.text, want, strlen(want)) == 0, "%s", err.text);
	ck_assert_int_eq(store_user_list(t_store, name_ok, &rows, &n, &err), -ENOTCONN);
	ck_assert_int_eq(store_cdr_tail(t_store, 1, &e, &n, &err), -ENOTCONN);
	store_sync_destroy(t_store);

	/* Not an address. */
	make_store("localhost:6379", NULL);
	ck_assert_int_eq(store_user_del(t_store, "bob", &err), -EINVAL);
	ck_assert_str_eq(err.text, "redis localhost:6379: not a valid address");
	store_sync_destroy(t_store);

	/* A refused AUTH is Redis's error, named. */
	testenv_redis_start(0, (const char *const[]){ "--requirepass", "s3cret", NULL });
	make_store(unix_address(), "wrong");
	ck_assert_int_eq(store_user_del(t_store, "bob", &err), -EPROTO);
	snprintf(want, sizeof want, "redis %s: AUTH: ", unix_address());
	ck_assert_msg(strncmp(err.text, want, strlen(want)) == 0, "%s", err.text);
	store_sync_destroy(t_store);
	make_store(unix_address(), "s3cret");
	ck_assert_int_eq(store_user_del(t_store, "bob", &err), -ENOENT);
}
END_TEST

/* A server that accepts and never answers: every wait is bounded. */
START_TEST(test_silent)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct store_error err = { "" };
	long long t0;
	char want[300];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", testenv_redis_sock());
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	ck_assert_int_eq(listen(fd, 8), 0);   /* connects complete in the backlog */
	make_store(unix_address(), "pw");
	t0 = testenv_now_ms();
	ck_assert_int_eq(store_user_passwd(t_store, "bob", "x", &err), -ETIMEDOUT);
	ck_assert(testenv_now_ms() - t0 < 2 * STORE_REDIS_TIMEOUT_MS);
	snprintf(want, sizeof want, "redis %s: no answer within 1 s", unix_address());
	ck_assert_str_eq(err.text, want);
	close(fd);
}
END_TEST

/* The management side never uses a replica, and with sentinels it says
 * what each one answered; every wait is bounded. */
START_TEST(test_replica_and_sentinels)
{
	char replicaof[16], port[16], want[300];
	const char *const extra[] = { "--bind", "127.0.0.1", "--replicaof", "127.0.0.1",
				      replicaof, NULL };
	struct store_error err = { "" };
	struct config cfg;
	long long t0;
	int dead = testenv_free_port();

	snprintf(port, sizeof port, "%d", testenv_free_port());
	snprintf(replicaof, sizeof replicaof, "%d", dead);
	testenv_redis_start(atoi(port), extra);
	make_store(unix_address(), NULL);
	ck_assert_int_eq(store_user_del(t_store, "bob", &err), -ENOTCONN);
	snprintf(want, sizeof want, "redis %s: ROLE is slave (a replica), not master: not used",
		 unix_address());
	ck_assert_str_eq(err.text, want);
	store_sync_destroy(t_store);

	/* A plain server as a sentinel (it answers an error), then nobody. */
	config_defaults(&cfg);
	snprintf(cfg.redis_prefix, sizeof cfg.redis_prefix, PREFIX);
	cfg.n_redis_sentinels = 2;
	snprintf(cfg.redis_sentinels[0], sizeof cfg.redis_sentinels[0], "127.0.0.1:%s", port);
	snprintf(cfg.redis_sentinels[1], sizeof cfg.redis_sentinels[1], "127.0.0.1:%d", dead);
	snprintf(cfg.redis_master_name, sizeof cfg.redis_master_name, "b2bua");
	ck_assert_int_eq(store_sync_create(&cfg, &t_store), 0);
	t0 = testenv_now_ms();
	ck_assert_int_eq(store_user_del(t_store, "bob", &err), -ENOTCONN);
	ck_assert(testenv_now_ms() - t0 < 2000);
	snprintf(want, sizeof want, "redis master b2bua: no usable primary (sentinel 127.0.0.1:%s: "
		 "answered an error: ERR unknown command", port);
	ck_assert_msg(strncmp(err.text, want, strlen(want)) == 0, "%s", err.text);
	snprintf(want, sizeof want, "; sentinel 127.0.0.1:%d: cannot connect: ", dead);
	ck_assert_msg(strstr(err.text, want) != NULL, "%s", err.text);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *pure = tcase_create("pure");
	TCase *tc = tcase_create("redis");

	tcase_add_test(pure, test_address_parse);
	tcase_add_test(pure, test_keys);
	tcase_add_test(pure, test_binding_decode);
	suite_add_tcase(s, pure);

	tcase_add_unchecked_fixture(tc, testenv_base_setup, testenv_base_teardown);
	tcase_add_checked_fixture(tc, testenv_setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_user_add);
	tcase_add_test(tc, test_user_passwd_enable);
	tcase_add_test(tc, test_user_forward);
	tcase_add_test(tc, test_user_del);
	tcase_add_test(tc, test_show_bindings);
	tcase_add_test(tc, test_flow_binding);
	tcase_add_test(tc, test_binding_drop);
	tcase_add_test(tc, test_user_list);
	tcase_add_test(tc, test_user_list_batches);
	tcase_add_test(tc, test_cdr_tail);
	tcase_add_test(tc, test_hosts);
	tcase_add_test(tc, test_unreachable);
	tcase_add_test(tc, test_silent);
	tcase_add_test(tc, test_replica_and_sentinels);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testenv_main("check_store", store_suite);
}
