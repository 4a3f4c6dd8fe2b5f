/* proc.c - whether a process recorded in the region still exists. */
#include "region.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads the state letter and starttime (field 22) of /proc/<pid>/stat. The
 * command name may contain spaces and parentheses, so fields are counted
 * from the last ')'. */
static int read_stat(int32_t pid, char *state, uint64_t *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ')
        return -1;
    *state = p[2];
    for (int field = 3; field <= 22; field++) {
        p = strchr(p + 1, ' ');
        if (p == NULL)
            return -1;
    }
    *start = strtoull(p + 1, NULL, 10);
    return 0;
}

uint64_t region_proc_start_time(int32_t pid)
{
    char state;
    uint64_t start = 0;
    return read_stat(pid, &state, &start) == 0 ? start : 0;
}

int region_pid_alive(int32_t pid, uint64_t start_time)
{
    if (pid <= 0)
        return 0;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return 0;
    char state;
    uint64_t start = 0;
    if (read_stat(pid, &state, &start) != 0)
        return 1; /* no /proc: kill() is all we know */
    if (state == 'Z' || state == 'X')
        return 0; /* exited; its GPU memory is already gone */
    /* Same pid, other start time: the pid was reused by a new process. */
    return start_time == 0 || start == 0 || start == start_time;
}
