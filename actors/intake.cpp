#include "actors/intake.h"

#include <algorithm>
#include <atomic>
#include <random>
#include <cstring>
#include <chrono>
#include <set>
#include <unordered_map>

#include "actors/liveness.h"
#include "messages/error_codes.h"
#include "messages/internal.h"
#include "messages/protocol.h"
#include "runtime/base/listen.h"
#include "runtime/base/mailbox.h"
#include "runtime/base/poll_set.h"
#include "runtime/base/request_log.h"
#include "runtime/base/routes.h"

namespace flashtts {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kStatsTimeout = std::chrono::seconds(2);

// A request in flight.
struct Live {
  std::vector<std::string> envelope;  // routing frames to reply with
  std::string client;                 // the routing id (first envelope frame)
  std::string id;                     // the client's id, msgpack-encoded
  std::string type;
  std::string strategy;               // solve only, for the request log
  int32_t n = 0;                      // solve only
  uint64_t conn = 0;                  // the connection it came on (0: unknown, inproc)
  Clock::time_point arrived = Clock::now();
  Clock::time_point deadline = Clock::time_point::max();
};

struct PendingStats {
  uint64_t rid = 0;
  Clock::time_point deadline;
  std::map<std::string, std::string> replies;  // actor -> stats map (msgpack)
};

class Intake {
 public:
  Intake(const IntakeOptions& o, Mailbox& box, zmq::socket_t& router, zmq::socket_t& monitor)
      : o_(o), box_(box), router_(router), monitor_(monitor), peers_(o.remote, o.peer_timeout, Clock::now()) {
    // Request ids of this start never meet those of an earlier one still
    // held by actors in other processes.
    next_rid_ = uint64_t(std::random_device{}()) << 20;
    for (const char* a : {"beam_manager", "scheduler", "generator", "verifier", "memory_arbiter"})
      if (o.peers.count(a)) stats_peers_.push_back(a);
  }

  void on_client_message();
  // The dispatch of the other actors' messages (the handlers hold `this`).
  Routes internal_routes();
  // Applies the client socket's connection events that are waiting.
  void drain_monitor();
  void on_command(const std::string& cmd);
  void expire();
  std::chrono::milliseconds next_timeout() const;
  size_t live() const { return live_.size(); }

 private:
  void handle_request(std::vector<std::string> envelope, const std::string& payload, uint64_t conn);
  void on_disconnect(int fd);
  void start_stats(uint64_t rid, bool reset_peaks);
  void finish_stats(uint64_t qid);
  // Sends one frame to a client; false when the client is gone.
  bool send(const std::vector<std::string>& envelope, const std::string& payload);
  void reply_error(uint64_t rid, const std::string& code, const std::string& message, bool cancel_downstream);
  void reply_result(uint64_t rid, const std::string& result);
  void drop_client(const std::string& client);
  void on_liveness(const std::vector<Liveness::Event>& events);
  // The request log's line for a request that got its final reply (or
  // whose client went away): `outcome` is "ok" or the error code.
  void log_finished(uint64_t rid, const Live& l, const std::string& outcome, const std::string& error,
                    std::string_view result = {});
  void erase(uint64_t rid);

