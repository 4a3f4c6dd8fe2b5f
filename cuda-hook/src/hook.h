/*
 * hook.h - what the entry points (the exported wrappers) build on: every
 * layer below them, and the attribute that exports a wrapper. Everything
 * else is hidden (-fvisibility=hidden).
 *
 * Layer 5 (entry points): only entry-point files include it. See README.md,
 * "Layers".
 */
#ifndef TESSERA_HOOK_H
#define TESSERA_HOOK_H

#include "account.h"
#include "devmap.h"
#include "poolacct.h"
#include "state.h"

#define TESSERA_EXPORT __attribute__((visibility("default")))

#endif
