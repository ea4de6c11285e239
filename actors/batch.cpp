#include "actors/batch.h"

namespace flashtts {

Status Routes::route(const std::string& bytes) const {
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
  return it->second(*env);
}

}  // namespace flashtts
