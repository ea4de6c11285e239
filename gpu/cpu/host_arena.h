// Host memory reserved up front and paid for as it is used: one anonymous
// private mapping (MAP_NORESERVE) whose untouched pages take no memory, and
// whose pages can be given back while the rest stays mapped. The CPU backend
// keeps its KV pool in one, so the pool can grow into the reservation and
// return the memory of blocks a shrink drops without moving live blocks.
//
// Thread contract: move-only, owned by one CPU backend; release() is called
// from the owner's thread while no other thread touches the released range.
#pragma once

#include <cstddef>

#include "gpu/mapping.h"
#include "runtime/base/status.h"

namespace flashtts {

class HostArena {
 public:
  // Error when the mapping fails (address space, overcommit policy).
  // REQUIRES: bytes > 0
  static Expected<HostArena> create(size_t bytes);

  void* data() const { return map_.data(); }
  size_t size() const { return map_.size(); }

  // Gives back the whole pages inside [offset, offset + bytes): they take no
  // memory until touched again and read back as zeros. The partial pages at
  // either end are kept, so bytes outside the range never change.
  // REQUIRES: offset + bytes <= size()
  void release(size_t offset, size_t bytes);

 private:
  Mapping map_;
};

}  // namespace flashtts
