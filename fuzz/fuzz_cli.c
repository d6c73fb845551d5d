/*
 * fuzz_cli — the CLI server's request parser (cli_dispatch_parse(),
 * cli/cli_dispatch.c, with the command table of cli/cli_cmd.c): the
 * management process reads one line from any local client it allows and
 * splits, %-decodes and checks it before a handler runs.  Whatever the
 * line, parsing must stay inside it, and a command it accepts must have
 * every option it requires and a value for each option given.  The
 * display helpers that show untrusted strings (cli_clean(),
 * cli_json_str()) get the same bytes.
 */
#include "cli/cli_int.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char line[CLI_REQUEST_MAX + 1];
	char shown[64];
	struct cli_cmd_args req;
	struct cli_reply reply;
	const struct cli_cmd *cmd;
	json_t *j;

	/* What cli_read_request() hands over: at most CLI_REQUEST_MAX - 1 bytes, NUL-terminated. */
	if (size > CLI_REQUEST_MAX - 1)
		size = CLI_REQUEST_MAX - 1;
	memcpy(line, data, size);
	line[size] = '\0';

	cli_clean(shown, sizeof shown, line, size);
	if (strnlen(shown, sizeof shown) == sizeof shown)
		abort();
	j = cli_json_str(line, 1);
	json_decref(j);

	cmd = cli_dispatch_parse(line, &req, &reply);
	if (cmd == NULL) {
		if (reply.status == CLI_STATUS_OK || strnlen(reply.text, sizeof reply.text) ==
		    sizeof reply.text)
			abort();
		return 0;
	}
	if (reply.status != CLI_STATUS_OK)
		abort();
	/* What the parser promised the handler: a second check agrees. */
	if (cli_cmd_check(cmd, &req, 0, reply.text, sizeof reply.text) != CLI_STATUS_OK)
		abort();
	return 0;
}
