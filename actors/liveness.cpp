#include "actors/liveness.h"

#include <cstdio>

namespace flashtts {

namespace {

std::string seconds(std::chrono::milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", double(d.count()) / 1000);
  return buf;
}

}  // namespace

Liveness::Liveness(std::map<std::string, std::string> remote, std::chrono::milliseconds timeout,
                   Clock::time_point start)
    : timeout_(timeout), start_(start) {
  for (auto& [actor, ep] : remote) peers_[actor] = Peer{std::move(ep), "", start, false, ""};
}

std::string Liveness::describe(const std::string& actor) const {
  return "actor " + actor + " (" + peers_.at(actor).endpoint + ")";
}

std::vector<Liveness::Event> Liveness::heard(const msg::Heartbeat& hb, Clock::time_point now) {
  std::vector<Event> out;
  for (const auto& actor : hb.actors) {
    auto it = peers_.find(actor);
    if (it == peers_.end()) continue;  // runs here, or not ours to watch
    Peer& p = it->second;
    const bool restarted = !p.incarnation.empty() && p.incarnation != hb.incarnation;
    if (restarted && !p.lost)
      out.push_back({actor, true, describe(actor) + " restarted; what it was doing is lost"});
    if (p.lost || restarted || p.incarnation.empty())
      out.push_back({actor, false, describe(actor) + (p.incarnation.empty() ? " is up" : " is back")});
    p.incarnation = hb.incarnation;
    p.last = now;
    p.lost = false;
    p.why.clear();
  }
  return out;
}

std::vector<Liveness::Event> Liveness::expire(Clock::time_point now) {
  std::vector<Event> out;
  for (auto& [actor, p] : peers_) {
    if (p.lost || now - p.last < timeout_) continue;
    p.lost = true;
    auto silent = std::chrono::duration_cast<std::chrono::milliseconds>(now - p.last);
    p.why = p.incarnation.empty()
                ? describe(actor) + " has not been heard from since the server started " + seconds(silent) +
                      " ago; is its process (flashtts serve --actors " + actor + ") running?"
                : describe(actor) + " went silent: no heartbeat for " + seconds(silent);
    out.push_back({actor, true, p.why});
  }
  return out;
}

Liveness::Clock::time_point Liveness::next_deadline() const {
  auto next = Clock::time_point::max();
  for (const auto& [actor, p] : peers_)
    if (!p.lost) next = std::min(next, p.last + timeout_);
  return next;
}

std::string Liveness::unavailable(const std::string& actor) const {
  auto it = peers_.find(actor);
  return it == peers_.end() || !it->second.lost ? "" : it->second.why;
}

const std::vector<std::string>& actors_needed_by(const std::string& type) {
  static const std::vector<std::string> none, solve = {"beam_manager", "scheduler", "generator", "verifier"},
                                              generate = {"beam_manager", "scheduler", "generator"},
                                              score = {"beam_manager", "scheduler", "verifier"};
  if (type == "solve") return solve;
  if (type == "generate") return generate;
  if (type == "score") return score;
  return none;
}

}  // namespace flashtts
