/*
 * config_reload — which keys a reload (SIGHUP, `b2bua-cli reload`) applies
 * and which wait for a restart, and the configuration a reload runs.
 *
 * Design note.  One short table of restart-only keys: those that need a new
 * socket, a new shared-memory layout or that name this host in what it
 * already wrote (node_id, the ports, workers, call_capacity, cli_socket,
 * the Redis connection, the CDR spool...).  Every other key is reloadable
 * by default, so a new key reloads without anyone deciding it again: the
 * processes read struct config when they use it, and what they derive from
 * it at start (the parsed route targets, the rate-limit buckets, the
 * session-timer settings, NTA's Timer C, the nonce key) is derived again by
 * their own reload hook.
 *
 * A reload compares two loaded configurations key by key, through a table
 * of the bytes of struct config each key fills (tests/check_config.c
 * checks that every key of config_keys.c has its line).  The configuration
 * to run is the new file's with every restart-only key kept at its running
 * value, so that no process ever sees a port or a capacity it is not
 * using.
 */
#ifndef B2BUA_CONFIG_RELOAD_H
#define B2BUA_CONFIG_RELOAD_H

#include <stddef.h>

#include "b2bua/config.h"

/* Longest list of key names a reload reports. */
#define CONFIG_RELOAD_KEYS_MAX 128

/* What a reload does: the keys that changed, by what happens to them. */
struct config_reload_plan {
	size_t n_applied;                               /* changed, in force now */
	const char *applied[CONFIG_RELOAD_KEYS_MAX];
	size_t n_restart;                               /* changed, wait for a restart */
	const char *restart_needed[CONFIG_RELOAD_KEYS_MAX];
};

/* Does `key` wait for a restart?  1 or 0 (0 for any other name too). */
int config_key_restart_only(const char *key);

/*
 * The bytes of struct config that `key` fills: one field, and for a list a
 * second one (its count; *size2 0 when none).  0, or -ENOENT for a key the
 * table does not know.
 */
int config_key_field(const char *key, size_t *off, size_t *size, size_t *off2,
		     size_t *size2);

/*
 * Compare the running configuration `cur` with `next`, just loaded from the
 * file, and make `next` the one to run: restart-only keys keep their
 * running values, an auth_secret the file no longer sets keeps the running
 * one (it may be the random secret of this start).  *plan names the keys
 * that changed, applied or waiting for a restart, in the table's order.
 */
void config_reload_plan(const struct config *cur, struct config *next,
			struct config_reload_plan *plan);

/*
 * The plan as the lines `b2bua-cli reload` gets from the master:
 * "applied KEY KEY...\nrestart_needed KEY...\n" (a list may be empty).
 * 0, or -ENOSPC when `size` is too small.
 */
int config_reload_format(const struct config_reload_plan *plan, char *buf, size_t size);

#endif
