#include "actors/memory_arbiter.h"

#include <optional>

#include "actors/memory_policy.h"
#include "messages/internal.h"
#include "runtime/mailbox.h"
#include "runtime/poll_set.h"

namespace flashtts {

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

  std::optional<ModelFootprint> gen, ver;
  std::optional<MemorySplit> split;
  PollSet poll(pipe, {&box.inbox()});
  while (poll.wait(std::chrono::milliseconds(-1))) {
    while (auto bytes = box.try_recv()) {
      auto env = msg::open(*bytes);
      if (!env) {
        o.log->warn("dropped a message: {}", env.error().message);
        continue;
      }
      if (env->type == msg::Weights::kType) {
        auto w = msg::decode<msg::Weights>(*env);
        if (!w) return w.error();
        ModelFootprint f{w->weight_bytes, w->kv_bytes_per_token, w->block_size};
        std::optional<ModelFootprint>* slot = w->role == "generator" ? &gen : w->role == "verifier" ? &ver : nullptr;
        if (!slot) return make_error("weights report from unknown role '" + w->role + "'");
        // The same model announced again (it answered the weights query too,
        // or its process restarted) is worth a debug line, not an info one.
        const bool again = *slot && (*slot)->weight_bytes == f.weight_bytes &&
                           (*slot)->kv_bytes_per_token == f.kv_bytes_per_token && (*slot)->block_size == f.block_size;
        *slot = f;
        o.log->log(again ? spdlog::level::debug : spdlog::level::info, "{}: weights {:.1f} MiB, KV {} bytes/token",
                   w->role, double(f.weight_bytes) / (1 << 20), f.kv_bytes_per_token);
        if (!gen || !ver) continue;
        auto grant = [&](const char* role, int64_t bytes, const ModelFootprint& f) {
          int64_t block = f.kv_bytes_per_token * f.block_size;
          msg::Grant g{role, bytes, (bytes / block) * f.block_size};
          box.post(role, g);
          box.post("scheduler", g);
          o.log->log(again ? spdlog::level::debug : spdlog::level::info, "granted the {} {:.1f} MiB of KV ({} tokens)",
                     role, double(bytes) / (1 << 20), g.kv_tokens);
        };
        if (split) {
          // A model that announces itself again: a process of it restarted
          // (or answered the weights query). It gets its share again; the
          // split stays as it is, since the other pool cannot shrink yet.
          if (w->role == "generator") grant("generator", split->generator_kv_bytes, *gen);
          else grant("verifier", split->verifier_kv_bytes, *ver);
          continue;
        }
        auto s = (*policy)->split(o.budget_bytes, *gen, *ver);
        if (!s) return s.error();
        split = *s;
        grant("generator", split->generator_kv_bytes, *gen);
        grant("verifier", split->verifier_kv_bytes, *ver);
      } else if (env->type == msg::StatsQuery::kType) {
        auto q = msg::decode<msg::StatsQuery>(*env);
        if (!q) continue;
        msg::MapWriter st;
        st.put("policy", (*policy)->name()).put("budget_bytes", o.budget_bytes);
        if (gen) st.put("generator_weight_bytes", gen->weight_bytes);
        if (ver) st.put("verifier_weight_bytes", ver->weight_bytes);
        if (split) {
          st.put("generator_kv_bytes", split->generator_kv_bytes);
          st.put("verifier_kv_bytes", split->verifier_kv_bytes);
        }
        box.post("intake", msg::StatsReply{q->qid, "memory_arbiter", st.bytes()});
      } else {
        o.log->warn("ignored a '{}' message", env->type);
      }
    }
  }
  return Status::success();
}

}  // namespace flashtts
