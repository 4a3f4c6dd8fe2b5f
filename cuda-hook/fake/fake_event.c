/* fake_event.c - events and graphs of the fake driver (see fake_exec.c). */
#include "fake.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#define FAKE_EVENT_MAGIC 0xE7E7u
#define FAKE_GRAPH_MAGIC 0x6A6Au

struct fake_event {
    uint32_t magic;
    int recorded;
    uint64_t at_ns;   /* when the timeline reaches the event */
    uint64_t work_ns; /* simulated work submitted before it (busy_total_ns) */
};

struct fake_graph {
    uint32_t magic;
};

static struct fake_event *event_of(CUevent e)
{
    struct fake_event *ev = (struct fake_event *)e;
    return (ev != NULL && ev->magic == FAKE_EVENT_MAGIC) ? ev : NULL;
}

FAKE_EXPORT CUresult cuEventCreate(CUevent *event, unsigned int flags)
{
    (void)flags;
    if (event == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_event *ev = calloc(1, sizeof(*ev));
    if (ev == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    ev->magic = FAKE_EVENT_MAGIC;
    *event = (CUevent)ev;
    return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuEventDestroy_v2(CUevent event)
{
    struct fake_event *ev = event_of(event);
    if (ev == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    ev->magic = 0;
    free(ev);
    return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuEventRecord(CUevent event, CUstream stream)
{
    (void)stream;
    struct fake_event *ev = event_of(event);
    CUresult err = CUDA_SUCCESS;
    int dev = fake_current_dev(&err);
    if (dev < 0)
        return err;
    if (ev == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&g_fake.mu);
    uint64_t now = fake_now_ns(), tail = g_fake.dev[dev].tail_ns;
    ev->at_ns = tail > now ? tail : now;
    ev->work_ns = g_fake.dev[dev].busy_total_ns;
    ev->recorded = 1;
    pthread_mutex_unlock(&g_fake.mu);
    return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuEventRecord_ptsz(CUevent event, CUstream stream)
{
    return cuEventRecord(event, stream);
}

FAKE_EXPORT CUresult cuEventQuery(CUevent event)
{
    struct fake_event *ev = event_of(event);
    if (ev == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    return (!ev->recorded || fake_now_ns() >= ev->at_ns) ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

FAKE_EXPORT CUresult cuEventSynchronize(CUevent event)
{
    struct fake_event *ev = event_of(event);
    if (ev == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    while (ev->recorded && fake_now_ns() < ev->at_ns) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 50000};
        nanosleep(&ts, NULL);
    }
    return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuEventElapsedTime(float *ms, CUevent start, CUevent end)
{
    struct fake_event *a = event_of(start), *b = event_of(end);
    if (ms == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (a == NULL || b == NULL || !a->recorded || !b->recorded)
        return CUDA_ERROR_INVALID_HANDLE;
    if (cuEventQuery(start) != CUDA_SUCCESS || cuEventQuery(end) != CUDA_SUCCESS)
        return CUDA_ERROR_NOT_READY;
    int64_t ns = g_fake.events_work_only ? (int64_t)(b->work_ns - a->work_ns)
                                         : (int64_t)(b->at_ns - a->at_ns);
    *ms = (float)((double)ns / 1e6);
    return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuGraphCreate(CUgraph *graph, unsigned int flags)
{
    if (graph == NULL || flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_graph *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    g->magic = FAKE_GRAPH_MAGIC;
    *graph = (CUgraph)g;
    return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuGraphDestroy(CUgraph graph)
{
    struct fake_graph *g = (struct fake_graph *)graph;
    if (g == NULL || g->magic != FAKE_GRAPH_MAGIC)
        return CUDA_ERROR_INVALID_VALUE;
    g->magic = 0;
    free(g);
    return CUDA_SUCCESS;
}

/* The fake backs no memory for graph allocations: the real driver does so
 * at instantiation, which the hook cannot see, so the hook charges nodes. */
FAKE_EXPORT CUresult cuGraphAddMemAllocNode(CUgraphNode *node, CUgraph graph,
                                            const CUgraphNode *deps, size_t numDeps,
                                            CUDA_MEM_ALLOC_NODE_PARAMS *params)
{
    (void)deps, (void)numDeps;
    struct fake_graph *g = (struct fake_graph *)graph;
    if (node == NULL || params == NULL || g == NULL || g->magic != FAKE_GRAPH_MAGIC ||
        params->bytesize == 0)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_fake.mu);
    params->dptr = fake_new_va(0, params->bytesize);
    *node = (CUgraphNode)(uintptr_t)(0x1000 + 16 * ++g_fake.next_handle);
    pthread_mutex_unlock(&g_fake.mu);
    return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuGraphDestroyNode(CUgraphNode node)
{
    return node == NULL ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuGraphInstantiateWithFlags(CUgraphExec *exec, CUgraph graph,
                                                 unsigned long long flags)
{
    (void)flags;
    struct fake_graph *g = (struct fake_graph *)graph;
    if (exec == NULL || g == NULL || g->magic != FAKE_GRAPH_MAGIC)
        return CUDA_ERROR_INVALID_VALUE;
    *exec = (CUgraphExec)malloc(16);
    return *exec == NULL ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuGraphExecDestroy(CUgraphExec exec)
{
    if (exec == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    free(exec);
    return CUDA_SUCCESS;
}

/* A graph launch runs like one kernel. */
FAKE_EXPORT CUresult cuGraphLaunch(CUgraphExec exec, CUstream stream)
{
    return exec == NULL ? CUDA_ERROR_INVALID_VALUE
                        : cuLaunchKernel(NULL, 1, 1, 1, 1, 1, 1, 0, stream, NULL, NULL);
}

FAKE_EXPORT CUresult cuGraphLaunch_ptsz(CUgraphExec exec, CUstream stream)
{
    return cuGraphLaunch(exec, stream);
}
