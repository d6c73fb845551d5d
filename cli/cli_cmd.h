/*
 * cli_cmd — the one table of CLI commands and options, shared by b2bua-cli
 * and the server.
 *
 * Design note.  What a command is called, what follows its words (an
 * operand), which options it accepts and requires, and how a request is
 * checked are written here once, so that the client and the daemon cannot
 * disagree about them (they once kept two tables with different option
 * bits).  Both sides feed the words of a request to cli_cmd_add_word(),
 * find the command with cli_cmd_find() and check it with cli_cmd_check();
 * a failure comes back as a CLI_STATUS_USAGE and a one-line reason that
 * both print the same way.  The client then sends the request; the server
 * runs the handler it keeps for the command's enum value
 * (cli/cli_dispatch.c).
 *
 * Plain libc on purpose: b2bua-cli links this file and must not need
 * jansson, nor the hiredis that the server reaches Redis with (store/).
 */
#ifndef B2BUA_CLI_CMD_H
#define B2BUA_CLI_CMD_H

#include <stddef.h>

#include "cli/cli_proto.h"

/* Every command, in the order `help` lists them. */
enum cli_cmd_id {
	CLI_CMD_SHOW_WORKERS = 0,
	CLI_CMD_SHOW_CALLS,
	CLI_CMD_SHOW_CALL,
	CLI_CMD_SHOW_STATS,
	CLI_CMD_SHOW_HOSTS,
	CLI_CMD_CALL_KILL,
	CLI_CMD_CDR_TAIL,
	CLI_CMD_USER_ADD,
	CLI_CMD_USER_PASSWD,
	CLI_CMD_USER_SET,
	CLI_CMD_USER_DEL,
	CLI_CMD_USER_ENABLE,
	CLI_CMD_USER_DISABLE,
	CLI_CMD_USER_FORWARD,
	CLI_CMD_USER_SHOW,
	CLI_CMD_USER_LIST,
	CLI_CMD_RELOAD,
	CLI_CMD_HELP,
	CLI_CMD__COUNT
};

/* Options besides -s and --json, one bit each, in the order they go into a request. */
enum {
	CLI_OPT_PASSWORD       = 1 << 0,    /* --password PW */
	CLI_OPT_PASSWORD_STDIN = 1 << 1,    /* --password-stdin (the client's; never sent) */
	CLI_OPT_DISPLAY        = 1 << 2,    /* --display TEXT */
	CLI_OPT_MAX_CALLS      = 1 << 3,    /* --max-calls N */
	CLI_OPT_ALWAYS         = 1 << 4,    /* --always TARGET */
	CLI_OPT_BUSY           = 1 << 5,    /* --busy TARGET */
	CLI_OPT_NO_ANSWER      = 1 << 6,    /* --no-answer TARGET */
	CLI_OPT_TIMEOUT        = 1 << 7,    /* --timeout SECONDS */
	CLI_OPT_CLEAR          = 1 << 8,    /* --clear */
	CLI_OPT_LONG           = 1 << 9,    /* --long */
};
#define CLI_N_OPTIONS 10
#define CLI_OPT_ANY_PASSWORD (CLI_OPT_PASSWORD | CLI_OPT_PASSWORD_STDIN)
#define CLI_OPT_FORWARD (CLI_OPT_ALWAYS | CLI_OPT_BUSY | CLI_OPT_NO_ANSWER | CLI_OPT_TIMEOUT)

struct cli_option {
	const char *name;
	unsigned flag;
	int takes_value;                /* the next word, whatever it is; else stands alone */
	int on_wire;                    /* goes to the daemon as itself (not --password-stdin) */
};

/* The options, indexed like cli_cmd_args.values. */
extern const struct cli_option cli_options[CLI_N_OPTIONS];

/* What follows the command words. */
enum cli_operand {
	CLI_OPERAND_NONE = 0,
	CLI_OPERAND_USER,               /* NAME */
	CLI_OPERAND_CALL,               /* ID */
	CLI_OPERAND_COUNT,              /* [N]: optional */
};

struct cli_cmd {
	enum cli_cmd_id id;
	const char *words[2];           /* words[1] NULL for a one-word command */
	enum cli_operand operand;       /* in words[2] */
	unsigned opts;                  /* CLI_OPT_* it accepts; --json goes with all */
	unsigned required;              /* CLI_OPT_* it cannot do without */
	unsigned one_of;                /* at least one of these, when not 0 */
	const char *usage;              /* its lines of `help`; NULL: told with the one before */
};

/* The commands, indexed by enum cli_cmd_id. */
extern const struct cli_cmd cli_cmds[CLI_CMD__COUNT];

/* A request as both sides see it after parsing: words, --json and options. */
struct cli_cmd_args {
	const char *words[CLI_MAX_WORDS];
	int n_words;
	int json;
	unsigned opts;                  /* CLI_OPT_* given */
	const char *values[CLI_N_OPTIONS]; /* by cli_options index; NULL when not given */
	int pending;                    /* 1 + index of the option waiting for its value */
};

/* Longest reason cli_cmd_* write, terminating NUL included. */
#define CLI_CMD_WHY_MAX 400

/*
 * Take the next word of a request (not copied: it must outlive `args`):
 * the value of the option before it, --json, an option, or a command word.
 * `wire` is 1 on the server, where options the client keeps to itself are
 * unknown.  Returns CLI_STATUS_OK, or CLI_STATUS_USAGE with the reason in `why`.
 */
int cli_cmd_add_word(struct cli_cmd_args *args, const char *word, int wire, char *why,
		     size_t size);

/* All words are in: CLI_STATUS_OK, or CLI_STATUS_USAGE (no value, no words). */
int cli_cmd_end_words(const struct cli_cmd_args *args, char *why, size_t size);

/*
 * The command the words name, with the right number of operands and only
 * options it accepts; NULL with the reason in `why` otherwise.
 */
const struct cli_cmd *cli_cmd_find(const struct cli_cmd_args *args, char *why, size_t size);

/*
 * The operand and the option values of `cmd`, and the options it requires.
 * `supplied` are options the caller will add itself (the client makes up or
 * reads a password), so their absence is no error.
 */
int cli_cmd_check(const struct cli_cmd *cmd, const struct cli_cmd_args *args,
		  unsigned supplied, char *why, size_t size);

/* The value of option `flag` in args, NULL when not given. */
const char *cli_cmd_value(const struct cli_cmd_args *args, unsigned flag);

/* The index of option `flag` in cli_options. */
size_t cli_cmd_option_index(unsigned flag);

/* The text of `help` (and of every usage error): built from the table once. */
const char *cli_cmd_usage(void);

#endif
