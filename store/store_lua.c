/*
 * store_lua — the scripts.  See store_lua.h; the keys are documented in
 * docs/redis-schema.md.
 *
 * Design note.  Bindings expire by themselves: each stores its absolute
 * expiry, every script that reads bindings skips (REGISTER: deletes) the
 * expired ones, and the location key's TTL follows its latest binding.
 * Calls counted for max_calls carry their start as score; those older than
 * a day (ARGV stale_before_ms) are a crashed worker's left-overs and go.
 */
#include <stdlib.h>

#include "store/store_lua.h"

/* KEYS[1] user hash, KEYS[2] failure counter of the source.  ARGV: the HA1
 * field.  Returns { failures, enabled, ha1 } (ha1 false when no such user). */
const char store_lua_auth[] =
	"local fails = tonumber(redis.call('GET', KEYS[2]) or '0') "
	"local v = redis.call('HMGET', KEYS[1], ARGV[1], 'enabled') "
	"return { fails, v[2] or '0', v[1] or false }";

/* KEYS[1] failure counter of a source.  ARGV: its lifetime in seconds,
 * set by the first failure of a window.  Returns the count. */
const char store_lua_auth_fail[] =
	"local n = redis.call('INCR', KEYS[1]) "
	"if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return n";

/* KEYS[1] location hash, KEYS[2] nonce-count replay key ('' for none).
 * ARGV: now_ms nonce_ttl call_id cseq source transport ua host worker star
 *       host_address flow flow_worker, then pairs (contact, expires_s) —
 *       expires 0 removes.  flow "" (a datagram REGISTER): the binding gets
 *       no flow and no flow_worker. 
 * Returns { "ok", contact, remaining_s, ... } or { "replay" } / { "cseq" }. */
const char store_lua_register[] =
	"if KEYS[2] ~= '' and not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then "
	"  return { 'replay' } end "
	"local now = tonumber(ARGV[1]) local cid = ARGV[3] local cseq = tonumber(ARGV[4]) "
	"local cur = {} "
	"local all = redis.call('HGETALL', KEYS[1]) "
	"for i = 1, #all, 2 do "
	"  local b = cjson.decode(all[i + 1]) "
	"  if b.expires > now then cur[all[i]] = b else redis.call('HDEL', KEYS[1], all[i]) end "
	"end "
	"local function ordered(b) return b.call_id ~= cid or cseq > b.cseq end "
	"if ARGV[10] == '1' then "
	"  for c, b in pairs(cur) do if not ordered(b) then return { 'cseq' } end end "
	"  redis.call('DEL', KEYS[1]) cur = {} "
	"else "
	"  for i = 14, #ARGV, 2 do "
	"    local c = ARGV[i] local e = tonumber(ARGV[i + 1]) "
	"    if cur[c] and not ordered(cur[c]) then return { 'cseq' } end "
	"    if e == 0 then "
	"      if cur[c] then redis.call('HDEL', KEYS[1], c) cur[c] = nil end "
	"    else "
	"      local b = { expires = now + e * 1000, cseq = cseq, call_id = cid, "
	"                  source = ARGV[5], transport = ARGV[6], user_agent = ARGV[7], "
	"                  host = ARGV[8], worker = tonumber(ARGV[9]), registered = now, "
	"                  host_address = ARGV[11] } "
	"      if ARGV[12] ~= '' then b.flow = ARGV[12] b.flow_worker = tonumber(ARGV[13]) end "
	"      redis.call('HSET', KEYS[1], c, cjson.encode(b)) cur[c] = b "
	"    end "
	"  end "
	"end "
	"local out = { 'ok' } local last = 0 "
	"for c, b in pairs(cur) do "
	"  out[#out + 1] = c out[#out + 1] = math.floor((b.expires - now) / 1000) "
	"  if b.expires > last then last = b.expires end "
	"end "
	"if last > 0 then redis.call('PEXPIREAT', KEYS[1], last) end "
	"return out";

/* KEYS[1] user hash, KEYS[2] location hash, KEYS[3] active-calls set.
 * ARGV: now_ms, call key ("" = do not count), stale_before_ms, the host
 * key prefix ("<p>host:").
 * Returns { 404 } (no such user / disabled), or { 0 | 480 | 486, fwd_always,
 * fwd_busy, fwd_noanswer, fwd_noanswer_timeout, contact, ... }: 480 when
 * not registered, 486 at max_calls, contacts newest registration first,
 * each as eight strings: contact, source, host, host_address (the three
 * "" for a binding stored before they existed), host_lost ("1" when the
 * host that took the REGISTER has let its lease run out, by Redis's clock,
 * or stopped: a hand-off to it would go nowhere; "0" otherwise, also for a
 * host with no lease record), transport ("udp" when absent), flow and
 * flow_worker ("" and "-1" for a binding without a flow); a 0 answer with a
 * call key counted the call in KEYS[3]. */
