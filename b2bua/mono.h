/*
 * mono — the monotonic clock every process uses for deadlines, timeouts and
 * rate windows: milliseconds of CLOCK_MONOTONIC, which never steps back
 * when the wall clock is set.  Times that are shown, stored or compared
 * across processes and hosts use the wall clock instead (shm_now_ms).
 */
#ifndef B2BUA_MONO_H
#define B2BUA_MONO_H

#include <stdint.h>

/* Milliseconds since an arbitrary point (the boot): only differences mean
 * anything. */
uint64_t mono_ms(void);

/* The same clock in microseconds, for durations shorter than a millisecond
 * (a Redis round trip, a loop's lag: the metrics' histograms). */
uint64_t mono_us(void);

#endif
