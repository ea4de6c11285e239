// A fixed pool of worker threads running parallel-for loops, used by the CPU
// kernels (matrix products, attention, norms, activations). A forward pass
// runs dozens of short loops, so workers spin briefly before they sleep: a
// loop then starts in well under a microsecond instead of a futex wake-up.
//
// Thread contract: owned by one CPU backend; parallel_for is called from the
// owner's thread only, one loop at a time, and returns when all of it is done.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace flashtts {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads >= 1; the caller counts as one
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(i) for i in [0, n), split into contiguous chunks across threads.
  void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);

 private:
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;  // guards the sleeps, so that no wake-up is lost
  std::condition_variable wake_, done_;
  // Written by the owner before it bumps generation_ (release); read by the
  // workers after they see the new generation (acquire).
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};  // workers still running the current loop
  std::atomic<bool> stop_{false};
};

}  // namespace flashtts
