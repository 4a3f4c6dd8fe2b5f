/* symbols.c - the names of the symbols; see symbols.h. */
#include "symbols.h"

#include <string.h>

#define SYM_NAME(name, lib) [SYM_##name] = {#name, lib},
const struct sym_entry hook_syms[SYM_COUNT] = {HOOK_SYMBOLS(SYM_NAME, SYM_NAME)};

int sym_find(const char *name)
{
    for (int i = 0; i < SYM_COUNT; i++)
        if (strcmp(hook_syms[i].name, name) == 0)
            return i;
    return -1;
}