  const IntakeOptions& o_;
  Mailbox& box_;
  zmq::socket_t& router_;
  zmq::socket_t& monitor_;
  std::vector<std::string> stats_peers_;
  // The connection now open on each file descriptor. A descriptor is reused
  // as soon as its connection closes, so requests are tagged with this
  // serial number, never with the descriptor.
  std::unordered_map<int, uint64_t> conn_of_fd_;
  uint64_t next_conn_ = 0;
  std::unordered_map<uint64_t, Live> live_;
  std::map<std::pair<std::string, std::string>, uint64_t> by_client_;  // (client, id) -> rid
  std::unordered_map<uint64_t, PendingStats> stats_;                  // qid -> pending
  Liveness peers_;
  uint64_t next_rid_ = 0, next_qid_ = 0;
  bool draining_ = false;
  std::string drain_code_, drain_message_;
  Clock::time_point started_ = Clock::now();
  uint64_t n_requests_ = 0, n_rejected_ = 0, n_results_ = 0, n_errors_ = 0, n_gone_ = 0;
};

bool Intake::send(const std::vector<std::string>& envelope, const std::string& payload) {
  try {
    for (const auto& f : envelope) router_.send(zmq::buffer(f), zmq::send_flags::sndmore);
    router_.send(zmq::buffer(payload), zmq::send_flags::none);
    return true;
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return false;  // ROUTER_MANDATORY: the client has gone
    throw;
  }
}

void Intake::on_client_message() {
  std::vector<std::string> frames;
  int fd = -1;
  for (;;) {
    zmq::message_t m;
    if (!router_.recv(m, zmq::recv_flags::dontwait)) return;
    // The routing-id frame is made by the ROUTER (no fd); the frames off the
    // wire carry their connection's fd (-1 over inproc).
    int f = zmq_msg_get(m.handle(), ZMQ_SRCFD);
    if (f >= 0) fd = f;
    frames.push_back(m.to_string());
    if (!m.more()) break;
  }
  if (frames.size() < 2) return;
  // Which connection sent it: apply the connection events first. ZeroMQ's
  // I/O thread (one per context) reports a connection's close before its
  // descriptor is freed, and a new connection's accept before reading from
  // it, so every event that precedes this message is waiting now.
  drain_monitor();
  uint64_t conn = 0;
  if (auto it = conn_of_fd_.find(fd); fd >= 0 && it != conn_of_fd_.end()) conn = it->second;
  // DEALER clients send [payload]; REQ clients [empty, payload].
  std::vector<std::string> envelope = {frames[0]};
  size_t first = 1;
  if (frames.size() >= 3 && frames[1].empty()) {
    envelope.push_back("");
    first = 2;
  }
  if (frames.size() - first != 1) {
    ++n_rejected_;
    send(envelope, msg::encode_error("", msg::code::kBadMessage,
                                     "send one msgpack map per message; this one had " +
                                         std::to_string(frames.size() - first) + " frames"));
    return;
  }
  handle_request(std::move(envelope), frames[first], conn);
}

void Intake::handle_request(std::vector<std::string> envelope, const std::string& payload, uint64_t conn) {
  ++n_requests_;
  auto parsed = msg::parse_request(payload, o_.limits, o_.defaults);
  if (auto* e = std::get_if<msg::RequestError>(&parsed)) {
    ++n_rejected_;
    o_.log->debug("refused a request (id {}): {}", msg::id_text(e->id), e->message);
    send(envelope, msg::encode_error(e->id, e->code, e->message));
    return;
  }
  msg::ClientRequest& q = std::get<msg::ClientRequest>(parsed);
  const std::string& client = envelope[0];
  auto refuse = [&](const char* code, const std::string& message) {
    ++n_rejected_;
    send(envelope, msg::encode_error(q.id, code, message));
    if (q.type == "ping" || q.type == "cancel") return;
    Live l;
    l.id = q.id, l.type = q.type, l.strategy = q.solve.strategy, l.n = q.solve.n;
    log_finished(0, l, code, message);
  };

  if (q.type == "ping") {
    msg::MapWriter r;
    r.put("pong", true).put("protocol", msg::kProtocolVersion).put("server", "flashtts");
    r.put("uptime_ms", std::chrono::duration<double, std::milli>(Clock::now() - started_).count());
    send(envelope, msg::encode_result(q.id, "ping", r.bytes()));
    return;
  }
  if (q.type == "cancel") {
    auto it = by_client_.find({client, q.target});
    if (it == by_client_.end())
      return refuse(msg::code::kNotFound, "no request with id " + msg::id_text(q.target) + " is in flight");
    reply_error(it->second, msg::code::kCancelled, "cancelled by the client", true);
    msg::MapWriter r;
    r.put_raw("cancelled", q.target);
    send(envelope, msg::encode_result(q.id, "cancel", r.bytes()));
    return;
  }
  if (draining_) return refuse(drain_code_.c_str(), drain_message_);
  for (const auto& a : actors_needed_by(q.type))
    if (std::string why = peers_.unavailable(a); !why.empty())
      return refuse(msg::code::kServerFailure, why + "; retry once it is back");
  if (by_client_.count({client, q.id}))
    return refuse(msg::code::kDuplicateId, "a request with id " + msg::id_text(q.id) + " is still in flight");
  if ((int64_t)live_.size() >= o_.limits.max_live_requests)
    return refuse(msg::code::kOverloaded, "the server has " + std::to_string(live_.size()) +
                                              " requests in flight, its limit; retry later");

  uint64_t rid = ++next_rid_;
  o_.log->debug("request {} ({} {} from connection {})", rid, q.type, msg::id_text(q.id), conn);
  Live l;
  l.envelope = std::move(envelope);
  l.client = client;
  l.id = q.id;
  l.type = q.type;
  if (q.type == "solve") l.strategy = q.solve.strategy, l.n = q.solve.n;
  l.conn = conn;
  int64_t deadline_ms = q.type == "solve" ? q.solve.deadline_ms
                        : q.type == "generate" ? q.generate.deadline_ms
                        : q.type == "score" ? q.score.deadline_ms : 0;
  if (deadline_ms > 0) l.deadline = Clock::now() + std::chrono::milliseconds(deadline_ms);
  by_client_[{client, q.id}] = rid;
  live_.emplace(rid, std::move(l));

  if (q.type == "stats") return start_stats(rid, q.reset_peaks);
  msg::Start s;
  s.rid = rid;
  s.kind = q.type;
  s.solve = std::move(q.solve);
  s.generate = std::move(q.generate);
  s.score = std::move(q.score);
  box_.post("beam_manager", s);
}

Routes Intake::internal_routes() {
  Routes r(o_.log);
  r.on<msg::Reply>([this](const msg::Reply& m) {
        if (m.ok) reply_result(m.rid, m.result);
        else reply_error(m.rid, m.code, m.message, false);
      })
      .on<msg::Progress>([this](const msg::Progress& p) {
        auto it = live_.find(p.rid);
        if (it == live_.end()) return;
        if (!send(it->second.envelope, msg::encode_progress(it->second.id, p.event))) drop_client(it->second.client);
      })
      .on<msg::Heartbeat>([this](const msg::Heartbeat& h) { on_liveness(peers_.heard(h, Clock::now())); })
      .on<msg::StatsReply>([this](const msg::StatsReply& s) {
        auto it = stats_.find(s.qid);
        if (it == stats_.end()) return;
        it->second.replies[s.actor] = s.stats;
        if (it->second.replies.size() == stats_peers_.size()) finish_stats(s.qid);
      });
  return r;
}

void Intake::start_stats(uint64_t rid, bool reset_peaks) {
  uint64_t qid = ++next_qid_;
  stats_[qid] = PendingStats{rid, Clock::now() + kStatsTimeout, {}};
  for (const auto& a : stats_peers_) box_.post(a, msg::StatsQuery{qid, reset_peaks});
  if (stats_peers_.empty()) finish_stats(qid);
}

void Intake::finish_stats(uint64_t qid) {
  PendingStats p = std::move(stats_.at(qid));
  stats_.erase(qid);
  if (!live_.count(p.rid)) return;
  msg::MapWriter actors;
  std::vector<std::string> missing;
  for (const auto& a : stats_peers_) {
    auto it = p.replies.find(a);
    if (it == p.replies.end()) missing.push_back(a);
    else actors.put_raw(a, it->second);
  }
  msg::MapWriter mine;
  mine.put("live_requests", uint64_t(live_.size() - 1)).put("requests", n_requests_).put("rejected", n_rejected_);
  mine.put("results", n_results_).put("errors", n_errors_).put("clients_gone", n_gone_);
  actors.put("intake", mine);
  msg::MapWriter r;
  r.put("actors", actors);
  if (!missing.empty()) r.put("missing", missing);
  reply_result(p.rid, r.bytes());
}

void Intake::reply_result(uint64_t rid, const std::string& result) {
  auto it = live_.find(rid);
  if (it == live_.end()) return;  // already answered (cancelled, timed out)
  ++n_results_;
  const bool sent = send(it->second.envelope, msg::encode_result(it->second.id, it->second.type, result));
  if (!sent) ++n_gone_;
  log_finished(rid, it->second, sent ? "ok" : "client_gone", "", result);
  erase(rid);
}

void Intake::reply_error(uint64_t rid, const std::string& code, const std::string& message, bool cancel_downstream) {
  auto it = live_.find(rid);
  if (it == live_.end()) return;
  ++n_errors_;
  if (!send(it->second.envelope, msg::encode_error(it->second.id, code, message))) ++n_gone_;
  log_finished(rid, it->second, code, message);
  if (cancel_downstream && it->second.type != "stats") box_.post("beam_manager", msg::Cancel{rid, code});
  erase(rid);
}

void Intake::log_finished(uint64_t rid, const Live& l, const std::string& outcome, const std::string& error,
                          std::string_view result) {
  RequestRecord r;
  r.rid = rid, r.packed_id = l.id, r.kind = l.type, r.strategy = l.strategy, r.n = l.n;
  r.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - l.arrived).count();
  r.outcome = outcome, r.error = error;
  if (!result.empty()) read_result_tokens(result, &r);
  log_request(o_.log, o_.log_format, r);
}