const char store_lua_lookup[] =
	"local u = redis.call('HMGET', KEYS[1], 'enabled', 'fwd_always', 'fwd_busy', "
	"  'fwd_noanswer', 'fwd_noanswer_timeout', 'max_calls') "
	"if u[1] ~= '1' then return { 404 } end "
	"local now = tonumber(ARGV[1]) local list = {} "
	"local all = redis.call('HGETALL', KEYS[2]) "
	"for i = 1, #all, 2 do "
	"  local b = cjson.decode(all[i + 1]) "
	"  if b.expires > now then list[#list + 1] = { all[i], b.registered or 0, "
	"    b.source or '', b.host or '', b.host_address or '', b.transport or 'udp', "
	"    b.flow or '', tostring(b.flow_worker or -1) } end "
	"end "
	"table.sort(list, function(x, y) return x[2] > y[2] end) "
	"local status = #list == 0 and 480 or 0 "
	"if status == 0 and ARGV[2] ~= '' and (u[2] or '') == '' then "
	"  local max = tonumber(u[6] or '0') or 0 "
	"  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[3]) "
	"  if max > 0 and redis.call('ZCARD', KEYS[3]) >= max then status = 486 else "
	"    redis.call('ZADD', KEYS[3], ARGV[1], ARGV[2]) "
	"    redis.call('PEXPIRE', KEYS[3], 86400000) end "
	"end "
	"local out = { status, u[2] or '', u[3] or '', u[4] or '', u[5] or '0' } "
	"local t = nil "
	"if status == 0 then for _, e in ipairs(list) do "
	"  local lost = '0' "
	"  if e[4] ~= '' then "
	"    local h = redis.call('HMGET', ARGV[4] .. e[4], 'beat_ms', 'lease_ms', 'epoch', "
	"      'stopped_epoch') "
	"    if h[1] and h[2] then "
	"      if not t then t = redis.call('TIME') end "
	"      local rnow = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
	"      if rnow - tonumber(h[1]) > tonumber(h[2]) or (h[4] and h[4] == h[3]) then "
	"        lost = '1' end "
	"    end "
	"  end "
	"  out[#out + 1] = e[1] out[#out + 1] = e[3] out[#out + 1] = e[4] "
	"  out[#out + 1] = e[5] out[#out + 1] = lost "
	"  out[#out + 1] = e[6] out[#out + 1] = e[7] out[#out + 1] = e[8] end end "
	"return out";

/* KEYS[1] location hash.  ARGV: contact, call_id, cseq.  Removes that
 * binding only when it is still the one that REGISTER (Call-ID and CSeq)
 * made: a refresh since then, from anywhere, keeps it.  Returns 1 when
 * removed, 0 when it changed or was gone. */
const char store_lua_binding_drop[] =
	"local v = redis.call('HGET', KEYS[1], ARGV[1]) "
	"if not v then return 0 end "
	"local b = cjson.decode(v) "
	"if b.call_id ~= ARGV[2] or b.cseq ~= tonumber(ARGV[3]) then return 0 end "
	"redis.call('HDEL', KEYS[1], ARGV[1]) "
	"return 1";

/* KEYS[1] user hash, KEYS[2] active-calls set.  ARGV: call key, now_ms,
 * stale_before_ms.  Returns 1 (counted) or 0 (at max_calls). */
const char store_lua_call_begin[] =
	"local max = tonumber(redis.call('HGET', KEYS[1], 'max_calls') or '0') or 0 "
	"redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3]) "
	"if max > 0 and redis.call('ZCARD', KEYS[2]) >= max then return 0 end "
	"redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1]) "
	"redis.call('PEXPIRE', KEYS[2], 86400000) "
	"return 1";

