/*
 * state.c - the process-wide state and the logger (see state.h). Static
 * initialisers only: the library must do nothing at load time, so the
 * rest is filled in by init.c on first use.
 */
#include "state.h"

#include <stdarg.h>
#include <stdio.h>

struct hook g_hook = {
    .init_mu = PTHREAD_MUTEX_INITIALIZER,
    .allocs_lock = ATOMIC_FLAG_INIT,
    .sole_dev = HOOK_SOLE_UNKNOWN,
};

_Thread_local int hook_loading;

void hook_log(const char *fmt, ...)
{
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "tessera-hook: %s\n", line);
}