void Intake::erase(uint64_t rid) {
  auto it = live_.find(rid);
  if (it == live_.end()) return;
  by_client_.erase({it->second.client, it->second.id});
  live_.erase(it);
}

// Nobody is left to answer: cancel quietly so the work stops and frees KV.
void Intake::drop_client(const std::string& client) {
  std::vector<uint64_t> rids;
  for (const auto& [rid, l] : live_)
    if (l.client == client) rids.push_back(rid);
  for (uint64_t rid : rids) {
    if (live_.at(rid).type != "stats") box_.post("beam_manager", msg::Cancel{rid, "client gone"});
    log_finished(rid, live_.at(rid), "client_gone", "the client went away; cancelled");
    erase(rid);
  }
  if (!rids.empty()) {
    ++n_gone_;
    o_.log->info("a client went away; cancelled its {} request(s)", rids.size());
  }
}

void Intake::on_disconnect(int fd) {
  auto it = conn_of_fd_.find(fd);
  if (it == conn_of_fd_.end()) return;
  const uint64_t conn = it->second;
  conn_of_fd_.erase(it);
  o_.log->debug("connection {} (descriptor {}) closed", conn, fd);
  std::set<std::string> clients;
  for (const auto& [rid, l] : live_)
    if (l.conn == conn) clients.insert(l.client);
  for (const auto& c : clients) drop_client(c);
}

