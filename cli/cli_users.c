/*
 * cli_users — the `user` commands that change a subscriber: add, passwd,
 * del, enable, disable, forward (show and list: cli_users_view.c).
 *
 * Design note.  Subscribers live in Redis (keys in docs/redis-schema.md),
 * reached through the CLI's synchronous connection (cli_redis.c).  Each
 * change is one Lua script, so that "only if the user exists" (or "only if
 * it does not") holds against concurrent CLIs, and a user never exists
 * half-written.  The password is turned into the two HA1 values at once and
 * is neither stored nor logged; the request line that carried it is wiped
 * after use (cli_server.c).  Operands and option values have been checked
 * (cli_cmd_check) before a handler runs.
 */
#include "cli/cli_redis.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "b2bua/digest.h"

/* ------------------------------------------------------------ Lua */

/*
 * KEYS[1] the user hash, KEYS[2] its location hash.
 * ARGV: ha1_md5 ha1_sha256 display max_calls created_ms.
 * 1 when added, 0 when the user exists.  A location hash left over from an
 * earlier user of the name is dropped: a new user has no registrations.
 */
static const char cli_lua_add[] =
	"if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end "
	"redis.call('DEL', KEYS[2]) "
	"redis.call('HSET', KEYS[1], 'ha1_md5', ARGV[1], 'ha1_sha256', ARGV[2], "
	"  'display', ARGV[3], 'enabled', '1', 'max_calls', ARGV[4], 'created_ms', ARGV[5]) "
	"return 1";

/* KEYS[1] the user hash; ARGV field/value pairs.  1 when set, 0 when no such
 * user (HSET alone would create a user with nothing but these fields). */
static const char cli_lua_update[] =
	"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
	"redis.call('HSET', KEYS[1], unpack(ARGV)) "
	"return 1";

/* KEYS[1] the user hash; ARGV field names to delete.  1 when done, 0 when no such user. */
static const char cli_lua_forget[] =
	"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
	"redis.call('HDEL', KEYS[1], unpack(ARGV)) "
	"return 1";

/* Most ARGV of cli_lua_update / cli_lua_forget: the four fwd_* fields and values. */
#define CLI_UPDATE_ARGS_MAX 8

/* KEYS[1] the user hash, KEYS[2] its location hash.  1 when the user existed. */
static const char cli_lua_del[] =
	"local n = redis.call('EXISTS', KEYS[1]) "
	"redis.call('DEL', KEYS[1], KEYS[2]) "
	"return n";

/* ------------------------------------------------------------ user: values */

/* --max-calls N, normalised ("007" is 7; "0" when absent). */
static void cli_user_max_calls(const struct cli_cmd_args *req, char *max_calls, size_t size)
{
	const char *m = cli_cmd_value(req, CLI_OPT_MAX_CALLS);

	snprintf(max_calls, size, "%llu", m ? strtoull(m, NULL, 10) : 0ULL);
}

/* Both HA1s of name:realm:password; the password goes no further than this. */
static int cli_user_ha1(const cli_server_t *srv, const char *name, const char *password,
			char md5[DIGEST_HA1_SIZE], char sha256[DIGEST_HA1_SIZE])
{
	int err = digest_ha1(DIGEST_MD5, name, srv->realm, password, md5);

	if (err == 0)
		err = digest_ha1(DIGEST_SHA256, name, srv->realm, password, sha256);
	return err;
}

/* ------------------------------------------------------------ user: changes */

int cli_user_add(cli_server_t *srv, const struct cli_cmd_args *req, struct cli_buf *out,
		 struct cli_reply *reply)
{
	char md5[DIGEST_HA1_SIZE], sha256[DIGEST_HA1_SIZE], max_calls[16], created[24];
	char ukey[CLI_KEY_MAX], lkey[CLI_KEY_MAX];
	const char *display = cli_cmd_value(req, CLI_OPT_DISPLAY);
	const char *name = req->words[2];
	long long added = 0;
	int err;

	cli_user_max_calls(req, max_calls, sizeof max_calls);
	if ((err = cli_user_ha1(srv, name, cli_cmd_value(req, CLI_OPT_PASSWORD), md5, sha256)) < 0)
		return err;
	cli_user_key(srv, "user", name, ukey, sizeof ukey);
	cli_user_key(srv, "loc", name, lkey, sizeof lkey);
	snprintf(created, sizeof created, "%" PRIu64, cli_now_ms(CLOCK_REALTIME));

	const char *argv[] = { "EVAL", cli_lua_add, "2", ukey, lkey, md5, sha256,
			       display ? display : "", max_calls, created };
	err = cli_redis_eval(srv, reply, 10, argv, &added);
	if (err < 0)
		return err;
	if (!added)
		return cli_fail(reply, CLI_STATUS_ERROR, "user %s exists", name);
	log_info("cli: user %s added", name);
	cli_buf_printf(out, "user %s added\n", name);
	return out->err;
}

/*
 * Run `script` (cli_lua_update or cli_lua_forget) on an existing user with
 * `n_args` ARGV (field/value pairs, or field names): what passwd, enable,
 * disable and forward share.
 */
static int cli_user_update(cli_server_t *srv, const char *name, const char *script,
			   int n_args, const char **args, struct cli_reply *reply)
{
	char ukey[CLI_KEY_MAX];
	const char *argv[4 + CLI_UPDATE_ARGS_MAX] = { "EVAL", script, "1", ukey };
	long long done = 0;
	int err;

	if (n_args > CLI_UPDATE_ARGS_MAX)
		return -E2BIG;
	cli_user_key(srv, "user", name, ukey, sizeof ukey);
	for (int i = 0; i < n_args; i++)
		argv[4 + i] = args[i];
	err = cli_redis_eval(srv, reply, 4 + n_args, argv, &done);
	if (err == 0 && !done)
		err = cli_fail(reply, CLI_STATUS_ERROR, "no such user %s", name);
	return err;
}

