/*
 * devmap.c - which of the container's devices (the ordinals of the
 * environment contract) a CUDA or NVML device is. CUDA may number devices
 * differently from the plugin (CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER), so
 * devices are matched by UUID when the plugin gave UUIDs, by ordinal if not.
 * See devmap.h.
 */
#include "devmap.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static atomic_int warned_unmatched;

/* Compares UUIDs ignoring case and a "GPU-"/"MIG-" prefix on either side. */
static int uuid_equal(const char *a, const char *b)
{
    if (strncasecmp(a, "GPU-", 4) == 0 || strncasecmp(a, "MIG-", 4) == 0)
        a += 4;
    if (strncasecmp(b, "GPU-", 4) == 0 || strncasecmp(b, "MIG-", 4) == 0)
        b += 4;
    return *a != '\0' && strcasecmp(a, b) == 0;
}

void hook_format_uuid(const CUuuid *u, char *out, size_t len)
{
    const unsigned char *b = (const unsigned char *)u->bytes;
    snprintf(out, len, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

static int any_uuid(void)
{
    for (int i = 0; i < g_hook.cfg.device_count; i++)
        if (g_hook.cfg.uuid[i][0] != '\0')
            return 1;
    return 0;
}

/* Ordinal of the device named uuid, or by_index when no UUID matches. */
static int match(const char *uuid, int by_index)
{
    for (int i = 0; i < g_hook.cfg.device_count; i++)
        if (uuid != NULL && uuid_equal(uuid, g_hook.cfg.uuid[i]))
            return i;
    if (atomic_exchange(&warned_unmatched, 1) == 0)
        hook_log("device %s matches no %s* variable: using its index %d", uuid ? uuid : "?",
                 "TESSERA_DEVICE_UUID_", by_index);
    return by_index < g_hook.cfg.device_count ? by_index : -1;
}

static int compute_cuda(CUdevice dev)
{
    if (!any_uuid())
        return dev < g_hook.cfg.device_count ? dev : -1;
    CUuuid u;
    char s[64];
    __typeof__(&cuDeviceGetUuid) get = REAL(cuDeviceGetUuid);
    if (get == NULL || get(&u, dev) != CUDA_SUCCESS)
        return match(NULL, dev);
    hook_format_uuid(&u, s, sizeof(s));
    return match(s, dev);
}

int hook_dev_of_cuda(CUdevice dev)
{
    hook_config();
    /* Refused: every device is the container's, so that every allocation
     * and context reaches hook_reserve, which refuses it; -1 would pass it
     * through unlimited. */
    if (g_hook.cfg.refused)
        return 0;
    if (!g_hook.cfg.enforce || dev < 0 || dev >= HOOK_MAX_CUDA_DEVICES)
        return -1;
    /* Cached as ordinal + 2, so that the zero of a fresh table is "unknown". */
    int v = atomic_load_explicit(&g_hook.devmap[dev], memory_order_relaxed);
    if (v != 0)
        return v - 2;
    int ordinal = compute_cuda(dev);
    atomic_store_explicit(&g_hook.devmap[dev], ordinal + 2, memory_order_relaxed);
    return ordinal;
}

/* Whether CUDA sees one device only, and it is the container's; asked once
 * the driver is initialised (before, the answer is not final). */
static void find_sole(void)
{
    int n = 0;
    __typeof__(&cuDeviceGetCount) count = REAL(cuDeviceGetCount);
    if (count == NULL || count(&n) != CUDA_SUCCESS)
        return;
    int ordinal = n == 1 ? hook_dev_of_cuda(0) : -1;
    atomic_store_explicit(&g_hook.sole_dev, ordinal >= 0 ? ordinal : -1, memory_order_relaxed);
}

int hook_current_dev_slow(void)
{
    hook_config();
    if (g_hook.cfg.refused)
        return 0; /* as in hook_dev_of_cuda */
    if (!g_hook.cfg.enforce)
        return -1;
    if (atomic_load_explicit(&g_hook.sole_dev, memory_order_relaxed) == HOOK_SOLE_UNKNOWN) {
        find_sole();
        int sole = atomic_load_explicit(&g_hook.sole_dev, memory_order_relaxed);
        if (sole >= 0)
            return sole;
    }
    CUdevice dev;
    __typeof__(&cuCtxGetDevice) get = REAL(cuCtxGetDevice);
    if (get == NULL || get(&dev) != CUDA_SUCCESS)
        return -1;
    return hook_dev_of_cuda(dev);
}

int hook_dev_of_nvml(nvmlDevice_t dev)
{
    hook_config();
    if (!g_hook.cfg.enforce)
        return -1;
    unsigned int index = 0;
    __typeof__(&nvmlDeviceGetIndex) get_index = REAL_NVML(nvmlDeviceGetIndex);
    if (get_index == NULL || get_index(dev, &index) != NVML_SUCCESS)
        index = (unsigned int)g_hook.cfg.device_count; /* no fallback ordinal */
    if (!any_uuid())
        return (int)index < g_hook.cfg.device_count ? (int)index : -1;
    char uuid[TESSERA_NVML_UUID_BUFFER];
    __typeof__(&nvmlDeviceGetUUID) get_uuid = REAL_NVML(nvmlDeviceGetUUID);
    if (get_uuid == NULL || get_uuid(dev, uuid, sizeof(uuid)) != NVML_SUCCESS)
        return match(NULL, (int)index);
    return match(uuid, (int)index);
}
