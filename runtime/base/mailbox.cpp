#include "runtime/base/mailbox.h"

namespace flashtts {

Expected<Mailbox> Mailbox::open(zmq::context_t& ctx, const std::string& inbox_endpoint,
                                const std::map<std::string, std::string>& peers) {
  zmq::socket_t in(ctx, zmq::socket_type::pull);
  configure_socket(in);
  in.set(zmq::sockopt::rcvhwm, 0);
  auto bound = listen(in, inbox_endpoint);
  if (!bound) return bound.error();
  Mailbox mb(std::move(in), std::move(*bound));
  for (const auto& [peer, ep] : peers) {
    zmq::socket_t out(ctx, zmq::socket_type::push);
    configure_socket(out);
    out.set(zmq::sockopt::sndhwm, 0);
    try {
      out.connect(ep);
    } catch (const zmq::error_t& e) {
      return make_error("cannot connect to " + peer + " at '" + ep + "': " + e.what());
    }
    mb.out_.emplace(peer, std::move(out));
  }
  return mb;
}

bool Mailbox::send(const std::string& peer, const std::string& bytes) {
  auto it = out_.find(peer);
  assert(it != out_.end());
  // HWM 0 never fills; EAGAIN means the peer's socket is gone (an actor
  // that failed): drop rather than block this actor forever.
  if (!it->second.send(zmq::buffer(bytes), zmq::send_flags::dontwait)) {
    ++n_dropped_;
    return false;
  }
  ++n_sent_;
  return true;
}

std::optional<std::string> Mailbox::try_recv() {
  zmq::message_t m;
  if (!inbox_.recv(m, zmq::recv_flags::dontwait)) return std::nullopt;
  ++n_received_;
  return m.to_string();
}

}  // namespace flashtts
