/*
 * main — command line, configuration, and hand-over to the master.
 *
 *   b2bua [-c FILE] [-t] [-h] [-V]
 *
 * The daemon runs in the foreground and logs to stderr (systemd, runit and
 * the quick-start script all expect that).  -t validates the configuration
 * and exits: 0 when it is good, 1 with "file:line: key: why" when not.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <unistd.h>

#include "autoconf.h"
#include "b2bua/config.h"
#include "b2bua/log.h"
#include "b2bua/master.h"

/*
 * Without auth_secret in the config, nonces are keyed with a random secret
 * made here, before fork, so that every worker of this host shares it.  A
 * nonce from one host then fails on another: multi-host setups set it.
 */
static int main_random_secret(struct config *cfg)
{
	unsigned char raw[24];

	if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
		return -1;
	for (size_t i = 0; i < sizeof raw; i++)
		snprintf(cfg->auth_secret + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

static void main_usage(FILE *out)
{
	fprintf(out,
		"usage: b2bua [-c FILE] [-t] [-h] [-V]\n"
		"  -c FILE  configuration file (default %s/b2bua/b2bua.conf)\n"
		"  -t       check the configuration and exit\n"
		"  -h       this help\n"
		"  -V       print the version\n", SYSCONFDIR);
}

int main(int argc, char **argv)
{
	static struct config cfg;
	const char *path = SYSCONFDIR "/b2bua/b2bua.conf";
	char err[512];
	int test_only = 0;
	int opt;

	while ((opt = getopt(argc, argv, "c:thV")) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 't': test_only = 1; break;
		case 'h': main_usage(stdout); return 0;
		case 'V': printf("%s\n", PACKAGE_STRING); return 0;
		default: main_usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		main_usage(stderr);
		return 2;
	}
	if (config_load(path, &cfg, err, sizeof err) < 0) {
		fprintf(stderr, "b2bua: %s\n", err);
		return 1;
	}
	if (test_only) {
		printf("b2bua: configuration %s is valid (%d workers, %zu routes)\n", path,
		       cfg.workers, cfg.n_routes);
		return 0;
	}
	log_set_level(cfg.log_level);
	if (cfg.domain[0] && cfg.auth_secret[0] == '\0') {
		if (main_random_secret(&cfg) < 0) {
			fprintf(stderr, "b2bua: cannot make a random auth_secret: %m\n");
			return 1;
		}
		log_warn("auth_secret is not set: using a random one, so nonces are valid on "
			 "this host only (set auth_secret in %s for several hosts)", path);
	}
	return master_run(&cfg);
}
