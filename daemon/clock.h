/* Clocks as seconds in a double: wall (CLOCK_REALTIME), monotonic, thread CPU. */
#ifndef TASKD_CLOCK_H
#define TASKD_CLOCK_H

#include <sys/time.h>
#include <time.h>

double clock_now(clockid_t id);
double clock_tv_seconds(const struct timeval *tv);
/* Seconds as a timeval for libevent timers (negative or NaN: 0). */
struct timeval clock_timeval(double sec);

#endif
