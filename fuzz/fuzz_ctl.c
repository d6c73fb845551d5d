/*
 * fuzz_ctl — the control protocol between b2bua's processes (b2bua/ctl.h):
 * any datagram a child could send reaches ctl_decode() in the master or
 * another child.  Whatever the bytes, decoding must not read past them,
 * and a message it accepts must be safe to use: its type known, its
 * strings terminated inside their arrays.
 *
 * Design note.  A message ctl_decode() accepts also goes through what its
 * receivers do first with it: the type's name and request flag.  (A
 * CTL_RELOAD's generation is only compared with the board's, shm/board.h.)
 */
#include "b2bua/ctl.h"
#include "b2bua/log.h"

#include <stdlib.h>
#include <string.h>

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
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_msg msg;

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
	default:
		break;
	}
	return 0;
}
