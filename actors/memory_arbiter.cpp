#include "actors/memory_arbiter.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include "actors/memory_demand.h"
#include "actors/memory_policy.h"
#include "actors/roofline_split.h"
#include "actors/turn_schedule.h"
#include "actors/weights_report.h"
#include "messages/internal.h"
#include "runtime/base/mailbox.h"
#include "runtime/base/poll_set.h"
#include "runtime/base/routes.h"

namespace flashtts {

namespace {

// The arbiter's state: the models, the split, and a move under way. A move
// shrinks one pool first and grows the other by what the shrink gave back
// once the shrinking model says so (PoolSize), so the two never hold more
// than the budget together.
class Arbiter {
 public:
  Arbiter(const MemoryArbiterOptions& o, std::unique_ptr<MemorySplitPolicy> policy, Mailbox& box)
      : o_(o), policy_(std::move(policy)), box_(box), demand_(o.demand_window_s, o.max_batch) {}

  Status on_weights(const msg::Weights& w);
  void on_pool_size(const msg::PoolSize& p);
  void on_load(const msg::QueueLoad& q) {
    demand_.add(q, DemandWindow::Clock::now());
    maybe_rebalance();
  }
  void on_load(const msg::EngineLoad& e) {
    demand_.add(e, DemandWindow::Clock::now());
    maybe_rebalance();
  }
  void on_stats(const msg::StatsQuery& q);
  void on_use(const msg::DeviceUse& u);
  Status on_turn_done(const msg::TurnDone& d);
  // How long the loop may wait for a message before on_tick(): until a turn
  // that must pass is due; -1 = until a message comes.
  std::chrono::milliseconds next_wake() const;
  void on_tick() { maybe_pass_turn(); }

 private:
  struct Move {
    std::string growing;  // the model that gets what the shrink gives back
    uint64_t serial = 0;  // of the grant awaited
    bool growing_now = false;
    int32_t settle_jobs = 0;  // the growing model's (Grant::settle_jobs)
  };

  // The KV memory both pools share: the budget less both models' weights,
  // or, taking turns, less the larger model's only.
  int64_t kv_with(bool turns) const {
    return budget_ - std::max(gen_->weight_bytes, ver_->weight_bytes) -
           (turns ? 0 : std::min(gen_->weight_bytes, ver_->weight_bytes));
  }
  int64_t kv_total() const { return kv_with(turns_on_); }
  // Whether the models may start or stop taking turns while they serve:
  // "adaptive" under a policy that moves memory. The pools then reserve room
  // for the KV memory of taking turns.
  bool mode_may_change() const { return o_.offload == "adaptive" && policy_->moves(); }
  int64_t kv_reserved() const { return kv_with(turns_on_ || mode_may_change()); }
  bool maybe_change_mode(const MemoryState& st, DemandWindow::Clock::time_point now);
  Status on_mode_turn_done(const msg::TurnDone& d);
  void on_mode_pool_size(const msg::PoolSize& p);
  bool decide_turns() const;
  void maybe_pass_turn();
  int64_t automatic_budget() const;
  void grant(const std::string& role, int64_t bytes, spdlog::level::level_enum level, int32_t settle_jobs = 0);
  void maybe_rebalance();

  const MemoryArbiterOptions& o_;
  std::unique_ptr<MemorySplitPolicy> policy_;
  Mailbox& box_;
  DemandWindow demand_;
  std::optional<ModelFootprint> gen_, ver_;
  std::optional<MemorySplit> split_;
  std::optional<Move> move_;
  int64_t budget_ = 0;  // once both models announced themselves
  uint64_t serial_ = 0;
  int64_t moves_ = 0;
  bool frozen_ = false;  // a pool refused to resize
  DemandWindow::Clock::time_point last_move_{}, last_decision_{};