void Intake::drain_monitor() {
  zmq::message_t ev, addr;
  while (monitor_.recv(ev, zmq::recv_flags::dontwait)) {
    if (ev.more()) (void)monitor_.recv(addr, zmq::recv_flags::none);
    if (ev.size() < 6) continue;
    uint16_t event;
    int32_t fd;
    std::memcpy(&event, ev.data(), 2);
    std::memcpy(&fd, static_cast<const char*>(ev.data()) + 2, 4);
    if (event == ZMQ_EVENT_ACCEPTED) conn_of_fd_[fd] = ++next_conn_;
    else if (event == ZMQ_EVENT_DISCONNECTED) on_disconnect(fd);
  }
}

void Intake::on_liveness(const std::vector<Liveness::Event>& events) {
  for (const auto& e : events) {
    if (!e.lost) {
      o_.log->info("{}", e.sentence);
      continue;
    }
    const auto needs = [&](const Live& l) {
      const auto& a = actors_needed_by(l.type);
      return std::find(a.begin(), a.end(), e.actor) != a.end();
    };
    std::vector<uint64_t> rids;
    for (const auto& [rid, l] : live_)
      if (needs(l)) rids.push_back(rid);
    for (uint64_t rid : rids) reply_error(rid, msg::code::kServerFailure, e.sentence, true);
    o_.log->error("{}; failed {} request(s) that need it", e.sentence, rids.size());
  }
}

