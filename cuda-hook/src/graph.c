/*
 * graph.c - graph memory-allocation nodes. The driver backs a node's memory
 * when the graph is instantiated or launched, at a moment the application
 * does not call us; so a node is charged from its creation until it or its
 * graph is destroyed. This errs on the side of the limit: memory a graph
 * frees within one launch stays charged while the graph exists.
 */
#include "hook.h"

TESSERA_EXPORT CUresult cuGraphAddMemAllocNode(CUgraphNode *node, CUgraph graph,
                                               const CUgraphNode *deps, size_t numDeps,
                                               CUDA_MEM_ALLOC_NODE_PARAMS *params)
{
    __typeof__(&cuGraphAddMemAllocNode) real = REAL(cuGraphAddMemAllocNode);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    if (node == NULL || params == NULL)
        return real(node, graph, deps, numDeps, params);
    int dev = params->poolProps.location.type == CU_MEM_LOCATION_TYPE_DEVICE
                  ? hook_dev_of_cuda(params->poolProps.location.id)
                  : -1;
    if (dev < 0)
        return real(node, graph, deps, numDeps, params);
    CUresult rc = hook_reserve(dev, params->bytesize);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = real(node, graph, deps, numDeps, params);
    if (rc != CUDA_SUCCESS)
        hook_release(dev, params->bytesize);
    else
        hook_track(KIND_GRAPH_NODE, (uintptr_t)*node, dev, params->bytesize, (uintptr_t)graph);
    return rc;
}

TESSERA_EXPORT CUresult cuGraphDestroyNode(CUgraphNode node)
{
    __typeof__(&cuGraphDestroyNode) real = REAL(cuGraphDestroyNode);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    struct alloc_rec rec;
    int had = hook_untrack(KIND_GRAPH_NODE, (uintptr_t)node, &rec);
    CUresult rc = real(node);
    if (had && rc == CUDA_SUCCESS)
        hook_release_rec(&rec);
    else if (had)
        hook_retrack(&rec);
    return rc;
}

TESSERA_EXPORT CUresult cuGraphDestroy(CUgraph graph)
{
    __typeof__(&cuGraphDestroy) real = REAL(cuGraphDestroy);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    CUresult rc = real(graph);
    struct alloc_rec rec;
    while (rc == CUDA_SUCCESS && hook_untrack_by_aux(KIND_GRAPH_NODE, (uintptr_t)graph, &rec))
        hook_release_rec(&rec);
    return rc;
}