int cli_user_passwd(cli_server_t *srv, const struct cli_cmd_args *req,
		    struct cli_buf *out, struct cli_reply *reply)
{
	char md5[DIGEST_HA1_SIZE], sha256[DIGEST_HA1_SIZE];
	const char *name = req->words[2];
	int err;

	if ((err = cli_user_ha1(srv, name, cli_cmd_value(req, CLI_OPT_PASSWORD), md5, sha256)) < 0)
		return err;

	const char *fields[] = { "ha1_md5", md5, "ha1_sha256", sha256 };
	err = cli_user_update(srv, name, cli_lua_update, 4, fields, reply);
	if (err < 0)
		return err;
	log_info("cli: user %s: password changed", name);
	cli_buf_printf(out, "user %s password changed\n", name);
	return out->err;
}

static int cli_user_set_enabled(cli_server_t *srv, const struct cli_cmd_args *req,
				struct cli_buf *out, struct cli_reply *reply, int enabled)
{
	const char *fields[] = { "enabled", enabled ? "1" : "0" };
	const char *name = req->words[2];
	int err;

	if ((err = cli_user_update(srv, name, cli_lua_update, 2, fields, reply)) < 0)
		return err;
	log_info("cli: user %s %s", name, enabled ? "enabled" : "disabled");
	cli_buf_printf(out, "user %s %s\n", name, enabled ? "enabled" : "disabled");
	return out->err;
}

int cli_user_enable(cli_server_t *srv, const struct cli_cmd_args *req,
		    struct cli_buf *out, struct cli_reply *reply)
{
	return cli_user_set_enabled(srv, req, out, reply, 1);
}

int cli_user_disable(cli_server_t *srv, const struct cli_cmd_args *req,
		     struct cli_buf *out, struct cli_reply *reply)
{
	return cli_user_set_enabled(srv, req, out, reply, 0);
}

/* The forwarding options and the user hash fields they set, in this order. */
static const struct {
	unsigned flag;
	const char *field;
} cli_forward_fields[] = {
	{ CLI_OPT_ALWAYS,    "fwd_always" },
	{ CLI_OPT_BUSY,      "fwd_busy" },
	{ CLI_OPT_NO_ANSWER, "fwd_noanswer" },
	{ CLI_OPT_TIMEOUT,   "fwd_noanswer_timeout" },
};
#define CLI_N_FORWARD_FIELDS (sizeof cli_forward_fields / sizeof cli_forward_fields[0])

/* `user forward NAME --clear`: all four fields go, in one script. */
static int cli_user_forward_clear(cli_server_t *srv, const char *name, struct cli_buf *out,
				  struct cli_reply *reply)
{
	const char *fields[CLI_N_FORWARD_FIELDS];
	int err;

	for (size_t i = 0; i < CLI_N_FORWARD_FIELDS; i++)
		fields[i] = cli_forward_fields[i].field;
	err = cli_user_update(srv, name, cli_lua_forget, (int)CLI_N_FORWARD_FIELDS, fields,
			      reply);
	if (err < 0)
		return err;
	log_info("cli: user %s: call forwarding cleared", name);
	cli_buf_printf(out, "user %s forwarding cleared\n", name);
	return out->err;
}

/*
 * `user forward NAME [--always T] [--busy T] [--no-answer T] [--timeout S]`:
 * the given fields are set, the others kept.  Everything was checked before
 * Redis is asked (cli_cmd_check), so a bad value changes nothing.
 */
int cli_user_forward(cli_server_t *srv, const struct cli_cmd_args *req,
		     struct cli_buf *out, struct cli_reply *reply)
{
	const char *args[2 * CLI_N_FORWARD_FIELDS];
	unsigned given = req->opts & CLI_OPT_FORWARD;
	const char *name = req->words[2];
	int n = 0, err;

	/* cli_cmd_check saw to it: --clear alone, or some valid forwarding. */
	if (req->opts & CLI_OPT_CLEAR)
		return cli_user_forward_clear(srv, name, out, reply);
	for (size_t i = 0; i < CLI_N_FORWARD_FIELDS; i++) {
		if (!(given & cli_forward_fields[i].flag))
			continue;
		args[n++] = cli_forward_fields[i].field;
		args[n++] = cli_cmd_value(req, cli_forward_fields[i].flag);
	}
	err = cli_user_update(srv, name, cli_lua_update, n, args, reply);
	if (err < 0)
		return err;
	log_info("cli: user %s: call forwarding changed", name);
	cli_buf_printf(out, "user %s forwarding set\n", name);
	return out->err;
}

int cli_user_del(cli_server_t *srv, const struct cli_cmd_args *req, struct cli_buf *out,
		 struct cli_reply *reply)
{
	char ukey[CLI_KEY_MAX], lkey[CLI_KEY_MAX];
	const char *name = req->words[2];
	long long existed = 0;
	int err;

	cli_user_key(srv, "user", name, ukey, sizeof ukey);
	cli_user_key(srv, "loc", name, lkey, sizeof lkey);

	const char *argv[] = { "EVAL", cli_lua_del, "2", ukey, lkey };
	err = cli_redis_eval(srv, reply, 5, argv, &existed);
	if (err < 0)
		return err;
	if (!existed)
		return cli_fail(reply, CLI_STATUS_ERROR, "no such user %s", name);
	log_info("cli: user %s deleted", name);
	cli_buf_printf(out, "user %s deleted\n", name);
	return out->err;
}
