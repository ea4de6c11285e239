#include "gpu/cpu/host_arena.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace flashtts {

Expected<HostArena> HostArena::create(size_t bytes) {
  assert(bytes > 0);
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    return make_error("cannot reserve " + std::to_string(bytes) + " bytes of host memory: " + std::strerror(errno));
  HostArena a;
  a.map_ = Mapping(p, bytes);
  return a;
}

void HostArena::release(size_t offset, size_t bytes) {
  assert(offset + bytes <= size());
  const uintptr_t page = (uintptr_t)::sysconf(_SC_PAGESIZE);
  const uintptr_t begin = (uintptr_t)data() + offset, end = begin + bytes;
  const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
  if (first >= last) return;
  // Only fails on a range outside the mapping, which the REQUIRES rules out.
  [[maybe_unused]] const int rc = ::madvise((void*)first, last - first, MADV_DONTNEED);
  assert(rc == 0);
}

}  // namespace flashtts
