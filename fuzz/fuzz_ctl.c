/*
 * fuzz_ctl — the control protocol between b2bua's processes (b2bua/ctl.h):
 * any datagram a child could send reaches ctl_decode() in the master or
 * another child.  Whatever the bytes, decoding must not read past them,
 * and a message it accepts must be safe to use: its type known, its
 * strings terminated inside their arrays, its log level handled.
 *
 * Design note.  A message ctl_decode() accepts also goes through what its
 * receivers do first with it: the type's name and request flag, and the
 * log-level handler, which answers on a socketpair made once (the answer
 * is read back, so the pair never fills).
 */
#include "b2bua/ctl.h"
#include "b2bua/log.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fuzz_pair[2] = { -1, -1 };

/* A field that must hold a C string: it ends inside its array. */
static void fuzz_terminated(const char *s, size_t size)
{
	if (strnlen(s, size) == size)
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc; (void)argv;
	log_set_level(LOG_ERROR);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, fuzz_pair) < 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_msg msg;
	char buf[CTL_MSG_MAX];

	if (ctl_decode(data, size, &msg) != 0)
		return 0;
	if (ctl_payload_size(msg.hdr.type) < 0 || ctl_type_name(msg.hdr.type) == NULL)
		abort();
	(void)ctl_is_request(msg.hdr.type);
	switch (msg.hdr.type) {
	case CTL_REPLY:
		fuzz_terminated(msg.u.reply.text, sizeof msg.u.reply.text);
		break;
	case CTL_KILL_CALL:
		fuzz_terminated(msg.u.kill_call.id, sizeof msg.u.kill_call.id);
		break;
	case CTL_LOG_LEVEL:
		ctl_take_log_level(fuzz_pair[0], &msg);
		while (recv(fuzz_pair[1], buf, sizeof buf, 0) > 0)
			continue;
		log_set_level(LOG_ERROR);
		break;
	default:
		break;
	}
	return 0;
}
