// Error values for everything that comes from outside: model files, client
// bytes, configuration, the device. No exceptions cross a module boundary.
//
// Thread contract: plain values; copy or move freely between threads.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace flashtts {

// The failure half of Expected: one sentence a user can act on, naming the
// file, key or tensor at fault.
struct Error {
  std::string message;
};

inline Error make_error(std::string message) { return Error{std::move(message)}; }

// Either a value or an Error (a small stand-in for C++23 std::expected).
template <class T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}
  Expected(Error error) : v_(std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  // REQUIRES: ok()
  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // REQUIRES: !ok()
  const Error& error() const { assert(!ok()); return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Success or an Error, for calls with no value to return.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error.message)), failed_(true) {}
  static Status success() { return Status(); }

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  // REQUIRES: !ok()
  const std::string& message() const { assert(failed_); return error_; }
  Error error() const { return Error{error_}; }

 private:
  std::string error_;
  bool failed_ = false;
};

}  // namespace flashtts

// Propagates a failed Status/Expected out of the calling function.
#define FLASHTTS_TRY(expr)                                  \
  do {                                                      \
    auto&& flashtts_try_ = (expr);                          \
    if (!flashtts_try_.ok()) return flashtts_try_.error();  \
  } while (0)