  // memory.offload: whether the models take turns on the device, whose
  // turn it is, and the first grant's serial (the verifier's, its weights
  // leaving the device) until it is answered.
  bool turns_on_ = false;
  TurnSchedule turns_;
  uint64_t turns_start_serial_ = 0;
  // A change between taking turns and both models on the device, under way.
  // To turns: the leaving model's weights go (DeviceTurn off, `serial`),
  // then both pools grow into what they left. To both: both pools shrink
  // (their grants' serials, 0 once answered), then the other model's weights
  // come back (`serial`), then both hear that the turns ended.
  struct ModeChange {
    bool to_turns = false;
    uint64_t serial = 0;
    uint64_t gen_serial = 0, ver_serial = 0;
  };
  std::optional<ModeChange> mode_;
  int64_t mode_changes_ = 0;
  DemandWindow::Clock::time_point last_mode_change_{};
};

// Changing between taking turns and both on the device must predict this
// much faster an iteration (and waits offload_dwell_s after the last change,
// unless a job cannot run the way it is).
constexpr double kModeHysteresis = 0.25;
// A job's context grows with every step: staying with both models on the
// device must fit the largest job this much larger.
constexpr double kModeJobGrowth = 1.25;
// Until an upload was measured: bytes/s assumed of the host link (PCIe 4.0
// x16 in practice).
constexpr double kAssumedHostLink = 20e9;

bool Arbiter::maybe_change_mode(const MemoryState& st, DemandWindow::Clock::time_point now) {
  if (!mode_may_change() || mode_ || move_ || turns_.switching() || turns_start_serial_ != 0) return false;
  if (!(st.gen.known() || st.gen.jobs <= 0) || !(st.ver.known() || st.ver.jobs <= 0)) return false;
  if (!st.gen.latency.known() || !st.ver.latency.known()) return false;
  if (st.gen.jobs <= 0 && st.ver.jobs <= 0) return false;  // nothing to predict from
  const int64_t kv_both = kv_with(false), kv_turns = kv_with(true);
  auto upload = [&](const char* role, const ModelFootprint& f) {
    const double s = turns_.last_upload_s(role);
    return s >= 0 ? s : (double)f.weight_bytes / kAssumedHostLink;
  };
  const double uploads = upload("generator", *gen_) + upload("verifier", *ver_);
  MemoryState grown = st;
  grown.gen.min_tokens = (int64_t)((double)st.gen.min_tokens * kModeJobGrowth);
  grown.ver.min_tokens = (int64_t)((double)st.ver.min_tokens * kModeJobGrowth);
  const BestSplit both = kv_both > 0 ? predict_best_split(grown, kv_both) : BestSplit{0, INFINITY};
  const BestSplit turns = predict_best_split(st, kv_turns);
  const double t_turns = turns.seconds + uploads;
  const bool dwelt = mode_changes_ == 0 || std::chrono::duration<double>(now - last_mode_change_).count() >= o_.offload_dwell_s;
  if (turns_on_) {
    if (!(both.seconds * (1 + kModeHysteresis) < t_turns) || !(dwelt || !std::isfinite(t_turns))) return false;
    // Both pools shrink to the best split with both on the device (neither
    // grows, so the two never hold more than the budget), then the other
    // model's weights come back.
    mode_ = ModeChange{};
    const int64_t g = std::min(both.generator_kv_bytes, split_->generator_kv_bytes);
    const int64_t v = std::min(kv_both - g, split_->verifier_kv_bytes);
    turns_.stop();
    grant("generator", g, spdlog::level::debug);
    mode_->gen_serial = serial_;
    grant("verifier", v, spdlog::level::debug);
    mode_->ver_serial = serial_;
    o_.log->info("memory.offload: both models on the device again (an iteration predicted {:.1f} ms, against {:.1f} "
                 "ms taking turns, {:.1f} ms of it uploads)",
                 both.seconds * 1e3, t_turns * 1e3, uploads * 1e3);
  } else {
    if (!(t_turns * (1 + kModeHysteresis) < both.seconds) || !(dwelt || !std::isfinite(both.seconds))) return false;
    // The model with less work leaves the device first.
    const char* leaving = st.gen.jobs <= st.ver.jobs ? "generator" : "verifier";
    mode_ = ModeChange{true, ++serial_, 0, 0};
    box_.post(leaving, msg::DeviceTurn{leaving, false, serial_});
    o_.log->info("memory.offload: the models take turns on the device (an iteration predicted {:.1f} ms, {:.1f} ms "
                 "of it uploads, against {:.1f} ms with both on it); the {}'s weights leave",
                 t_turns * 1e3, uploads * 1e3, both.seconds * 1e3, leaving);
  }
  ++mode_changes_;
  last_mode_change_ = now;
  return true;
}

Status Arbiter::on_mode_turn_done(const msg::TurnDone& d) {
  if (!d.error.empty()) return weights_move_error(d, !mode_->to_turns);
  const auto now = DemandWindow::Clock::now();
  if (mode_->to_turns) {
    // The weights left: both pools grow in proportion into the KV memory of
    // taking turns; the grants tell both models the turns began.
    const int64_t before = split_->generator_kv_bytes + split_->verifier_kv_bytes;
    turns_on_ = true;
    turns_.start(now, other_model(d.role));
    const int64_t g = (int64_t)((double)split_->generator_kv_bytes * (double)kv_total() / (double)before);
    split_ = MemorySplit{g, kv_total() - g};
  } else {
    // The weights came back: both models on the device; the grants tell
    // them the turns ended.
    turns_on_ = false;
  }
  mode_.reset();
  grant("generator", split_->generator_kv_bytes, spdlog::level::debug);
  grant("verifier", split_->verifier_kv_bytes, spdlog::level::debug);
  maybe_pass_turn();
  return Status::success();
}

void Arbiter::on_mode_pool_size(const msg::PoolSize& p) {
  if (p.serial == mode_->gen_serial) mode_->gen_serial = 0, split_->generator_kv_bytes = p.kv_bytes;
  else if (p.serial == mode_->ver_serial) mode_->ver_serial = 0, split_->verifier_kv_bytes = p.kv_bytes;
  else return;
  if (!p.error.empty()) {
    o_.log->warn("the {} kept its pool ({}); the split stays as it is", p.role, p.error);
    frozen_ = true;
  }
  if (mode_->gen_serial != 0 || mode_->ver_serial != 0) return;
  // Both pools within the KV memory of both models on the device: the
  // weights that were off come back.
  const std::string back = other_model(turns_.resident());
  mode_->serial = ++serial_;
  box_.post(back, msg::DeviceTurn{back, true, serial_});
}

bool Arbiter::decide_turns() const {
  if (o_.offload == "on") return true;
  if (o_.offload != "auto" && o_.offload != "adaptive") return false;
  // Both stay when the split gives each a useful pool: one sequence of the
  // model's positions.
  auto useful = [](const ModelFootprint& f) {
    return f.kv_bytes_per_token * (f.max_position > 0 ? f.max_position : 4096);
  };
  auto s = policy_->split(budget_, *gen_, *ver_);
  return !s || s->generator_kv_bytes < useful(*gen_) || s->verifier_kv_bytes < useful(*ver_);
}

std::chrono::milliseconds Arbiter::next_wake() const {
  return turns_on_ ? turns_.wake_in(DemandWindow::Clock::now()) : std::chrono::milliseconds(-1);
}

void Arbiter::on_use(const msg::DeviceUse& u) {
  turns_.set_wants(u.role, u.wants);
  maybe_pass_turn();
}

void Arbiter::maybe_pass_turn() {
  if (!turns_on_) return;
  if (auto t = turns_.next(DemandWindow::Clock::now(), &serial_)) box_.post(t->role, *t);
}

Status Arbiter::on_turn_done(const msg::TurnDone& d) {
  if (mode_ && d.serial == mode_->serial) return on_mode_turn_done(d);
  auto next = turns_.done(d, DemandWindow::Clock::now(), &serial_);
  if (!next) return next.error();
  if (*next) {
    box_.post((*next)->role, **next);
  } else if (d.on && d.role == turns_.resident()) {
    o_.log->debug("the {}'s turn on the device (its weights took {:.3f} s to load)", d.role, d.seconds);
    maybe_pass_turn();
  }
  return Status::success();
}

int64_t Arbiter::automatic_budget() const {
  // A GPU: what the margin leaves, less the backends' workspaces.
  if (o_.device_bytes > 0) return o_.device_bytes - gen_->workspace_bytes - ver_->workspace_bytes;
  // The CPU: both models and room for max_batch sequences of kAutoTokens
  // each, within what the host can spare.
  constexpr int64_t kAutoTokens = 2048;
  const int64_t weights = gen_->weight_bytes + ver_->weight_bytes;
  const int64_t kv = (gen_->kv_bytes_per_token + ver_->kv_bytes_per_token) * o_.max_batch * kAutoTokens;
  return o_.host_bytes > weights ? std::min(weights + kv, o_.host_bytes) : weights + kv;
}

void Arbiter::grant(const std::string& role, int64_t bytes, spdlog::level::level_enum level, int32_t settle_jobs) {
  const bool gen = role == "generator";
  const ModelFootprint &f = gen ? *gen_ : *ver_, &other = gen ? *ver_ : *gen_;
  // A pool that moves reserves room for everything but one block of the other.
  const int64_t max = policy_->moves() ? kv_reserved() - other.block_bytes() : bytes;
  msg::Grant g{role, bytes, f.tokens(bytes), max, f.tokens(max), ++serial_, f.max_position, settle_jobs};
  // Grants on the way back to both models on the device say the turns ended.
  const bool turns = turns_on_ && !(mode_ && !mode_->to_turns);
  g.turns = turns, g.resident = !turns || role == turns_.resident();
  box_.post(role, g);
  box_.post("scheduler", g);
  o_.log->log(level, "granted the {} {:.1f} MiB of KV ({} tokens)", role, double(bytes) / (1 << 20), g.kv_tokens);
}

Status Arbiter::on_weights(const msg::Weights& w) {
  ModelFootprint f{w.weight_bytes, w.kv_bytes_per_token, w.block_size, w.max_position, w.workspace_bytes};
  std::optional<ModelFootprint>* slot = w.role == "generator" ? &gen_ : w.role == "verifier" ? &ver_ : nullptr;
  if (!slot) return make_error("weights report from unknown role '" + w.role + "'");
  // The same model announced again (its process restarted) is worth a
  // debug line, not an info one.
  const bool again = *slot && (*slot)->weight_bytes == f.weight_bytes &&
                     (*slot)->kv_bytes_per_token == f.kv_bytes_per_token && (*slot)->block_size == f.block_size;
  // An answer to the query this arbiter sent at its start, from a model
  // whose own announcement it already has: nothing to grant again (a
  // restarted model announces without being asked, and is granted again).
  if (again && w.answer) {
    o_.log->debug("{}: weights already announced", w.role);
    return Status::success();
  }
  *slot = f;
  demand_.set_cost(w.role == "generator", cost_of(w));
  const auto level = again ? spdlog::level::debug : spdlog::level::info;
  o_.log->log(level, "{}: weights {:.1f} MiB, workspaces {:.1f} MiB, KV {} bytes/token", w.role,
              double(f.weight_bytes) / (1 << 20), double(f.workspace_bytes) / (1 << 20), f.kv_bytes_per_token);
  if (!gen_ || !ver_) return Status::success();
  if (split_) {
    // A model that announces itself again: a process of it restarted. It
    // gets its share again; taking turns, the generator not before the
    // verifier's weights have left.
    if (turns_start_serial_ != 0 && w.role == "generator") return Status::success();
    grant(w.role, w.role == "generator" ? split_->generator_kv_bytes : split_->verifier_kv_bytes, level);
    return Status::success();
  }
  budget_ = o_.budget_bytes > 0 ? o_.budget_bytes : automatic_budget();
  if (o_.budget_bytes == 0)
    o_.log->info("memory budget {:.1f} MiB (automatic)", double(budget_) / (1 << 20));
  turns_on_ = decide_turns();
  // Taking turns, the smaller model's weights leave room when they leave:
  // the policy splits what kv_total() says.
  auto s = policy_->split(budget_ + kv_total() - kv_with(false), *gen_, *ver_);
  if (!s) {
    if (turns_on_) {
      char why[256];
      std::snprintf(why, sizeof why,
                    "memory budget of %.1f MiB cannot hold the larger model's weights (%.1f MiB) and KV cache for "
                    "both, even with the models taking turns on the device (memory.offload); raise memory.budget_mb",
                    double(budget_) / (1 << 20), double(std::max(gen_->weight_bytes, ver_->weight_bytes)) / (1 << 20));
      return make_error(why);
    }
    if (o_.offload == "off")
      return make_error(s.error().message + "; memory.offload = \"auto\" lets the models take turns on the device");
    return s.error();
  }
  split_ = *s;
  if (turns_on_) {
    o_.log->info("memory.offload: the models take turns on the device (weights {:.1f} + {:.1f} MiB, budget {:.1f} "
                 "MiB); KV {:.1f} MiB",
                 double(gen_->weight_bytes) / (1 << 20), double(ver_->weight_bytes) / (1 << 20),
                 double(budget_) / (1 << 20), double(kv_total()) / (1 << 20));
    // The verifier first, its weights leaving the device at once; the
    // generator's come once they have (its PoolSize).
    grant("verifier", split_->verifier_kv_bytes, level);
    turns_start_serial_ = serial_;
    return Status::success();
  }
  grant("generator", split_->generator_kv_bytes, level);
  grant("verifier", split_->verifier_kv_bytes, level);
  return Status::success();
}

void Arbiter::maybe_rebalance() {
  if (!split_ || move_ || mode_ || frozen_ || !policy_->moves()) return;
  const auto now = DemandWindow::Clock::now();
  if (now - last_decision_ < std::chrono::milliseconds(o_.decide_every_ms)) return;
  last_decision_ = now;
  MemoryState st;
  st.kv_bytes = kv_total();
  st.generator = *gen_, st.verifier = *ver_;
  st.current = *split_;
  st.gen = demand_.generator(now), st.ver = demand_.verifier(now);
  st.since_move_s = moves_ == 0 ? 1e9 : std::chrono::duration<double>(now - last_move_).count();
  if (maybe_change_mode(st, now)) return;
  if (turns_.switching()) return;  // a pool must not move while weights do
  auto target = policy_->rebalance(st);
  if (!target) {
    if (!policy_->last_reason().empty()) o_.log->debug("stay: {}", policy_->last_reason());
    return;
  }
  o_.log->info("move: {}", policy_->last_reason());
  Move m;
  const bool gen_shrinks = target->generator_kv_bytes < split_->generator_kv_bytes;
  m.growing = gen_shrinks ? "verifier" : "generator";
  // Each model's misses count again once about one iteration's jobs have
  // finished at its new size.
  const int32_t gen_settle = (int32_t)std::ceil(st.gen.held()), ver_settle = (int32_t)std::ceil(st.ver.held());
  m.settle_jobs = gen_shrinks ? ver_settle : gen_settle;
  grant(gen_shrinks ? "generator" : "verifier",
        gen_shrinks ? target->generator_kv_bytes : target->verifier_kv_bytes, spdlog::level::debug,
        gen_shrinks ? gen_settle : ver_settle);
  m.serial = serial_;
  move_ = m;
  ++moves_;
  last_move_ = now;
}

void Arbiter::on_pool_size(const msg::PoolSize& p) {
  if (turns_start_serial_ != 0 && p.serial == turns_start_serial_) {
    turns_start_serial_ = 0;
    turns_.start(DemandWindow::Clock::now());
    grant("generator", split_->generator_kv_bytes, spdlog::level::info);
    maybe_pass_turn();
    return;
  }
  if (mode_) return on_mode_pool_size(p);
  if (!move_ || p.serial != move_->serial) return;  // a grant that moved nothing
  if (!p.error.empty()) {
    // A pool that cannot resize (CUDA, for now) will not later: stop moving.
    o_.log->warn("the {} kept its pool ({}); the split stays as it is", p.role, p.error);
    frozen_ = true;
  }
  if (p.role == "generator") split_->generator_kv_bytes = p.kv_bytes;
  else split_->verifier_kv_bytes = p.kv_bytes;
  if (move_->growing_now || !p.error.empty()) {
    move_.reset();
    return;
  }
  // What the shrink gave back goes to the other model.
  const int64_t other = kv_total() - p.kv_bytes;
  if (move_->growing == "generator") split_->generator_kv_bytes = other;
  else split_->verifier_kv_bytes = other;
  grant(move_->growing, other, spdlog::level::debug, move_->settle_jobs);
  move_->serial = serial_;
  move_->growing_now = true;
}

void Arbiter::on_stats(const msg::StatsQuery& q) {
  msg::MapWriter st;
  st.put("policy", policy_->name()).put("budget_bytes", budget_).put("moves", moves_);
  if (gen_) st.put("generator_weight_bytes", gen_->weight_bytes);
  if (ver_) st.put("verifier_weight_bytes", ver_->weight_bytes);
  if (split_) {
    st.put("generator_kv_bytes", split_->generator_kv_bytes);
    st.put("verifier_kv_bytes", split_->verifier_kv_bytes);
  }
  st.put("offload", turns_on_).put("offload_changes", mode_changes_);
  st.put("turn_switches", turns_.switches()).put("turn_upload_s", turns_.upload_s());
  box_.post("intake", msg::StatsReply{q.qid, "memory_arbiter", st.bytes()});
}

}  // namespace

Status run_memory_arbiter(zmq::context_t& ctx, ActorPipe& pipe, const MemoryArbiterOptions& o) {
  auto policy = make_memory_policy(o.policy, o.generator_share);
  if (!policy) return policy.error();
  auto mb = Mailbox::open(ctx, o.inbox, o.peers);
  if (!mb) return mb.error();
  Mailbox& box = *mb;
  pipe.ready();
  // Models already loaded by running processes (this arbiter restarted)
  // announce themselves again; new ones announce when they load.
  for (const char* role : {"generator", "verifier"})
    if (o.peers.count(role)) box.post(role, msg::WeightsQuery{});

  Arbiter a(o, std::move(*policy), box);
  // A weights report or a turn's end that does not decode ends the arbiter:
  // without it no grant follows and the pipeline would wait forever.
  Routes routes(o.log);
  routes.on<msg::Weights>([&](const msg::Weights& w) { return a.on_weights(w); }, Routes::Decode::kStrict)
      .on<msg::TurnDone>([&](const msg::TurnDone& d) { return a.on_turn_done(d); }, Routes::Decode::kStrict)
      .on<msg::PoolSize>([&](const msg::PoolSize& p) { a.on_pool_size(p); })
      .on<msg::QueueLoad>([&](const msg::QueueLoad& q) { a.on_load(q); })
      .on<msg::EngineLoad>([&](const msg::EngineLoad& e) { a.on_load(e); })
      .on<msg::DeviceUse>([&](const msg::DeviceUse& u) { a.on_use(u); })
      .on<msg::StatsQuery>([&](const msg::StatsQuery& q) { a.on_stats(q); });
  PollSet poll(pipe, {&box.inbox()});
  while (poll.wait(a.next_wake())) {
    a.on_tick();
    FLASHTTS_TRY(routes.drain(box));
  }
  return Status::success();
}

}  // namespace flashtts
