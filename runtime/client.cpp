#include "runtime/client.h"

#include "messages/envelope.h"
#include "runtime/mailbox.h"

namespace flashtts {

Expected<Client> Client::connect(zmq::context_t& ctx, const std::string& endpoint) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  configure_socket(s);
  try {
    s.connect(endpoint);
  } catch (const zmq::error_t& e) {
    return make_error("cannot connect to '" + endpoint + "': " + e.what());
  }
  return Client(std::move(s));
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

Expected<ServerFrame> Client::call(const std::string& type, const msg::MapWriter& fields,
                                   std::chrono::milliseconds timeout,
                                   const std::function<void(const msg::MapReader&)>& on_progress) {
  std::string id = send(type, fields);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      msg::MapWriter c;
      c.put_raw("target", id);
      send("cancel", c);
      return make_error("no reply within " + std::to_string(timeout.count()) + " ms");
    }
    auto f = recv(left);
    if (!f) return f.error();
    if (!f->has_value() || (*f)->id != id) continue;  // timeout slice, or a reply to an earlier request
    ServerFrame& fr = **f;
    if (fr.type == "progress") {
      if (on_progress) on_progress(fr.body);
      continue;
    }
    if (fr.type == "error") return make_error(fr.code + ": " + fr.message);
    return std::move(fr);
  }
}

}  // namespace flashtts
