#include "runtime/base/poll_set.h"

namespace flashtts {

PollSet::PollSet(ActorPipe& pipe, std::initializer_list<zmq::socket_t*> sockets) : pipe_(pipe) {
  items_.push_back({pipe.socket().handle(), 0, ZMQ_POLLIN, 0});
  for (zmq::socket_t* s : sockets) items_.push_back({s->handle(), 0, ZMQ_POLLIN, 0});
}

bool PollSet::wait(std::chrono::milliseconds timeout, const std::function<void(const std::string&)>& on_command) {
  for (auto& it : items_) it.revents = 0;
  zmq::poll(items_.data(), items_.size(), timeout);
  while (items_[0].revents & ZMQ_POLLIN) {
    std::string cmd = pipe_.recv_command();
    if (pipe_.terminated()) return false;
    if (on_command && !cmd.empty()) on_command(cmd);
    zmq::pollitem_t p{pipe_.socket().handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&p, 1, std::chrono::milliseconds(0));
    items_[0].revents = p.revents;
  }
  return true;
}

}  // namespace flashtts
