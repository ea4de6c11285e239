// An actor's message dispatch: each message type to its handler, so that no
// actor writes its own open / switch-on-type / decode / log-and-ignore loop.
// A message that cannot be opened, or of a type with no handler, is logged
// and ignored; one that does not decode as its type is logged and ignored
// too, or, for a type routed with Decode::kStrict, ends the actor with the
// decode error. A handler's error ends the actor (route() and drain() return
// it).
//
// Thread contract: built and used by one actor, on its thread.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>

#include "messages/envelope.h"
#include "runtime/base/logging.h"
#include "runtime/base/mailbox.h"
#include "runtime/base/status.h"

namespace flashtts {

class Routes {
 public:
  enum class Decode { kLogged, kStrict };

  explicit Routes(Logger log) : log_(std::move(log)) {}

  // Messages of type M to f: f(M) or f(M, bytes) (bytes: the message as it
  // came, to pass on unchanged, or to move from: route() owns them),
  // returning void or Status.
  template <class M, class F>
  Routes& on(F f, Decode decode = Decode::kLogged) {
    handlers_[M::kType] = [f = std::move(f), decode, log = log_](const msg::Envelope& env,
                                                                  std::string& bytes) mutable -> Status {
      auto m = msg::decode<M>(env);
      if (!m) {
        if (decode == Decode::kStrict) return m.error();
        log->warn("ignored a message: {}", m.error().message);
        return Status::success();
      }
      auto call = [&] {
        if constexpr (std::is_invocable_v<F&, M, std::string&>) return f(std::move(*m), bytes);
        else return f(std::move(*m));
      };
      if constexpr (std::is_void_v<decltype(call())>) {
        call();
        return Status::success();
      } else {
        return call();
      }
    };
    return *this;
  }

  // Messages of `type` to f(bytes) undecoded: those the actor only passes on.
  Routes& pass(std::string_view type, std::function<void(const std::string&)> f);

  Status route(std::string bytes) const;
  // Routes every message waiting in `box`; stops at the first handler error.
  Status drain(Mailbox& box) const;

 private:
  Logger log_;
  std::map<std::string, std::function<Status(const msg::Envelope&, std::string&)>, std::less<>> handlers_;
};

}  // namespace flashtts
