#include "runtime/base/heartbeat.h"

#include <cstdio>
#include <random>

#include <unistd.h>

#include "messages/envelope.h"
#include "messages/internal.h"
#include "runtime/base/mailbox.h"
#include "runtime/base/poll_set.h"

namespace flashtts {

std::string new_incarnation() {
  std::random_device rd;
  auto now = std::chrono::system_clock::now().time_since_epoch();
  char buf[64];
  std::snprintf(buf, sizeof buf, "%d-%llx-%08x", int(getpid()),
                (unsigned long long)std::chrono::duration_cast<std::chrono::microseconds>(now).count(), unsigned(rd()));
  return buf;
}

Status run_heartbeat(zmq::context_t& ctx, ActorPipe& pipe, const HeartbeatOptions& o) {
  zmq::socket_t out(ctx, zmq::socket_type::push);
  configure_socket(out);
  // While the intake is away, keep a few beats, not an ever-growing queue.
  out.set(zmq::sockopt::sndhwm, 4);
  try {
    out.connect(o.intake);
  } catch (const zmq::error_t& e) {
    return make_error("cannot connect to the intake at '" + o.intake + "': " + e.what());
  }
  const std::string beat = msg::encode(msg::Heartbeat{new_incarnation(), o.actors, (int64_t)o.interval.count()});
  pipe.ready();
  PollSet poll(pipe, {});
  do {
    (void)out.send(zmq::buffer(beat), zmq::send_flags::dontwait);  // full: the intake is away; drop it
  } while (poll.wait(o.interval));
  return Status::success();
}

}  // namespace flashtts
