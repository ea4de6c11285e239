#include "gpu/mapping.h"

#include <sys/mman.h>

namespace flashtts {

void Mapping::reset() {
  if (data_) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace flashtts
