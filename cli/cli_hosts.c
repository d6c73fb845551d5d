/*
 * cli_hosts — `show hosts`: every b2bua host sharing this Redis, whether
 * its lease is alive, its answered calls, and who closed a lost host's calls.
 *
 * Design note.  The hosts' leases and records are b2bua/hosts.h's business
 * and store_hosts_list() reads them in one round trip, with Redis's clock
 * (the same clock that decides whether a host is lost); this file only
 * presents them, in cli_hosts_answer(), which is pure so that check_cli
 * can test the formatting on its own.  Alive means what the closers
 * believe: the last heartbeat plus the lease is not past; a host whose
 * lease ran out after a stop with no call left is "stopped".  For a lost host
 * the CLOSED columns say who wrote its calls' CDRs and when ("-" while
 * nobody has yet); for a live host, who closed what its previous life left.
 */
#include "cli/cli_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Its lease is not past (by the clock of `now_ms`, Redis's). */
static int cli_host_alive(const struct store_host *h, uint64_t now_ms)
{
	return h->beat_ms + h->lease_ms >= now_ms;
}

/* "alive", "stopped" (its lease ran out after a stop with no call left)
 * or "lost". */
static const char *cli_host_state(const struct store_host *h, uint64_t now_ms)
{
	if (cli_host_alive(h, now_ms))
		return "alive";
	return h->stopped_epoch == h->epoch && h->epoch != 0 ? "stopped" : "lost";
}

static uint64_t cli_host_age_ms(const struct store_host *h, uint64_t now_ms)
{
	return now_ms > h->beat_ms ? now_ms - h->beat_ms : 0;
}

/* The closing a row shows: the lost life's, or the previous life's; NULL for none. */
static const char *cli_host_closed(const struct store_host *h, uint64_t now_ms,
				   uint64_t *at_ms, uint64_t *calls)
{
	if (!cli_host_alive(h, now_ms)) {
		if (h->closed_by[0] == '\0' || h->closed_epoch != h->epoch)
			return NULL;
		*at_ms = h->closed_ms;
		*calls = h->closed_calls;
		return h->closed_by;
	}
	if (h->prev_closed_by[0] == '\0')
		return NULL;
	*at_ms = h->prev_closed_ms;
	*calls = h->prev_closed_calls;
	return h->prev_closed_by;
}

static void cli_host_line(const struct store_host *h, uint64_t now_ms, struct cli_buf *out)
{
	char node[sizeof h->node], sip[sizeof h->sip], by[sizeof h->closed_by];
	char started[40], at[40], ncalls[24] = "-";
	uint64_t age = cli_host_age_ms(h, now_ms), at_ms = 0, closed_calls = 0;
	const char *closed = cli_host_closed(h, now_ms, &at_ms, &closed_calls);

	cli_clean(node, sizeof node, h->node, sizeof h->node);
	cli_clean(sip, sizeof sip, h->sip, sizeof h->sip);
	cli_clean(by, sizeof by, closed ? closed : "", sizeof by);
	cli_iso_ms(h->started_ms, started, sizeof started);
	cli_iso_ms(closed ? at_ms : 0, at, sizeof at);
	if (closed)
		snprintf(ncalls, sizeof ncalls, "%llu", (unsigned long long)closed_calls);
	cli_buf_printf(out, "%-16s %-24s %-7s %9llu.%01llu %6llu %-24s %-16s %-24s %s\n", node,
		       cli_dash(sip), cli_host_state(h, now_ms),
		       (unsigned long long)(age / 1000), (unsigned long long)(age % 1000 / 100),
		       (unsigned long long)h->calls, started, cli_dash(by), at, ncalls);
}

