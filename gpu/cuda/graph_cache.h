// CUDA graphs of the decode iterations that recur: the first time a key (the
// piece's token count and output kind) is seen it runs eagerly; the second
// time its work is captured into a graph, which every later step replays in
// one launch instead of ~10 launches per layer. Whatever the capture cannot
// take (an error inside it) leaves that key eager for good.
//
// The captured work must read its per-step inputs from fixed device
// addresses (the backend's metadata and workspaces), which the caller fills
// before each launch.
//
// Thread contract: owned by one backend, used from its actor's thread only.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <map>

#include "runtime/base/status.h"

namespace flashtts::cuda {

class GraphCache {
 public:
  explicit GraphCache(int32_t max_graphs = 64, int32_t capture_after = 2)
      : max_graphs_(max_graphs), capture_after_(capture_after) {}
  GraphCache(const GraphCache&) = delete;
  GraphCache& operator=(const GraphCache&) = delete;
  ~GraphCache();

  // Runs `work` (which enqueues on `st`) for `key`: by replaying its graph,
  // by capturing then replaying it, or eagerly.
  Status run(int64_t key, cudaStream_t st, const std::function<Status()>& work);

  int32_t n_graphs() const { return (int32_t)graphs_.size(); }
  int64_t replays() const { return replays_; }
  void set_enabled(bool on) { enabled_ = on; }
  // Forgets every graph (their addresses changed: the weights moved); keys
  // are captured again as they recur.
  void clear();

 private:
  struct Entry {
    int32_t seen = 0;
    bool failed = false;
    cudaGraphExec_t exec = nullptr;
  };
  std::map<int64_t, Entry> graphs_;
  int32_t max_graphs_, capture_after_, n_exec_ = 0;
  int64_t replays_ = 0;
  bool enabled_ = true;
};

}  // namespace flashtts::cuda
