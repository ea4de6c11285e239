// The counter-based random stream behind sampling, shared by the host sampler
// (gpu/sampler.cpp) and the GPU one (gpu/cuda/sampling.cu), so that both draw
// the same number for a (seed, sequence, position): one definition, compiled
// for the host and, under nvcc, for the device.
//
// Thread contract: pure inline functions; call from any thread or kernel.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define FLASHTTS_HOST_DEVICE __host__ __device__
#else
#define FLASHTTS_HOST_DEVICE
#endif

namespace flashtts {

// SplitMix64 finaliser: a bijective 64-bit mix with full avalanche.
FLASHTTS_HOST_DEVICE inline uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) with 53 random bits, from (seed, seq_id, position) only.
FLASHTTS_HOST_DEVICE inline double uniform_of(uint64_t seed, uint64_t seq_id, uint64_t position) {
  uint64_t z = mix64(mix64(mix64(seed) ^ seq_id) ^ position);
  return (double)(z >> 11) * 0x1.0p-53;
}

}  // namespace flashtts
