#include "runtime/http_exchange.h"

#include <algorithm>

namespace flashtts::http {

namespace {

// How long one wait for a frame lasts before the stop flag is looked at again.
constexpr std::chrono::milliseconds kSlice{100};

// One wait for a frame; a signal that interrupts the poll counts as no frame.
Expected<std::optional<ServerFrame>> recv_once(Client& c, std::chrono::milliseconds t) {
  try {
    return c.recv(t);
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return std::optional<ServerFrame>();
    return make_error(std::string("the gateway's socket failed: ") + e.what());
  }
}

}  // namespace

Expected<ClientPool::Lease> ClientPool::acquire() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(c));
    }
  }
  auto c = Client::connect(ctx_, endpoint_);
  if (!c) return c.error();
  return Lease(this, std::make_unique<Client>(std::move(*c)));
}

void ClientPool::give_back(std::unique_ptr<Client> c) {
  std::lock_guard lock(mu_);
  idle_.push_back(std::move(c));
}

void ClientPool::close() {
  std::lock_guard lock(mu_);
  idle_.clear();
}

void Exchange::send(const std::string& type, const msg::MapWriter& fields) {
  ids_.push_back(lease_->send(type, fields));
  final_.push_back(false);
}

std::variant<ExchangeFrame, HttpError> Exchange::next() {
  for (;;) {
    if (stopping_ && stopping_->load()) {
      cancel_rest();
      return HttpError{503, "shutting_down", "the HTTP gateway is stopping", ""};
    }
    auto now = Clock::now();
    if (now >= deadline_) {
      cancel_rest();
      return HttpError{504, "timeout", "no answer within the gateway's request timeout; the request was cancelled", ""};
    }
    auto left = std::min(kSlice, std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - now) +
                                     std::chrono::milliseconds(1));
    auto f = recv_once(*lease_, left);
    if (!f) {
      cancel_rest();
      return HttpError{500, "internal", f.error().message, ""};
    }
    if (!f->has_value()) continue;
    auto it = std::find(ids_.begin(), ids_.end(), (*f)->id);
    if (it == ids_.end()) continue;  // a frame of a request given up on earlier
    size_t i = size_t(it - ids_.begin());
    if (final_[i]) continue;
    ExchangeFrame out{i, std::move(**f)};
    if (out.final()) {
      final_[i] = true;
      ++finals_;
    }
    return out;
  }
}

void Exchange::cancel_rest() {
  if (done()) return;
  for (size_t i = 0; i < ids_.size(); ++i) {
    if (final_[i]) continue;
    msg::MapWriter c;
    c.put_raw("target", ids_[i]);
    lease_->send("cancel", c);
  }
  // The server answers each target's final frame before the cancel's own
  // result; waiting for the targets is enough (Client::give_up does the same).
  auto until = Clock::now() + Client::kCancelGrace;
  while (!done() && Clock::now() < until) {
    auto f = recv_once(*lease_, kSlice);
    if (!f) break;
    if (!f->has_value() || (*f)->type == "progress") continue;
    auto it = std::find(ids_.begin(), ids_.end(), (*f)->id);
    if (it == ids_.end()) continue;
    size_t i = size_t(it - ids_.begin());
    if (!final_[i]) {
      final_[i] = true;
      ++finals_;
    }
  }
  // Whatever did not come in time is skipped by later waits on this Client.
  std::fill(final_.begin(), final_.end(), true);
  finals_ = ids_.size();
}

}  // namespace flashtts::http
