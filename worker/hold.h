/*
 * hold — is an SDP offer putting the call on hold, or resuming it?
 *
 * Parsed with Sofia-SIP's SDP parser (RFC 4566 / RFC 3264 §8.4): a stream
 * is on hold when its connection address is 0.0.0.0 (the RFC 2543 way) or
 * its direction is sendonly or inactive; an offer holds the call when every
 * active media stream is held.  Pure: no I/O, unit-tested in
 * tests/check_hold.c.
 */
#ifndef B2BUA_HOLD_H
#define B2BUA_HOLD_H

#include <stddef.h>

enum hold_state {
	HOLD_UNKNOWN = 0,   /* no body, not SDP, or no media: the state does not change */
	HOLD_ON,            /* every stream held: c=0.0.0.0, a=sendonly or a=inactive */
	HOLD_OFF,           /* some stream sends and receives (or recvonly) on a real address */
};

/* The hold state an SDP body asks for. */
enum hold_state hold_state_of(const char *sdp, size_t len);

#endif
