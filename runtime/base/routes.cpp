#include "runtime/base/routes.h"

namespace flashtts {

Routes& Routes::pass(std::string_view type, std::function<void(const std::string&)> f) {
  handlers_[std::string(type)] = [f = std::move(f)](const msg::Envelope&, std::string& bytes) {
    f(bytes);
    return Status::success();
  };
  return *this;
}

Status Routes::route(std::string bytes) const {
  auto env = msg::open(bytes);
  if (!env) {
    log_->warn("ignored a message: {}", env.error().message);
    return Status::success();
  }
  auto it = handlers_.find(env->type);
  if (it == handlers_.end()) {
    log_->warn("ignored a '{}' message", env->type);
    return Status::success();
  }
  return it->second(*env, bytes);
}

Status Routes::drain(Mailbox& box) const {
  while (auto bytes = box.try_recv()) FLASHTTS_TRY(route(std::move(*bytes)));
  return Status::success();
}

}  // namespace flashtts
