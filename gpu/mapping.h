// A region of memory from mmap, owned by one object and unmapped when that
// goes: what a read-only model file (MappedFile) and the CPU backend's KV
// arena (HostArena) hold.
//
// Thread contract: move-only; owned by one object, like any value.
#pragma once

#include <cstddef>
#include <utility>

namespace flashtts {

class Mapping {
 public:
  Mapping() = default;
  // Takes over [data, data + size), which mmap returned.
  Mapping(void* data, size_t size) : data_(data), size_(size) {}
  Mapping(Mapping&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  Mapping& operator=(Mapping&& o) noexcept {
    if (this != &o) {
      reset();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { reset(); }

  void* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void reset();
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace flashtts
