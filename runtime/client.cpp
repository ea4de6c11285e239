#include "runtime/client.h"

#include <cstdio>

#include "messages/envelope.h"
#include "runtime/base/socket_options.h"

namespace flashtts {

namespace {

using Clock = std::chrono::steady_clock;

Error frame_error(const ServerFrame& f) { return make_error(f.code + ": " + f.message); }

}  // namespace

std::string seconds_text(std::chrono::milliseconds d) {
  char b[32];
  if (d.count() % 1000 == 0)
    std::snprintf(b, sizeof b, "%lld s", (long long)(d.count() / 1000));
  else
    std::snprintf(b, sizeof b, "%g s", d.count() / 1000.0);
  return b;
}

Expected<Client> Client::connect(zmq::context_t& ctx, const std::string& endpoint,
                                 std::optional<std::chrono::milliseconds> check_within) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  configure_socket(s);
  try {
    s.connect(endpoint);
  } catch (const zmq::error_t& e) {
    return make_error("cannot connect to '" + endpoint + "': " + e.what());
  }
  Client c(std::move(s), endpoint);
  if (check_within) FLASHTTS_TRY(c.ping(*check_within));
  return c;
}

Expected<Pong> Client::ping(std::chrono::milliseconds timeout) {
  std::string id = send("ping", msg::MapWriter());
  auto f = wait_final(id, Clock::now() + timeout, nullptr);
  if (!f) return make_error("cannot ping the server at " + endpoint_ + ": " + f.error().message);
  if (!f->has_value())
    return make_error("no flashtts server answers at " + endpoint_ + " (no reply to ping within " +
                      seconds_text(timeout) + ")");
  const ServerFrame& fr = **f;
  if (fr.type == "error")
    return make_error("the server at " + endpoint_ + " refused a ping: " + fr.code + ": " + fr.message);
  Pong p;
  bool pong = false;
  if (fr.request != "ping" || !fr.body.get("pong", &pong).ok() || !pong || !fr.body.get_opt("server", &p.server).ok())
    return make_error("the server at " + endpoint_ + " answered a ping with something other than a pong");
  (void)fr.body.get_opt("protocol", &p.protocol);
  (void)fr.body.get_opt("uptime_ms", &p.uptime_ms);
  return p;
}

std::string Client::send(const std::string& type, const msg::MapWriter& fields) {
  uint64_t id = ++next_id_;
  msg::MapWriter w;
  w.put("v", msg::kProtocolVersion).put("type", type).put("id", id);
  send_raw(w.merge(fields).bytes());
  msgpack::sbuffer packed;
  msgpack::pack(packed, id);
  return std::string(packed.data(), packed.size());
}

void Client::send_raw(const std::string& bytes) { s_.send(zmq::buffer(bytes), zmq::send_flags::none); }

Expected<std::optional<ServerFrame>> Client::recv(std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{s_.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, timeout);
  if (!(item.revents & ZMQ_POLLIN)) return std::optional<ServerFrame>();
  zmq::message_t m;
  (void)s_.recv(m, zmq::recv_flags::none);
  msg::DecodeLimits lim;
  lim.max_bytes = 256u << 20;
  lim.max_items = 1u << 24;
  lim.max_depth = 16;
  auto env = msg::open(m.to_string(), lim);
  if (!env) return make_error("bad frame from the server: " + env.error().message);
  ServerFrame f;
  f.type = env->type;
  f.id = env->fields.is_nil("id") ? "" : env->fields.raw("id");
  if (f.type == "result") {
    FLASHTTS_TRY(env->fields.get("request", &f.request));
    FLASHTTS_TRY(env->fields.get("result", &f.body));
  } else if (f.type == "error") {
    FLASHTTS_TRY(env->fields.get("code", &f.code));
    FLASHTTS_TRY(env->fields.get("message", &f.message));
  } else if (f.type == "progress") {
    FLASHTTS_TRY(env->fields.get("event", &f.body));
  } else {
    return make_error("unknown frame type '" + f.type + "' from the server");
  }
  return std::optional<ServerFrame>(std::move(f));
}

Expected<std::optional<ServerFrame>> Client::wait_final(const std::string& id, Clock::time_point deadline,
                                                        const std::function<void(const msg::MapReader&)>& on_progress) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return std::optional<ServerFrame>();
    auto f = recv(left);
    if (!f) return f.error();
    // A timeout slice, or a frame of another request (an earlier one given up on).
    if (!f->has_value() || (*f)->id != id) continue;
    if ((*f)->type == "progress") {
      if (on_progress) on_progress((*f)->body);
      continue;
    }
    return f;
  }
}

Expected<ServerFrame> Client::call(const std::string& type, const msg::MapWriter& fields,
                                   std::chrono::milliseconds timeout,
                                   const std::function<void(const msg::MapReader&)>& on_progress) {
  std::string id = send(type, fields);
  auto f = wait_final(id, Clock::now() + timeout, on_progress);
  if (!f) return f.error();
  if (!f->has_value()) {
    // A ping or a cancel is answered at once and never in flight: nothing to cancel.
    if (type == "ping" || type == "cancel")
      return make_error("no reply to " + type + " within " + seconds_text(timeout));
    return give_up(id, timeout);
  }
  if ((*f)->type == "error") return frame_error(**f);
  return std::move(**f);
}

Expected<ServerFrame> Client::give_up(const std::string& id, std::chrono::milliseconds waited,
                                      std::chrono::milliseconds grace) {
  msg::MapWriter c;
  c.put_raw("target", id);
  send("cancel", c);
  // The server answers the target first (its "cancelled" error, or the result
  // that beat the cancel), then the cancel; waiting for the target is enough.
  auto f = wait_final(id, Clock::now() + grace, nullptr);
  std::string what = "timed out: no answer within " + seconds_text(waited);
  if (!f) return make_error(what + "; " + f.error().message);
  if (!f->has_value())
    return make_error(what + "; a cancel was sent, but the server did not confirm it within " + seconds_text(grace));
  if ((*f)->type == "result") return std::move(**f);
  if ((*f)->code == "cancelled") return make_error(what + "; the request was cancelled on the server");
  return frame_error(**f);
}

}  // namespace flashtts
