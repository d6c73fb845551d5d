/*
 * fuzz_hold — hold and resume detection (worker/hold.c) on any SDP body: a
 * re-INVITE's body comes from the caller or the callee as it is, and goes
 * through Sofia-SIP's SDP parser and our walk of its media.  The body is
 * passed as it arrives, not NUL-terminated, so a read past its end shows.
 */
#include "worker/hold.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum hold_state s = hold_state_of((const char *)data, size);

	if (s != HOLD_UNKNOWN && s != HOLD_ON && s != HOLD_OFF)
		abort();
	return 0;
}
