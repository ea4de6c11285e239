#include "gpu/cuda/graph_cache.h"

#include "gpu/cuda/cuda_check.h"

namespace flashtts::cuda {

GraphCache::~GraphCache() {
  for (auto& [key, e] : graphs_)
    if (e.exec) cudaGraphExecDestroy(e.exec);
}

void GraphCache::clear() {
  for (auto& [key, e] : graphs_)
    if (e.exec) cudaGraphExecDestroy(e.exec);
  graphs_.clear();
  n_exec_ = 0;
}

Status GraphCache::run(int64_t key, cudaStream_t st, const std::function<Status()>& work) {
  Entry& e = graphs_[key];
  if (e.exec) {
    ++replays_;
    return check(cudaGraphLaunch(e.exec, st), "cudaGraphLaunch");
  }
  if (!enabled_ || e.failed || ++e.seen < capture_after_ || n_exec_ >= max_graphs_) return work();

  cudaGraph_t graph = nullptr;
  Status s = check(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
  if (s.ok()) {
    Status w = work();
    cudaError_t end = cudaStreamEndCapture(st, &graph);  // always end, even after a failed enqueue
    s = w.ok() ? check(end, "cudaStreamEndCapture") : w;
  }
  if (s.ok()) s = check(cudaGraphInstantiate(&e.exec, graph, 0), "cudaGraphInstantiate");
  if (graph) cudaGraphDestroy(graph);
  if (!s.ok()) {
    // Not capturable: clear the error state and run this key eagerly from now on.
    cudaGetLastError();
    e.failed = true;
    e.exec = nullptr;
    return work();
  }
  ++n_exec_;
  ++replays_;
  return check(cudaGraphLaunch(e.exec, st), "cudaGraphLaunch");
}

}  // namespace flashtts::cuda
