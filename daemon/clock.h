/* Clocks as seconds in a double: wall (CLOCK_REALTIME), monotonic, thread CPU. */
#ifndef TASKD_CLOCK_H
#define TASKD_CLOCK_H

#include <sys/time.h>
#include <time.h>

double clock_now(clockid_t id);
double clock_tv_seconds(const struct timeval *tv);

#endif