/*
 * KEYS[1] the CDR stream, KEYS[2] the record's seen key, KEYS[3] the calls
 * hash of the record's host (<p>calls:<node_id>).  ARGV: the seen key's
 * TTL, the CDR id (its field in KEYS[3]), then field/value pairs.  Returns
 * the entry id, or "dup" when the id was claimed before.  A failed XADD
 * (the key is no stream) frees the claim again, or a corrected retry would
 * be taken for a duplicate.  Stored or dup, the call's record goes in the
 * same script: "CDR stored" and "record gone" are one step (HDEL through
 * pcall: a calls key of the wrong type must not fail a stored CDR).
 *
 * Why a dup writes (EXPIRE).  The writer follows its scripts with WAIT,
 * and WAIT counts only this connection's writes: Redis 7 sets the
 * client's c->woff in call() only when the command changed
 * master_repl_offset (a SET NX that did not set, or an HDEL of nothing,
 * propagates nothing).  A replayed record found dup on a new connection
 * would leave woff at 0 and WAIT would answer "all replicas" at once,
 * proving nothing.  EXPIRE on the existing seen key always propagates, so
 * woff moves past the original XADD (earlier in the same replication
 * stream) and WAIT then proves that the original reached the replicas.
 */
const char store_lua_cdr_add[] =
	"if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then\n"
	"  redis.call('EXPIRE', KEYS[2], ARGV[1])\n"
	"  redis.pcall('HDEL', KEYS[3], ARGV[2])\n"
	"  return 'dup'\n"
	"end\n"
	"local id = redis.pcall('XADD', KEYS[1], '*', unpack(ARGV, 3))\n"
	"if type(id) == 'table' and id.err then\n"
	"  redis.call('DEL', KEYS[2])\n"
	"  return id\n"
	"end\n"
	"redis.pcall('HDEL', KEYS[3], ARGV[2])\n"
	"return id\n";

/*
 * KEYS[1] the user hash, KEYS[2] its location hash.
 * ARGV: ha1_md5 ha1_sha256 display max_calls created_ms.
 * 1 when added, 0 when the user exists.  A location hash left over from an
 * earlier user of the name is dropped: a new user has no registrations.
 */
const char store_lua_user_add[] =
	"if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end "
	"redis.call('DEL', KEYS[2]) "
	"redis.call('HSET', KEYS[1], 'ha1_md5', ARGV[1], 'ha1_sha256', ARGV[2], "
	"  'display', ARGV[3], 'enabled', '1', 'max_calls', ARGV[4], 'created_ms', ARGV[5]) "
	"return 1";

/* KEYS[1] the user hash; ARGV field/value pairs.  1 when set, 0 when no such
 * user (HSET alone would create a user with nothing but these fields). */
const char store_lua_user_update[] =
	"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
	"redis.call('HSET', KEYS[1], unpack(ARGV)) "
	"return 1";

/* KEYS[1] the user hash; ARGV field names to delete.  1 when done, 0 when no such user. */
const char store_lua_user_forget[] =
	"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
	"redis.call('HDEL', KEYS[1], unpack(ARGV)) "
	"return 1";

/* KEYS[1] the user hash, KEYS[2] its location hash.  1 when the user existed. */
const char store_lua_user_del[] =
	"local n = redis.call('EXISTS', KEYS[1]) "
	"redis.call('DEL', KEYS[1], KEYS[2]) "
	"return n";

/* ------------------------------------------------------------ hosts (store_hosts.c) */

/* Redis's own clock in ms, so that the hosts' clocks do not matter. */
#define STORE_LUA_NOW \
	"local t = redis.call('TIME') " \
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "

/* KEYS[1] the host set, KEYS[2] the host hash, KEYS[3] its call records.
 * ARGV: node_id, epoch, sip address, lease_ms.  A new epoch is a new life
 * of the host: the last heartbeat of the one before is kept (prev_*), and
 * prev_open says its records are still to be closed.  Returns now (ms). */
const char store_lua_host_beat[] =
	STORE_LUA_NOW
	"redis.call('SADD', KEYS[1], ARGV[1]) "
	"local h = redis.call('HMGET', KEYS[2], 'epoch', 'beat_ms') "
	"if h[1] ~= ARGV[2] then "
	"  if h[1] then "
	"    local open = redis.call('HLEN', KEYS[3]) > 0 and '1' or '0' "
	"    redis.call('HSET', KEYS[2], 'prev_epoch', h[1], 'prev_beat_ms', h[2] or '0', "
	"      'prev_open', open) "
	"  end "
	"  redis.call('HSET', KEYS[2], 'started_ms', now) "
	"end "
	"redis.call('HSET', KEYS[2], 'node', ARGV[1], 'epoch', ARGV[2], 'sip', ARGV[3], "
	"  'beat_ms', now, 'lease_ms', ARGV[4]) "
	"redis.call('HDEL', KEYS[2], 'stopped_epoch') "
	"return now";

/* KEYS[1] the host hash, KEYS[2] its call records.  ARGV: its epoch.  The
 * host stops on purpose: when none of its calls is left (the records are
 * gone with their CDRs), its lease running out is no loss, and no closer
 * claims it.  Returns 1 when noted, 0 when calls are left (closers take
 * them as those of a lost host) or another life beats. */