void Intake::on_command(const std::string& cmd) {
  if (cmd.rfind("$DRAIN ", 0) != 0) return;
  std::string rest = cmd.substr(7);
  size_t sp = rest.find(' ');
  draining_ = true;
  drain_code_ = rest.substr(0, sp);
  drain_message_ = sp == std::string::npos ? "the server is stopping" : rest.substr(sp + 1);
  std::vector<uint64_t> rids;
  for (const auto& [rid, l] : live_) rids.push_back(rid);
  for (uint64_t rid : rids) reply_error(rid, drain_code_, drain_message_, true);
  // Let the replies leave before the socket closes (LINGER is 0 otherwise).
  router_.set(zmq::sockopt::linger, 2000);
  o_.log->info("draining: answered {} request(s) in flight with '{}'", rids.size(), drain_code_);
}

void Intake::expire() {
  auto now = Clock::now();
  std::vector<uint64_t> late;
  for (const auto& [rid, l] : live_)
    if (l.deadline <= now) late.push_back(rid);
  for (uint64_t rid : late) reply_error(rid, msg::code::kDeadlineExceeded, "the request's deadline passed", true);
  std::vector<uint64_t> qids;
  for (const auto& [qid, p] : stats_)
    if (p.deadline <= now) qids.push_back(qid);
  for (uint64_t q : qids) finish_stats(q);
  on_liveness(peers_.expire(now));
}

std::chrono::milliseconds Intake::next_timeout() const {
  auto next = Clock::time_point::max();
  for (const auto& [rid, l] : live_) next = std::min(next, l.deadline);
  for (const auto& [qid, p] : stats_) next = std::min(next, p.deadline);
  next = std::min(next, peers_.next_deadline());
  if (next == Clock::time_point::max()) return std::chrono::milliseconds(-1);
  auto d = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()) + std::chrono::milliseconds(1);
  return std::max(d, std::chrono::milliseconds(0));
}

std::string monitor_endpoint() {
  static std::atomic<uint64_t> n{0};
  return "inproc://flashtts-intake-monitor-" + std::to_string(n.fetch_add(1));
}

}  // namespace

Status run_intake(zmq::context_t& ctx, ActorPipe& pipe, const IntakeOptions& o) {
  auto mb = Mailbox::open(ctx, o.inbox, o.peers);
  if (!mb) return mb.error();
  zmq::socket_t router(ctx, zmq::socket_type::router);
  configure_socket(router);
  router.set(zmq::sockopt::router_mandatory, 1);
  router.set(zmq::sockopt::sndhwm, 0);
  // A frame far over the limit is dropped by ZeroMQ with its connection;
  // up to 4x the limit it arrives and gets a too_large error.
  router.set(zmq::sockopt::maxmsgsize, int64_t(o.limits.max_message_bytes) * 4);
  std::string mon_ep = monitor_endpoint();
  if (zmq_socket_monitor(router.handle(), mon_ep.c_str(), ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) != 0)
    return make_error(std::string("cannot monitor the client socket: ") + zmq_strerror(zmq_errno()));
  zmq::socket_t monitor(ctx, zmq::socket_type::pair);
  configure_socket(monitor);
  monitor.connect(mon_ep);
  std::vector<Listening> bound;  // removes the ipc socket files on return
  for (const auto& ep : o.client_endpoints) {
    auto l = listen(router, ep);
    if (!l) return l.error();
    bound.push_back(std::move(*l));
  }
  Intake in(o, *mb, router, monitor);
  pipe.ready();
  for (const auto& ep : o.client_endpoints) o.log->info("listening on {}", ep);

  const Routes internal = in.internal_routes();
  PollSet poll(pipe, {&mb->inbox(), &router, &monitor});
  while (poll.wait(in.next_timeout(), [&](const std::string& c) { in.on_command(c); })) {
    FLASHTTS_TRY(internal.drain(*mb));
    if (poll.readable(1))
      for (int i = 0; i < 256; ++i) {
        zmq::pollitem_t p{router.handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&p, 1, std::chrono::milliseconds(0));
        if (!(p.revents & ZMQ_POLLIN)) break;
        in.on_client_message();
      }
    in.drain_monitor();
    in.expire();
  }
  zmq_socket_monitor(router.handle(), nullptr, 0);
  return Status::success();
}

}  // namespace flashtts
