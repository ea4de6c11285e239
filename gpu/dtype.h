// Element types of stored tensors (the safetensors set) and the exact scalar
// conversions between float32 and the two 16-bit float formats.
//
// Thread contract: pure functions; call from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace flashtts {

// Every dtype the safetensors format defines. Only F32, F16 and BF16 convert
// to float32; the others are recognised so that the error can name them.
enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2, Unknown };

const char* dtype_name(DType d);             // "F32", "BF16", ...
DType dtype_from_name(std::string_view s);   // Unknown when not a safetensors dtype
size_t dtype_size(DType d);                  // bytes per element; 0 for Unknown
bool dtype_converts_to_f32(DType d);         // F32, F16, BF16

// Scalar conversions (exact: every F16 and BF16 value is a float).
float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t b);
// Round-to-nearest-even; NaN stays NaN, overflow goes to infinity.
uint16_t f32_to_bf16(float f);
uint16_t f32_to_f16(float f);

}  // namespace flashtts