/* A closing as JSON: { "by", "at", "calls" }, or null. */
static json_t *cli_host_closed_json(const char *by, uint64_t at_ms, uint64_t calls)
{
	char at[40];
	json_t *o;

	if (by == NULL || by[0] == '\0')
		return json_null();
	cli_iso_ms(at_ms, at, sizeof at);
	o = json_object();
	if (o && (json_object_set_new(o, "by", cli_json_str(by, 0)) < 0
		  || json_object_set_new(o, "at", cli_json_str(at, 0)) < 0
		  || json_object_set_new(o, "at_ms", cli_json_u64(at_ms)) < 0
		  || json_object_set_new(o, "calls", cli_json_u64(calls)) < 0)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *cli_host_json(const struct store_host *h, uint64_t now_ms)
{
	char started[40], beat[40];
	int alive = cli_host_alive(h, now_ms);
	json_t *o = json_object();

	cli_iso_ms(h->started_ms, started, sizeof started);
	cli_iso_ms(h->beat_ms, beat, sizeof beat);
	if (o && (json_object_set_new(o, "node_id", cli_json_str(h->node, 0)) < 0
		  || json_object_set_new(o, "sip", cli_json_str(h->sip, 1)) < 0
		  || json_object_set_new(o, "alive", json_boolean(alive)) < 0
		  || json_object_set_new(o, "state", cli_json_str(cli_host_state(h, now_ms), 0)) < 0
		  || json_object_set_new(o, "lease_age_ms",
					 cli_json_u64(cli_host_age_ms(h, now_ms))) < 0
		  || json_object_set_new(o, "lease_ms", cli_json_u64(h->lease_ms)) < 0
		  || json_object_set_new(o, "last_heartbeat", cli_json_str(beat, 0)) < 0
		  || json_object_set_new(o, "last_heartbeat_ms", cli_json_u64(h->beat_ms)) < 0
		  || json_object_set_new(o, "started", cli_json_str(started, 0)) < 0
		  || json_object_set_new(o, "epoch", cli_json_u64(h->epoch)) < 0
		  || json_object_set_new(o, "calls", cli_json_u64(h->calls)) < 0
		  || json_object_set_new(o, "bad_records", cli_json_u64(h->bad)) < 0
		  || json_object_set_new(o, "closed", !alive && h->closed_epoch == h->epoch
					 ? cli_host_closed_json(h->closed_by, h->closed_ms,
								h->closed_calls)
					 : json_null()) < 0
		  || json_object_set_new(o, "previous_life_closed",
					 cli_host_closed_json(h->prev_closed_by,
							      h->prev_closed_ms,
							      h->prev_closed_calls)) < 0)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int cli_hosts_answer(const struct store_host *h, size_t n, uint64_t now_ms, int json,
		     struct cli_buf *out)
{
	json_t *arr = json ? json_array() : NULL;
	size_t alive = 0, stopped = 0;

	if (json && !arr)
		return -ENOMEM;
	if (!json)
		cli_buf_printf(out, "%-16s %-24s %-7s %11s %6s %-24s %-16s %-24s %s\n", "NODE",
			       "SIP", "STATE", "LEASE_AGE_S", "CALLS", "STARTED", "CLOSED_BY",
			       "CLOSED_AT", "CLOSED_CALLS");
	for (size_t i = 0; i < n; i++) {
		alive += cli_host_alive(&h[i], now_ms);
		stopped += strcmp(cli_host_state(&h[i], now_ms), "stopped") == 0;
		if (json && json_array_append_new(arr, cli_host_json(&h[i], now_ms)) < 0)
			out->err = -ENOMEM;
		else if (!json)
			cli_host_line(&h[i], now_ms, out);
	}
	if (json) {
		cli_buf_add_json(out, arr);
		cli_buf_add(out, "\n", 1);
		json_decref(arr);
	} else {
		cli_buf_printf(out, "%zu host%s (%zu alive, %zu lost, %zu stopped)\n", n,
			       n == 1 ? "" : "s", alive, n - alive - stopped, stopped);
	}
	return out->err;
}

/* `show hosts`: the store lists them with Redis's time. */
int cli_show_hosts(cli_server_t *srv, const struct cli_cmd_args *req, struct cli_buf *out,
		   struct cli_reply *reply)
{
	struct store_host *hosts = NULL;
	struct store_error err;
	uint64_t now_ms = 0;
	size_t n = 0;
	int ret;

	if (store_hosts_list(srv->store, &hosts, &n, &now_ms, &err) < 0)
		return cli_fail(reply, CLI_STATUS_ERROR, "%s", err.text);
	ret = cli_hosts_answer(hosts, n, now_ms, req->json, out);
	free(hosts);
	return ret;
}
