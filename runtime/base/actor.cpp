#include "runtime/base/actor.h"

#include <atomic>
#include <thread>

namespace flashtts {

namespace {

std::string pipe_endpoint(const std::string& name) {
  static std::atomic<uint64_t> counter{0};
  return "inproc://flashtts-pipe-" + name + "-" + std::to_string(counter.fetch_add(1));
}

void send_str(zmq::socket_t& s, const std::string& text) { s.send(zmq::buffer(text), zmq::send_flags::none); }

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

}  // namespace

void ActorPipe::ready() {
  assert(!ready_);
  ready_ = true;
  send_str(s_, "$READY");
}

std::string ActorPipe::recv_command() {
  zmq::message_t m;
  if (!s_.recv(m, zmq::recv_flags::none)) return "";
  std::string cmd = m.to_string();
  if (cmd == "$TERM") terminated_ = true;
  if (cmd == "$PING") {
    send_str(s_, "$PONG");
    return "";
  }
  return cmd;
}

Expected<std::unique_ptr<Actor>> Actor::start(zmq::context_t& ctx, std::string name, ActorBody body,
                                              std::chrono::milliseconds ready_timeout) {
  std::string ep = pipe_endpoint(name);
  zmq::socket_t parent(ctx, zmq::socket_type::pair);
  parent.set(zmq::sockopt::linger, 0);
  parent.bind(ep);
  std::unique_ptr<Actor> a(new Actor(name, std::move(parent)));

  a->thread_ = std::thread([&ctx, ep, body = std::move(body), name, exited = a->exited_]() {
    struct Exit {
      std::atomic<bool>& flag;
      ~Exit() { flag = true; }
    } on_exit{*exited};
    try {
      zmq::socket_t child(ctx, zmq::socket_type::pair);
      child.set(zmq::sockopt::linger, 0);
      child.connect(ep);
      ActorPipe pipe(child);
      Status s;
      try {
        s = body(ctx, pipe);
      } catch (const zmq::error_t& e) {
        if (e.num() == ETERM) return;  // the context is going away: leave quietly
        s = make_error(std::string("ZeroMQ error: ") + e.what());
      } catch (const std::exception& e) {
        s = make_error(std::string("uncaught exception: ") + e.what());
      } catch (...) {
        s = make_error("uncaught exception of unknown type");
      }
      if (!pipe.is_ready()) {
        send_str(child, "$FAIL " + (s.ok() ? std::string("returned before it was ready") : s.message()));
        return;
      }
      if (!pipe.terminated()) {
        send_str(child, "$FAIL " + (s.ok() ? std::string("stopped without being asked to") : s.message()));
        while (!pipe.terminated()) pipe.recv_command();
      }
      send_str(child, "$DONE");
    } catch (const zmq::error_t&) {
      // ETERM while failing or acknowledging: the creator is shutting down.
    }
  });

  // Wait for "$READY" or an early "$FAIL".
  zmq::pollitem_t item{a->pipe_.handle(), 0, ZMQ_POLLIN, 0};
  auto deadline = std::chrono::steady_clock::now() + ready_timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      a->abandon();
      return make_error("actor " + name + " did not become ready within " + std::to_string(ready_timeout.count()) +
                        " ms");
    }
    zmq::poll(&item, 1, left);
    if (!(item.revents & ZMQ_POLLIN)) continue;
    zmq::message_t m;
    (void)a->pipe_.recv(m, zmq::recv_flags::none);
    std::string cmd = m.to_string();
    if (cmd == "$READY") return a;
    if (starts_with(cmd, "$FAIL ")) {
      a->thread_.join();
      return make_error("actor " + name + " failed to start: " + cmd.substr(6));
    }
  }
}

Actor::~Actor() {
  if (thread_.joinable() && !stop(std::chrono::seconds(5))) abandon();
}

void Actor::send(const std::string& command) {
  if (thread_.joinable()) send_str(pipe_, command);
}

std::optional<std::string> Actor::poll_failure(std::chrono::milliseconds timeout) {
  if (failure_) return failure_;
  if (!thread_.joinable()) return std::nullopt;
  zmq::pollitem_t item{pipe_.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, timeout);
  while (item.revents & ZMQ_POLLIN) {
    zmq::message_t m;
    if (!pipe_.recv(m, zmq::recv_flags::dontwait)) break;
    std::string cmd = m.to_string();
    if (cmd == "$PONG") ping_unanswered_ = false;
    if (starts_with(cmd, "$FAIL ")) {
      failure_ = cmd.substr(6);
      return failure_;
    }
    zmq::poll(&item, 1, std::chrono::milliseconds(0));
  }
  return std::nullopt;
}

bool Actor::probe() {
  if (ping_unanswered_) return false;
  if (thread_.joinable()) {
    send_str(pipe_, "$PING");
    ping_unanswered_ = true;
  }
  return true;
}

bool Actor::stop(std::chrono::milliseconds timeout) {
  if (!thread_.joinable()) return true;
  try {
    if (!term_sent_) {
      send_str(pipe_, "$TERM");
      term_sent_ = true;
    }
    zmq::pollitem_t item{pipe_.handle(), 0, ZMQ_POLLIN, 0};
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      zmq::poll(&item, 1, left);
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::message_t m;
      (void)pipe_.recv(m, zmq::recv_flags::none);
      std::string cmd = m.to_string();
      if (cmd == "$DONE") break;
      if (cmd == "$PONG") ping_unanswered_ = false;
      if (starts_with(cmd, "$FAIL ") && !failure_) failure_ = cmd.substr(6);
    }
  } catch (const zmq::error_t&) {
    // The context was shut down: the body sees ETERM at its next socket
    // call and returns; wait for that, but not past the timeout.
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!*exited_) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  thread_.join();
  return true;
}

void Actor::abandon() {
  if (thread_.joinable()) thread_.detach();
}

}  // namespace flashtts
