#include "runtime/service_notify.h"

#include <systemd/sd-daemon.h>

#include <cstring>

namespace flashtts {

Status notify_service(const std::string& state) {
  // unset_environment = 0: a restart of the pipeline in this process may
  // notify again (STOPPING=1 after READY=1).
  int r = sd_notify(0, state.c_str());
  if (r < 0) {
    std::string first = state.substr(0, state.find('\n'));
    return make_error("could not notify the service manager (" + first + "): " + std::strerror(-r));
  }
  return Status::success();
}

}  // namespace flashtts
