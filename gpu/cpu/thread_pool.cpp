#include "gpu/cpu/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FLASHTTS_PAUSE() _mm_pause()
#else
#define FLASHTTS_PAUSE() ((void)0)
#endif

namespace flashtts {

namespace {

// How long a thread spins before it sleeps. A wake-up from sleep can cost
// hundreds of microseconds on a virtual machine (measured: the 28 M model's
// decode ran 3x slower when the owner slept while a worker finished its
// share). The owner waits for a loop it knows is nearly done, so it spins
// longer (yielding, in case the worker needs its core); workers wait for the
// next loop of a forward pass, which follows within microseconds, and then
// sleep, so an idle engine costs nothing.
constexpr auto kOwnerSpin = std::chrono::microseconds(2000);
constexpr auto kWorkerSpin = std::chrono::microseconds(300);

// Spins until done() or `limit` has passed; true when done() held.
template <class Done>
bool spin(Done&& done, std::chrono::microseconds limit, bool yield) {
  const auto start = std::chrono::steady_clock::now();
  for (int s = 1;; ++s) {
    if (done()) return true;
    FLASHTTS_PAUSE();
    if (s % 64 == 0) {
      if (std::chrono::steady_clock::now() - start > limit) return done();
      if (yield) std::this_thread::yield();
    }
  }
}

void run_chunk(const std::function<void(int64_t, int64_t)>& fn, int64_t n, int index, int parts) {
  int64_t begin = n * index / parts, end = n * (index + 1) / parts;
  if (begin < end) fn(begin, end);
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (n_threads_ == 1 || n == 1) {
    fn(0, n);
    return;
  }
  job_ = &fn;
  job_n_ = n;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  run_chunk(fn, n, 0, n_threads_);
  if (!spin([this] { return pending_.load(std::memory_order_acquire) == 0; }, kOwnerSpin, true)) {
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return pending_.load(std::memory_order_acquire) == 0; });
  }
  job_ = nullptr;
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = seen;
    spin([&] { return (g = generation_.load(std::memory_order_acquire)) != seen || stop_.load(); }, kWorkerSpin, false);
    if (g == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_.load() || generation_.load(std::memory_order_acquire) != seen; });
      g = generation_.load(std::memory_order_acquire);
    }
    if (stop_.load()) return;
    seen = g;
    run_chunk(*job_, job_n_, index, n_threads_);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);
      done_.notify_one();
    }
  }
}

}  // namespace flashtts
