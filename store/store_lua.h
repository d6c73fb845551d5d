/*
 * store_lua — every Lua script b2bua runs in Redis (private to store/).
 *
 * Design note.  What must be atomic across workers, hosts and concurrent
 * CLIs is one script, run with EVAL (Redis caches a script by its digest,
 * so sending the text costs bandwidth only).  Each script's comment in
 * store_lua.c lists its KEYS, ARGV and answer; the binding JSON is written
 * (cjson.encode) and read (cjson.decode) by these scripts on the worker
 * side, and read by store_binding_decode() on the management side.
 */
#ifndef B2BUA_STORE_LUA_H
#define B2BUA_STORE_LUA_H

/* Worker side (store_async.c). */
extern const char store_lua_auth[];
extern const char store_lua_auth_fail[];
extern const char store_lua_register[];
extern const char store_lua_lookup[];
extern const char store_lua_binding_drop[];
extern const char store_lua_call_begin[];
extern const char store_lua_cdr_add[];

/*
 * The EVAL of store_lua_cdr_add for one CDR: its keys (the stream, the
 * CDR's seen key, the calls hash of its host), its id and n field/value
 * pairs, in the order the script reads them.  Both sides write CDRs with
 * it (a worker's, and a closer's for a lost host).  Returns the argv,
 * allocated (free() it; the strings are the caller's), and *argc; NULL
 * when out of memory.
 */
const char **store_lua_cdr_argv(const char *stream, const char *seen, const char *calls,
				const char *id, int n, const char *const *fields,
				const char *const *values, int *argc);

/* Management side (store_sync.c). */
extern const char store_lua_user_add[];
extern const char store_lua_user_update[];
extern const char store_lua_user_forget[];
extern const char store_lua_user_del[];

/* Host liveness (store_hosts.c). */
extern const char store_lua_host_beat[];
extern const char store_lua_host_claim[];
extern const char store_lua_host_closed[];
extern const char store_lua_host_aside[];
extern const char store_lua_host_stop[];

#endif
