// Readiness and stop notifications to the service manager, for systemd
// units of Type=notify (tools/systemd/flashtts.service, docs/service.md),
// through libsystemd's sd_notify(3): `flashtts serve` sends READY=1 once the
// models are loaded and the intake listens, STOPPING=1 when SIGTERM or
// SIGINT arrives, and STATUS= lines a person reads in `systemctl status`.
// Not started by a service manager ($NOTIFY_SOCKET unset), every call does
// nothing.
//
// Thread contract: the serve loop's thread only.
#pragma once

#include <string>

#include "runtime/base/status.h"

namespace flashtts {

// Sends `state`, newline-separated assignments such as "READY=1\nSTATUS=..."
// (sd_notify's format). Error when $NOTIFY_SOCKET is set but the message
// could not be sent; success when it was sent or there is nobody to tell.
Status notify_service(const std::string& state);

}  // namespace flashtts