const char store_lua_host_stop[] =
	STORE_LUA_NOW
	"if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end "
	"if redis.call('HLEN', KEYS[2]) > 0 then return 0 end "
	"redis.call('HSET', KEYS[1], 'stopped_epoch', ARGV[1], 'stopped_ms', now) "
	"return 1";

/* KEYS[1] the host hash, KEYS[2] its claim key, KEYS[3] its call records.
 * ARGV: our node_id, the claim's TTL (ms).  There is work when the host's
 * lease ran out (by Redis's clock) and its loss was not handled yet (nor
 * was it a stop with no call left) or records are left, or when a new life of it left the old one's records
 * (prev_open).  Claimed with SET NX: exactly one host gets it.  Returns
 * { 0 } (no work, or claimed by another), or { 1, dead (0/1), epoch,
 * beat_ms, prev_epoch, prev_beat_ms, now }. */
const char store_lua_host_claim[] =
	STORE_LUA_NOW
	"local h = redis.call('HMGET', KEYS[1], 'beat_ms', 'lease_ms', 'epoch', "
	"  'closed_epoch', 'prev_epoch', 'prev_beat_ms', 'prev_open', 'stopped_epoch') "
	"if not h[1] or not h[2] or not h[3] then return { 0 } end "
	"local dead = tonumber(h[1]) + tonumber(h[2]) < now "
	"local work "
	"if dead then work = (h[4] ~= h[3] and h[8] ~= h[3]) or redis.call('HLEN', KEYS[3]) > 0 "
	"else work = h[7] == '1' end "
	"if not work then return { 0 } end "
	"if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return { 0 } end "
	"return { 1, dead and 1 or 0, h[3], h[1], h[5] or '0', h[6] or '0', now }";

/* KEYS[1] the host hash, KEYS[2] its claim key.  ARGV: our node_id, the
 * epoch we closed, dead (0/1), calls closed.  A lost host's loss is noted
 * (closed_*: shown by `show hosts`); a new life's leftovers are done
 * (prev_open 0).  Our claim goes.  Returns now (ms). */
const char store_lua_host_closed[] =
	STORE_LUA_NOW
	"if ARGV[3] == '1' then "
	"  local e = redis.call('HGET', KEYS[1], 'epoch') "
	"  if e == ARGV[2] then "
	"    local n = tonumber(redis.call('HGET', KEYS[1], 'closed_epoch') == e and "
	"      redis.call('HGET', KEYS[1], 'closed_calls') or '0') or 0 "
	"    redis.call('HSET', KEYS[1], 'closed_by', ARGV[1], 'closed_ms', now, "
	"      'closed_epoch', e, 'closed_calls', n + tonumber(ARGV[4])) "
	"  end "
	"else "
	"  redis.call('HSET', KEYS[1], 'prev_open', '0', 'prev_closed_by', ARGV[1], "
	"    'prev_closed_ms', now, 'prev_closed_calls', ARGV[4]) "
	"end "
	"if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end "
	"return now";

/* KEYS[1] a host's call records, KEYS[2] where malformed ones are kept.
 * ARGV: the field.  Moves it; returns 1, or 0 when it was gone. */
const char store_lua_host_aside[] =
	"local v = redis.call('HGET', KEYS[1], ARGV[1]) "
	"if not v then return 0 end "
	"redis.call('HSET', KEYS[2], ARGV[1], v) "
	"redis.call('HDEL', KEYS[1], ARGV[1]) "
	"return 1";

/* ------------------------------------------------------------ the CDR script's arguments */

/* A CDR is claimed for 7 days (docs/redis-schema.md, "Stored once"). */
#define STORE_LUA_CDR_SEEN_TTL "604800"

const char **store_lua_cdr_argv(const char *stream, const char *seen, const char *calls,
				const char *id, int n, const char *const *fields,
				const char *const *values, int *argc)
{
	const char **argv = calloc(8 + 2 * (size_t)n, sizeof *argv);

	if (argv == NULL)
		return NULL;
	argv[0] = "EVAL";
	argv[1] = store_lua_cdr_add;
	argv[2] = "3";
	argv[3] = stream;
	argv[4] = seen;
	argv[5] = calls;
	argv[6] = STORE_LUA_CDR_SEEN_TTL;
	argv[7] = id;
	for (int i = 0; i < n; i++) {
		argv[8 + 2 * i] = fields[i];
		argv[9 + 2 * i] = values[i];
	}
	*argc = 8 + 2 * n;
	return argv;
}
