/*
 * check.h - the tiny reporting convention of the hook tests: every check
 * prints one "PASS name" or "FAIL name: why" line, and the runner counts them.
 */
#ifndef TESSERA_CHECK_H
#define TESSERA_CHECK_H

#include <stdarg.h>
#include <stdio.h>

static int check_failed_count;

__attribute__((format(printf, 3, 4), unused)) static int check(int ok, const char *name,
                                                               const char *fmt, ...)
{
    if (ok) {
        printf("PASS %s\n", name);
    } else {
        va_list ap;
        va_start(ap, fmt);
        printf("FAIL %s: ", name);
        vprintf(fmt, ap);
        printf("\n");
        va_end(ap);
        check_failed_count++;
    }
    fflush(stdout);
    return ok;
}

__attribute__((unused)) static int check_exit_code(void)
{
    return check_failed_count == 0 ? 0 : 1;
}

#endif
