#include "runtime/supervisor.h"

#include <unistd.h>

#include <algorithm>
#include <map>

#include "actors/beam_manager.h"
#include "actors/generator.h"
#include "actors/intake.h"
#include "actors/memory_arbiter.h"
#include "actors/sched_policy.h"
#include "actors/scheduler.h"
#include "actors/verifier.h"
#include "runtime/generation_defaults.h"
#include "runtime/base/heartbeat.h"
#include "runtime/base/listen.h"

namespace flashtts {

namespace {

// Which actors each actor sends to (its outboxes).
const std::map<std::string, std::vector<std::string>>& peers_of() {
  static const std::map<std::string, std::vector<std::string>> p = {
      {"intake", {"beam_manager", "scheduler", "generator", "verifier", "memory_arbiter"}},
      {"beam_manager", {"intake", "scheduler"}},
      {"scheduler", {"beam_manager", "generator", "verifier", "memory_arbiter", "intake"}},
      {"generator", {"scheduler", "memory_arbiter", "intake"}},
      {"verifier", {"scheduler", "memory_arbiter", "intake"}},
      {"memory_arbiter", {"generator", "verifier", "scheduler", "intake"}},
  };
  return p;
}

std::map<std::string, std::string> peers(const Config& c, const std::string& actor) {
  std::map<std::string, std::string> out;
  for (const auto& p : peers_of().at(actor)) out[p] = c.endpoints.actors.at(p);
  return out;
}

// Why the models cannot take turns on `device` (memory.offload), or "".
std::string offload_unavailable(const DeviceContext& device) {
  if (device.kind() == DeviceKind::Cpu) return "the CPU's weights are in host memory already";
  if (device.simulated() && device.sim_card()->host_link_bandwidth <= 0)
    return std::string(device.sim_card()->display) + " shares the host's memory";
  return "";
}

bool runs_here(const std::vector<std::string>& only, const std::string& actor) {
  return only.empty() || std::find(only.begin(), only.end(), actor) != only.end();
}

ActorBody body_of(const Config& c, const std::string& name, const LogSink& logs,
                  const std::shared_ptr<const DeviceContext>& device, const std::vector<std::string>& only) {
  const std::string inbox = c.endpoints.actors.at(name);
  Logger log = logs.make(name);
  if (name == "intake") {
    IntakeOptions o;
    o.inbox = inbox, o.peers = peers(c, name), o.client_endpoints = c.endpoints.clients;
    for (const auto& a : actor_names())
      if (!runs_here(only, a)) o.remote[a] = c.endpoints.actors.at(a);
    o.peer_timeout = std::chrono::milliseconds(c.endpoints.peer_timeout_ms);
    o.limits = c.limits, o.defaults = c.defaults, o.log = log, o.log_format = logs.format();
    return [o](zmq::context_t& ctx, ActorPipe& p) { return run_intake(ctx, p, o); };
  }
  if (name == "beam_manager") {
    BeamManagerOptions o{.inbox = inbox,
                         .peers = peers(c, name),
                         .policy_dir = c.models.policy,
                         .prompt_format = c.models.prompt_format,
                         .system_prompt = c.models.system_prompt,
                         .step_delimiter = c.step_delimiter,
                         .log = log,
                         .speculation = c.policies.speculation,
                         .speculation_bounded = c.policies.speculation_max_slowdown > 0,
                         .speculation_prune = c.policies.speculation_prune,
                         .live_beams = c.policies.live_beams,
                         .speculation_bins = c.policies.speculation_bins,
                         .drop_dead_kv = c.policies.eviction == "pruned"};
    return [o](zmq::context_t& ctx, ActorPipe& p) { return run_beam_manager(ctx, p, o); };
  }
  if (name == "scheduler") {
    SchedulerOptions o{inbox, peers(c, name), c.policies.scheduling, log};
    o.block_size = c.memory.block_size;
    // Enough jobs out to fill a batch and cover the round trip of a result;
    // the rest wait here, in the policy's order.
    o.window = c.engine.max_batch + std::max(4, c.engine.max_batch / 8);
    o.max_overtaken = c.policies.scheduling_max_overtaken;
    o.by_request = c.policies.request_order == "arrival";
    o.reserve = c.policies.scheduling_reserve;
    o.request_admission = c.policies.request_admission;
    return [o](zmq::context_t& ctx, ActorPipe& p) { return run_scheduler(ctx, p, o); };
  }
  if (name == "generator" || name == "verifier") {
    const bool gen = name == "generator";
    EngineActorOptions e;
    e.model_dir = gen ? c.models.policy : c.models.prm, e.inbox = inbox, e.peers = peers(c, name);
    e.block_size = c.memory.block_size, e.device = device, e.log = log;
    e.n_threads = gen ? c.engine.generator_threads : c.engine.verifier_threads;
    e.prefill_chunk = c.engine.prefill_chunk, e.max_batch = c.engine.max_batch;
    e.by_priority = is_tree_policy(c.policies.scheduling);
    e.by_request = c.policies.request_order == "arrival";
    e.drop_dead_kv = c.policies.eviction == "pruned";
    if (gen) {
      GeneratorOptions o{e, c.step_delimiter, c.policies.speculation_max_slowdown};
      return [o](zmq::context_t& ctx, ActorPipe& p) { return run_generator(ctx, p, o); };
    }
    VerifierOptions o{e, c.models.prm_family};
    return [o](zmq::context_t& ctx, ActorPipe& p) { return run_verifier(ctx, p, o); };
  }
  MemoryArbiterOptions o{inbox, peers(c, name), int64_t(c.memory.budget_mb * (1 << 20)), c.memory.generator_share,
                         c.policies.memory_split, log};
  o.max_batch = c.engine.max_batch;
  o.offload = offload_unavailable(*device).empty() ? c.memory.offload : "none";
  if (o.budget_bytes == 0) {
    // A GPU keeps a margin for what is not KV, weights or the backends'
    // workspaces (which the arbiter subtracts as the engines report them):
    // the CUDA context, cuBLAS's handles, the allocator's slack.
    const int64_t mem = device->kind() == DeviceKind::Cpu ? 0
                        : device->simulated()             ? device->sim_card()->memory_bytes
                                                          : device->device_memory();
    o.device_bytes = mem > 0 ? mem - std::max<int64_t>(int64_t(1) << 30, mem / 20) : 0;
    o.host_bytes = (int64_t)(sysconf(_SC_AVPHYS_PAGES) * sysconf(_SC_PAGESIZE)) / 2;
  }
  return [o](zmq::context_t& ctx, ActorPipe& p) { return run_memory_arbiter(ctx, p, o); };
}

}  // namespace

Expected<std::unique_ptr<Supervisor>> Supervisor::start(zmq::context_t& ctx, const Config& config, const LogSink& logs,
                                                        std::vector<std::string> only) {
  for (const auto& n : only)
    if (std::find(actor_names().begin(), actor_names().end(), n) == actor_names().end())
      return make_error("unknown actor '" + n + "' (known: memory_arbiter, generator, verifier, scheduler, "
                        "beam_manager, intake)");
  // Every endpoint this process will listen on, checked before the models
  // load: a second server on one configuration stops here, in milliseconds.
  for (const auto& name : actor_names()) {
    if (!runs_here(only, name)) continue;
    if (Status st = check_can_listen(config.endpoints.actors.at(name)); !st.ok())
      return make_error(st.message() + " (endpoints." + name + ")");
    if (name == "intake")
      for (const auto& ep : config.endpoints.clients)
        if (Status st = check_can_listen(ep); !st.ok()) return make_error(st.message() + " (endpoints.clients)");
  }
  // The policy's generation_config.json: request defaults, before the
  // intake copies them (runtime/generation_defaults.h).
  Config cfg = config;
  auto sampling = apply_generation_defaults(&cfg);
  if (!sampling) return sampling.error();
  std::unique_ptr<Supervisor> s(new Supervisor(ctx, cfg, logs.make("supervisor")));
  if (!sampling->empty()) s->log_->info("{}", *sampling);
  auto device = DeviceContext::open(config.engine.device);
  if (!device) return device.error();
  // A warning: "auto" was asked for a GPU, and the user should learn why there is none.
  if (!(*device)->fallback().empty()) s->log_->warn("{}", (*device)->fallback());
  if ((*device)->simulated()) s->log_->info("device: {}", (*device)->description());
  else s->log_->debug("device: {}", (*device)->description());
  s->device_ = *device;
  if (std::string why = offload_unavailable(**device); !why.empty() && cfg.memory.offload == "on") {
    s->shutdown();
    return make_error("memory.offload = \"on\": " + why + " (use \"auto\" or \"off\")");
  }
  for (const auto& name : actor_names()) {
    if (!runs_here(only, name)) continue;
    auto a = Actor::start(ctx, name, body_of(cfg, name, logs, *device, only));
    if (!a) {
      s->shutdown();
      return a.error();
    }
    s->log_->debug("actor {} ready", name);
    s->actors_.push_back(std::move(*a));
  }
  // The intake runs elsewhere: tell it, from now on, that these actors live.
  if (!runs_here(only, "intake")) {
    HeartbeatOptions h{config.endpoints.actors.at("intake"), only, std::chrono::milliseconds(config.endpoints.heartbeat_ms)};
    auto a = Actor::start(ctx, "heartbeat", [h](zmq::context_t& ctx, ActorPipe& p) { return run_heartbeat(ctx, p, h); });
    if (!a) {
      s->shutdown();
      return a.error();
    }
    s->actors_.push_back(std::move(*a));
  }
  return s;
}

Supervisor::~Supervisor() { shutdown(); }

std::optional<std::string> Supervisor::watch(std::chrono::milliseconds timeout) {
  if (actors_.empty()) return std::nullopt;
  std::vector<zmq::pollitem_t> items;
  for (auto& a : actors_) items.push_back({a->pipe().handle(), 0, ZMQ_POLLIN, 0});
  zmq::poll(items.data(), items.size(), timeout);
  for (size_t i = 0; i < actors_.size(); ++i) {
    if (!(items[i].revents & ZMQ_POLLIN)) continue;
    auto why = actors_[i]->poll_failure();
    if (!why) continue;
    std::string what = "actor " + actors_[i]->name() + " failed: " + *why;
    log_->error("{}", what);
    shutdown("server_failure", what + "; the server is stopping");
    return what;
  }
  return std::nullopt;
}

std::vector<std::string> Supervisor::probe() {
  std::vector<std::string> silent;
  for (auto& a : actors_)
    if (!a->probe()) silent.push_back(a->name());
  return silent;
}

void Supervisor::shutdown(const std::string& code, const std::string& message) {
  if (actors_.empty()) return;
  for (auto& a : actors_)
    if (a->name() == "intake") a->send("$DRAIN " + code + " " + message);
  bool cut = false;
  for (auto it = actors_.rbegin(); it != actors_.rend(); ++it) {
    Actor& a = **it;
    if (a.stop(std::chrono::seconds(5))) continue;
    // A body stuck outside its poll loop: wake every blocking call with
    // ETERM, give it a moment, then leave it behind.
    log_->error("actor {} did not stop within 5 s; shutting the ZeroMQ context down", a.name());
    if (!cut) {
      ctx_.shutdown();
      cut = true;
    }
    if (!a.stop(std::chrono::seconds(2))) {
      log_->error("actor {} is still running; abandoning it", a.name());
      a.abandon();
    }
  }
  actors_.clear();
}

}  // namespace flashtts
