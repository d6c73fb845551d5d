/*
 * hosts_life — the epoch of this host's life (hosts.h), apart from the rest
 * of the module so that the workers' code (and its unit tests and fuzz
 * targets) can read it without the management side's Redis client.
 *
 * Design note.  A plain variable: the master sets it once, before it forks
 * anything, and every child inherits it, so a restarted worker or
 * management process keeps its host's life.
 */
#include "b2bua/hosts.h"

static uint64_t hosts_life;

uint64_t hosts_epoch(void)
{
	return hosts_life;
}

void hosts_set_epoch(uint64_t epoch)
{
	hosts_life = epoch;
}
