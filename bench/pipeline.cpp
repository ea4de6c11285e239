// What the actor pipeline costs on top of the engine, measured side by side
// in one run:
//   1. one actor hop: a GenDone-sized message bounced between two Mailboxes
//      (PUSH/PULL, the sockets every actor uses) over inproc:// and ipc://,
//      as raw bytes and with msg::encode + msg::open + decode on both ends;
//   2. one request through the whole pipeline (Supervisor with all six
//      actors, a Client over inproc:// and over ipc://) against the same work
//      done directly on Engines in this process:
//        ping                  client -> intake -> client, no engine;
//        generate (N and 1)    vs generate() (greedy, same prompt length);
//        score                 vs the PRM pass the verifier does (prefix
//                              reuse), and score_positions() for reference;
//        solve best-of-N       vs generate() of the N samples in one batch
//                              plus one PRM pass (same seeds: same samples),
//                              with the pipeline's stats breakdown.
// Overhead = the median of the paired differences (each pipeline request runs
// next to its engine request, the order rotating), and the difference of the
// minima. Every request has its own prompt (a unique first KV block), so no
// side gains from a prefix another request computed.
//
//   flashtts-bench-pipeline [--policy DIR --prm DIR] [--threads 2] [--requests 30]
//                           [--max-tokens 16] [--prompt-tokens 20] [--solves 5] [--json FILE]
//
// Without --policy/--prm, tiny random Qwen2 models are written with
// flashtts-mkmodel (in this program's parent build folder) into a temp folder.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "gpu/chat_format.h"
#include "gpu/generate.h"
#include "gpu/open_model.h"
#include "gpu/prm_format.h"
#include "messages/envelope.h"
#include "messages/internal.h"
#include "runtime/client.h"
#include "runtime/base/clock.h"
#include "runtime/base/mailbox.h"
#include "runtime/supervisor.h"

using namespace flashtts;
using json = nlohmann::ordered_json;
namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------------------
// Samples and the machine

struct Samples {
  std::vector<double> v;
  void add(double x) { v.push_back(x); }
  double quantile(double q) const {
    if (v.empty()) return 0;
    std::vector<double> s = v;
    std::sort(s.begin(), s.end());
    return s[std::min(s.size() - 1, (size_t)(q * (double)(s.size() - 1) + 0.5))];
  }
  double median() const { return quantile(0.5); }
  double min() const { return quantile(0); }
  double p99() const { return quantile(0.99); }
};

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) {
      size_t c = line.find(':');
      return c == std::string::npos ? line : line.substr(c + 2);
    }
  return "unknown CPU";
}

// ---------------------------------------------------------------------------
// Models

// flashtts-mkmodel sits in the build folder; this program in build/bench/.
fs::path mkmodel_path() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return self.parent_path().parent_path() / "flashtts-mkmodel";
}

Status write_tiny_models(const fs::path& dir) {
  const std::string shape = " --hidden 256 --layers 4 --heads 8 --kv-heads 2 --intermediate 768 --vocab 2048 --seed 7";
  for (auto [name, arch] : {std::pair{"policy", "qwen2"}, {"prm", "qwen2-prm"}}) {
    std::string cmd = mkmodel_path().string() + " --out " + (dir / name).string() + " --arch " + arch + shape +
                      " > /dev/null";
    if (std::system(cmd.c_str()) != 0) return make_error("failed: " + cmd);
  }
  return Status::success();
}

// ---------------------------------------------------------------------------
// 1. One actor hop

// A GenDone as the generator sends it for a 16-token job.
msg::GenDone sample_gen_done() {
  msg::GenDone d;
  d.job_id = 123456, d.rid = 4242, d.beam = 3;
  for (int i = 0; i < 16; ++i) d.tokens.push_back(1000 + 37 * i);
  d.text = "so the answer is 12, and twice that is 24.\n\nStep 2: we";
  d.finish = "length", d.n_context = 20, d.n_cached = 16, d.queue_ms = 0.12, d.run_ms = 18.5;
  return d;
}

struct HopResult {
  std::string transport, mode;
  Samples rt_us;  // one round trip = two hops
};

// Bounces one message n times between this thread's Mailbox and an echo
// thread's, both waiting in zmq::poll as the actors do. codec: each side
// opens and decodes what it receives and encodes what it sends.
Expected<HopResult> bounce(zmq::context_t& ctx, const std::string& transport, const fs::path& tmp, int n, bool codec) {
  static int k = 0;
  ++k;
  auto ep = [&](const char* side) {
    return transport == "inproc" ? "inproc://bench-hop-" + std::to_string(k) + "-" + side
                                 : "ipc://" + (tmp / ("hop-" + std::to_string(k) + "-" + side)).string();
  };
  const std::string main_ep = ep("main"), echo_ep = ep("echo");
  auto mine = Mailbox::open(ctx, main_ep, {{"echo", echo_ep}});
  if (!mine) return mine.error();
  const msg::GenDone proto = sample_gen_done();
  const std::string raw = msg::encode(proto);

  std::thread echo([&] {
    auto box = Mailbox::open(ctx, echo_ep, {{"main", main_ep}});
    if (!box) return;
    zmq::pollitem_t item{box->inbox().handle(), 0, ZMQ_POLLIN, 0};
    for (;;) {
      zmq::poll(&item, 1, std::chrono::milliseconds(-1));
      while (auto bytes = box->try_recv()) {
        if (bytes->empty()) return;  // stop
        if (!codec) {
          box->send("main", *bytes);
          continue;
        }
        auto env = msg::open(*bytes);
        auto d = env ? msg::decode<msg::GenDone>(*env) : Expected<msg::GenDone>(env.error());
        if (!d) return;
        box->post("main", *d);
      }
    }
  });

  HopResult r{transport, codec ? "encode+decode" : "raw bytes", {}};
  zmq::pollitem_t item{mine->inbox().handle(), 0, ZMQ_POLLIN, 0};
  const int warmup = std::max(100, n / 10);
  bool failed = false;
  for (int i = 0; i < warmup + n && !failed; ++i) {
    auto t = Clock::now();
    if (codec) mine->post("echo", proto);
    else mine->send("echo", raw);
    std::optional<std::string> got;
    while (!got) {
      // The first connection over ipc:// may take a moment.
      if (zmq::poll(&item, 1, std::chrono::milliseconds(5000)) == 0) {
        failed = true;
        break;
      }
      got = mine->try_recv();
    }
    if (failed) break;
    if (codec) {
      auto env = msg::open(*got);
      if (!env || !msg::decode<msg::GenDone>(*env)) failed = true;
    }
    if (i >= warmup) r.rt_us.add(1e3 * ms_since(t));
  }
  mine->send("echo", std::string());
  echo.join();
  if (failed) return make_error("hop bench over " + transport + ": no echo");
  return r;
}

// encode + open + decode alone, no sockets: the codec's share of a hop.
Samples codec_only(int n) {
  const msg::GenDone d = sample_gen_done();
  Samples s;
  for (int i = 0; i < n; ++i) {
    auto t = Clock::now();
    std::string b = msg::encode(d);
    auto env = msg::open(b);
    auto back = msg::decode<msg::GenDone>(*env);
    if (!back || back->tokens.size() != d.tokens.size()) std::abort();
    s.add(1e3 * ms_since(t));
  }
  return s;
}

// ---------------------------------------------------------------------------
// 2. Requests: the pipeline and the engine

// "Case <k>: ..." grown word by word until it is `target` tokens: the case
// number makes the first KV block differ from every other prompt's.
std::string make_prompt(const Tokenizer& tok, int k, int target) {
  static const char* words[] = {" Let",  " a",     " =",     " 5",    " and",  " b", " =",      " 7.",
                                " What", " is",    " a",     " +",    " b",    "?",  " Double", " it",
                                " and",  " write", " each",  " step", " down", ".",  " Then",   " check"};
  std::string s = "Case " + std::to_string(k) + ":";
  for (size_t i = 0; (int)tok.encode(s).size() < target; ++i) s += words[i % std::size(words)];
  return s;
}

const std::vector<std::string> kSteps = {"a = 5 and b = 7, so a + b = 12.", "Doubling 12 gives 24.",
                                         "The answer is \\boxed{24}."};

// The PRM work the verifier does for a job it meets for the first time:
// reuse cached full blocks of the prefix (the shared template), prefill the
// rest, read the step scores. score_positions() itself never reuses a prefix.
// *computed: the tokens prefilled.
Expected<std::vector<float>> score_reusing_prefix(Engine& e, const PrmInput& in, int64_t seq, int32_t* computed) {
  auto cached = e.add_sequence(seq, in.ids, /*reuse_prefix=*/true);
  if (!cached) return cached.error();
  *computed = (int32_t)in.ids.size() - std::min(*cached, in.score_positions.front());
  if (in.score_positions.front() < *cached) {  // a score inside the reused prefix
    e.truncate(seq, in.score_positions.front());
    e.append(seq, std::span<const int32_t>(in.ids).subspan(in.score_positions.front()));
  }
  RunItem item{seq, RowSelect::Explicit, 0, in.score_positions};
  RunResult run;
  Status st = e.run(std::span<const RunItem>(&item, 1), OutputKind::Score, &run);
  e.release(seq);
  if (!st.ok()) return st.error();
  return std::vector<float>(run.out.data.begin(), run.out.data.end());
}

// Latencies of one kind of request on one side, in the order they ran
// (index i of every side of a round belongs to the same round).
struct Side {
  Side(std::string n) : name(std::move(n)) {}
  std::string name;
  Samples ms;        // client-measured latency per request
  Samples inner_ms;  // the result's latency_ms: from the beam manager's start to its reply
  Samples work;      // generated tokens (generate), PRM tokens computed (score)
};

double mean(const Samples& s) {
  double a = 0;
  for (double x : s.v) a += x;
  return s.v.empty() ? 0 : a / (double)s.v.size();
}

// Median of the per-round differences side - base: each pipeline request
// ran right next to its engine request, so drift of a shared machine
// cancels better than in a difference of medians.
double paired_overhead(const Side& side, const Side& base) {
  Samples d;
  for (size_t i = 0; i < std::min(side.ms.v.size(), base.ms.v.size()); ++i) d.add(side.ms.v[i] - base.ms.v[i]);
  return d.median();
}

// The engines used directly, the pipeline's clients, and the prompt counter.
struct Bench {
  Engine& policy;
  const Tokenizer& policy_tok;
  Engine& prm;
  const Tokenizer& prm_tok;
  std::vector<std::pair<std::string, Client*>> lanes;  // "inproc", "ipc"
  std::string system_prompt{};                         // the pipeline's [models] system_prompt
  std::string step_delimiter{};
  int prompt_tokens = 20;
  int k = 0;  // next prompt's case number
  int64_t next_seq = 1;
  std::chrono::milliseconds timeout{300000};

  std::string next_prompt() { return make_prompt(policy_tok, k++, prompt_tokens); }

  // Sends a request on lane `l`; records its latency and the result's
  // latency_ms (when it has one).
  Expected<ServerFrame> call(size_t l, const std::string& type, const msg::MapWriter& w, Side* side, bool timed) {
    auto t = Clock::now();
    auto f = lanes[l].second->call(type, w, timeout);
    double ms = ms_since(t);
    if (!f) return make_error(type + " over " + lanes[l].first + ": " + f.error().message);
    // latency_ms: at the top of generate and score results, in a solve's stats.
    double inner = -1;
    msg::MapReader st;
    if (f->body.has("latency_ms")) (void)f->body.get("latency_ms", &inner);
    else if (f->body.get("stats", &st).ok()) (void)st.get("latency_ms", &inner);
    if (timed) {
      side->ms.add(ms);
      if (inner >= 0) side->inner_ms.add(inner);
    }
    return f;
  }

  // One round of generate: the engine, then each lane, the order rotating
  // with the round; each its own prompt.
  Status generate_round(int round, bool timed, int max_tokens, Side& engine, std::vector<Side>& pipe) {
    const int sides = 1 + (int)lanes.size();
    for (int turn = 0; turn < sides; ++turn) {
      const int who = (turn + round) % sides;  // 0 = the engine, 1.. = lanes
      const std::string prompt = next_prompt();
      if (who == 0) {
        GenerateRequest q;
        q.prompt = policy_tok.encode(prompt);  // as the beam manager does for chat = false
        q.sampling.temperature = 0, q.max_tokens = max_tokens, q.stop_ids = policy.config().eos_token_ids;
        auto t = Clock::now();
        auto r = generate(policy, std::span<const GenerateRequest>(&q, 1));
        double ms = ms_since(t);
        if (!r) return r.error();
        if (timed) engine.ms.add(ms), engine.work.add((double)(*r)[0].tokens.size());
        continue;
      }
      msg::MapWriter w;
      w.put("prompt", prompt).put("max_tokens", max_tokens);
      Side& s = pipe[who - 1];
      auto f = call(who - 1, "generate", w, &s, timed);
      if (!f) return f.error();
      std::vector<int32_t> toks;
      (void)f->body.get("tokens", &toks);
      if (timed) s.work.add((double)toks.size());
    }
    return Status::success();
  }

  // The first lane and the engine generate from one prompt: same tokens?
  Expected<bool> same_tokens(int max_tokens) {
    const std::string prompt = next_prompt();
    GenerateRequest q;
    q.prompt = policy_tok.encode(prompt);
    q.sampling.temperature = 0, q.max_tokens = max_tokens, q.stop_ids = policy.config().eos_token_ids;
    auto r = generate(policy, std::span<const GenerateRequest>(&q, 1));
    if (!r) return r.error();
    msg::MapWriter w;
    w.put("prompt", prompt).put("max_tokens", max_tokens);
    auto f = lanes[0].second->call("generate", w, timeout);
    if (!f) return f.error();
    std::vector<int32_t> toks;
    FLASHTTS_TRY(f->body.get("tokens", &toks));
    return toks == (*r)[0].tokens;
  }

  // One round of score: the engine with prefix reuse (the verifier's work),
  // score_positions() (full prefill), then each lane.
  Status score_round(int round, bool timed, Side& reuse, Side& positions, std::vector<Side>& pipe, Samples* prm_len) {
    const int sides = 2 + (int)lanes.size();
    for (int turn = 0; turn < sides; ++turn) {
      const int who = (turn + round) % sides;
      const std::string problem = next_prompt();
      if (who <= 1) {
        auto in = format_prm_input(prm_tok, prm.config(), problem, kSteps);
        if (!in) return in.error();
        int32_t computed = (int32_t)in->ids.size();
        auto t = Clock::now();
        auto r = who == 0 ? score_reusing_prefix(prm, *in, next_seq++, &computed)
                          : score_positions(prm, in->ids, in->score_positions);
        double ms = ms_since(t);
        if (!r) return r.error();
        if (timed) {
          Side& s = who == 0 ? reuse : positions;
          s.ms.add(ms), s.work.add((double)computed);
          if (who == 1) prm_len->add((double)in->ids.size());
        }
        continue;
      }
      msg::MapWriter w;
      w.put("problem", problem).put("steps", kSteps);
      Side& s = pipe[who - 2];
      auto f = call(who - 2, "score", w, &s, timed);
      if (!f) return f.error();
      int64_t computed = 0;
      (void)f->body.get("n_computed", &computed);
      if (timed) s.work.add((double)computed);
    }
    return Status::success();
  }

  // best-of-N as the pipeline runs it, directly on the engines: the n samples
  // in one generate() batch (same random streams as the generator: seed,
  // beam, position), then every sample's steps scored in one PRM pass with
  // prefix reuse. Returns the samples' texts; *ms the time taken.
  Expected<std::vector<std::string>> solve_direct(const std::string& problem, int n, int max_tokens, double temperature,
                                                  uint64_t seed, double* ms, int64_t* prm_computed) {
    auto fmt = detect_chat_format(policy_tok);  // as the beam manager's prompt_format "auto"
    const std::vector<int32_t> prompt =
        policy_tok.encode(fmt ? format_chat_prompt(*fmt, system_prompt, problem) : problem);
    auto t = Clock::now();
    std::vector<GenerateRequest> qs(n);
    for (int i = 0; i < n; ++i) {
      qs[i].prompt = prompt, qs[i].max_tokens = max_tokens, qs[i].stop_ids = policy.config().eos_token_ids;
      qs[i].sampling.temperature = (float)temperature, qs[i].sampling.seed = seed, qs[i].seq_id = (uint64_t)i;
    }
    auto gen = generate(policy, qs);
    if (!gen) return gen.error();
    std::vector<std::string> texts;
    std::vector<RunItem> items;
    *prm_computed = 0;
    for (const GenerateResult& g : *gen) {
      texts.push_back(policy_tok.decode(g.tokens, /*skip_special=*/true));
      std::vector<std::string> steps = split_steps(texts.back(), step_delimiter);
      if (steps.empty()) continue;
      auto in = format_prm_input(prm_tok, prm.config(), problem, steps);
      if (!in) return in.error();
      const int64_t seq = next_seq++;
      auto cached = prm.add_sequence(seq, in->ids, /*reuse_prefix=*/true);
      if (!cached) return cached.error();
      if (in->score_positions.front() < *cached) {
        prm.truncate(seq, in->score_positions.front());
        prm.append(seq, std::span<const int32_t>(in->ids).subspan(in->score_positions.front()));
      }
      *prm_computed += prm.n_pending(seq);
      items.push_back({seq, RowSelect::Explicit, 0, in->score_positions});
    }
    RunResult run;
    Status st = items.empty() ? Status::success() : prm.run(items, OutputKind::Score, &run);
    for (const RunItem& it : items) prm.release(it.seq);
    if (!st.ok()) return st.error();
    if (!run.starved.empty()) return make_error("solve_direct: the PRM's KV budget is too small");
    *ms = ms_since(t);
    return texts;
  }
};

// One markdown row; overhead against `base` when given: the median of the
// paired differences, and the difference of the minima (on a shared machine
// noise only adds time, so the minima are the least disturbed estimate).
void print_row(const std::string& kind, const Side& s, const Side* base, json& j) {
  const double over = base ? paired_overhead(s, *base) : 0;
  const double pct = base && base->ms.median() > 0 ? 100.0 * over / base->ms.median() : 0;
  const double over_min = base ? s.ms.min() - base->ms.min() : 0;
  // Outside the beam manager: client -> intake -> beam manager and back.
  const double outside = s.inner_ms.v.empty() ? 0 : s.ms.median() - s.inner_ms.median();
  std::printf("| %-11s | %-42s | %7.2f | %7.2f | %7.2f | ", kind.c_str(), s.name.c_str(), s.ms.median(), s.ms.min(),
              s.ms.p99());
  if (base) std::printf("%+7.2f (%+.1f%%) | %+7.2f (%+.1f%%) | ", over, pct, over_min, 100.0 * over_min / base->ms.min());
  else std::printf("%7s | %7s | ", "-", "-");
  if (!s.inner_ms.v.empty()) std::printf("%7.2f |\n", outside);
  else std::printf("%7s |\n", "-");
  j = json{{"median_ms", s.ms.median()}, {"min_ms", s.ms.min()}, {"p99_ms", s.ms.p99()}, {"n", s.ms.v.size()}};
  if (base) j["overhead_ms"] = over, j["overhead_pct"] = pct, j["overhead_of_minima_ms"] = over_min;
  if (!s.inner_ms.v.empty()) {
    j["beam_manager_latency_median_ms"] = s.inner_ms.median();
    j["outside_beam_manager_ms"] = outside;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"flashtts-bench-pipeline: the actor pipeline's per-hop and per-request cost against the engine"};
  std::string policy, prm, json_out;
  int threads = 2, requests = 30, warmup = 5, max_tokens = 16, prompt_tokens = 20, hops = 20000, solves = 5;
  int solve_n = 4, solve_steps = 4, solve_step_tokens = 32;
  double budget_mb = 256;
  app.add_option("--policy", policy, "policy model folder (default: a tiny random one)");
  app.add_option("--prm", prm, "PRM folder (default: a tiny random one)");
  app.add_option("--threads", threads, "engine threads, the same for both sides");
  app.add_option("--requests", requests, "timed requests of each kind and side");
  app.add_option("--warmup", warmup, "untimed rounds first");
  app.add_option("--max-tokens", max_tokens, "tokens per generate request (greedy)");
  app.add_option("--prompt-tokens", prompt_tokens, "prompt (and score problem) length in policy tokens");
  app.add_option("--hops", hops, "round trips per hop measurement");
  app.add_option("--solves", solves, "timed solve requests");
  app.add_option("--solve-n", solve_n, "best-of-N samples of a solve");
  app.add_option("--solve-steps", solve_steps, "max_steps of a solve");
  app.add_option("--solve-step-tokens", solve_step_tokens, "max_tokens_per_step of a solve");
  app.add_option("--budget-mb", budget_mb, "the pipeline's memory budget (weights + KV of both models)");
  app.add_option("--json", json_out, "also write the results to FILE as JSON");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  char tmpl[] = "/tmp/flashtts-bench-pipeline-XXXXXX";
  if (!mkdtemp(tmpl)) return std::fprintf(stderr, "bench: cannot make a temp folder\n"), 1;
  const fs::path tmp = tmpl;
  auto fail = [&](const std::string& what) {
    std::fprintf(stderr, "bench: %s\n", what.c_str());
    std::error_code ec;
    fs::remove_all(tmp, ec);
    return 1;
  };
  if (policy.empty() != prm.empty()) return fail("give both --policy and --prm, or neither");
  if (policy.empty()) {
    if (Status s = write_tiny_models(tmp); !s.ok()) return fail(s.message());
    policy = (tmp / "policy").string(), prm = (tmp / "prm").string();
  }

  const std::string cpu = cpu_model();
  const unsigned cores = std::thread::hardware_concurrency();
  std::printf("machine: %s, %u cores, load average %s; engine threads %d (both sides)\n", cpu.c_str(), cores,
              load_average().c_str(), threads);
  json out;
  out["machine"] = {{"cpu", cpu}, {"cores", cores}, {"threads", threads}, {"load_average_start", load_average()}};

  // ---- 1. hops
  zmq::context_t ctx;
  std::printf("\n| round trip of a %zu-byte GenDone between two Mailboxes | median us | p99 us | per hop us |\n"
              "|---|---:|---:|---:|\n",
              msg::encode(sample_gen_done()).size());
  json jh = json::array();
  Samples codec = codec_only(hops);
  std::printf("| %-36s | %9.2f | %9.2f | %9s |\n", "no socket: encode + open + decode", codec.median(), codec.p99(),
              "-");
  jh.push_back({{"transport", "none"}, {"mode", "encode+open+decode"}, {"median_us", codec.median()},
                {"p99_us", codec.p99()}});
  for (const char* transport : {"inproc", "ipc"})
    for (bool with_codec : {false, true}) {
      auto h = bounce(ctx, transport, tmp, hops, with_codec);
      if (!h) return fail(h.error().message);
      std::string label = std::string(transport) + ", " + h->mode;
      std::printf("| %-36s | %9.2f | %9.2f | %9.2f |\n", label.c_str(), h->rt_us.median(), h->rt_us.p99(),
                  h->rt_us.median() / 2);
      jh.push_back({{"transport", transport}, {"mode", h->mode}, {"round_trip_median_us", h->rt_us.median()},
                    {"round_trip_p99_us", h->rt_us.p99()}, {"per_hop_median_us", h->rt_us.median() / 2}});
    }
  out["hops"] = jh;

  // ---- 2. the engines, directly, and the pipeline on the same folders
  EngineOptions eo;
  eo.n_threads = threads;
  eo.kv_bytes = 64ull << 20;
  auto pol = open_model(policy, eo);
  if (!pol) return fail(pol.error().message);
  auto ver = open_model(prm, eo);
  if (!ver) return fail(ver.error().message);
  const ModelConfig& pc = pol->config();
  std::printf("\npolicy %s: %d layers, hidden %d, vocab %d; prm %s: %d layers, %s head\n", policy.c_str(),
              pc.n_layers, pc.hidden_size, pc.vocab_size, prm.c_str(), ver->config().n_layers,
              prm_kind_name(ver->config().prm.kind));
  out["models"] = {{"policy", policy}, {"prm", prm}, {"layers", pc.n_layers}, {"hidden", pc.hidden_size},
                   {"vocab", pc.vocab_size}};

  Config cfg = default_config();
  cfg.log_level = "warn";
  cfg.models.policy = policy, cfg.models.prm = prm;
  cfg.memory.budget_mb = budget_mb;
  cfg.engine.generator_threads = threads, cfg.engine.verifier_threads = threads;
  for (auto& [name, ep] : cfg.endpoints.actors) ep = "inproc://bench-" + name;
  const std::string inproc_ep = "inproc://bench-clients", ipc_ep = "ipc://" + (tmp / "clients.sock").string();
  cfg.endpoints.clients = {inproc_ep, ipc_ep};
  LogSink logs(spdlog::level::warn);
  auto sup = Supervisor::start(ctx, cfg, logs);
  if (!sup) return fail(sup.error().message);
  auto c_inproc = Client::connect(ctx, inproc_ep);
  auto c_ipc = Client::connect(ctx, ipc_ep);
  if (!c_inproc || !c_ipc) return fail("cannot connect a client");
  Bench b{.policy = *pol->engine,
          .policy_tok = *pol->tokenizer,
          .prm = *ver->engine,
          .prm_tok = *ver->tokenizer,
          .lanes = {{"inproc", &*c_inproc}, {"ipc", &*c_ipc}}};
  b.prompt_tokens = prompt_tokens;
  b.system_prompt = cfg.models.system_prompt, b.step_delimiter = cfg.step_delimiter;
  auto pipe_sides = [&] {
    std::vector<Side> v;
    for (const auto& [name, c] : b.lanes) v.emplace_back("pipeline, " + name + " client");
    return v;
  };

  // ping: client -> intake -> client only.
  std::vector<Side> ping = pipe_sides();
  for (int i = 0; i < warmup + requests; ++i)
    for (size_t l = 0; l < b.lanes.size(); ++l)
      if (auto f = b.call(l, "ping", msg::MapWriter(), &ping[l], i >= warmup); !f) return fail(f.error().message);

  // generate, max_tokens and 1 token (the fixed cost of a request).
  Side g_engine("engine: generate()"), g1_engine("engine: generate()");
  std::vector<Side> g_pipe = pipe_sides(), g1_pipe = pipe_sides();
  auto same = b.same_tokens(max_tokens);
  if (!same) return fail(same.error().message);
  for (int i = 0; i < warmup + requests; ++i) {
    if (Status s = b.generate_round(i, i >= warmup, max_tokens, g_engine, g_pipe); !s.ok()) return fail(s.message());
    if (Status s = b.generate_round(i, i >= warmup, 1, g1_engine, g1_pipe); !s.ok()) return fail(s.message());
  }

  Side s_reuse("engine: prefix reuse (the verifier's work)"), s_positions("engine: score_positions()");
  std::vector<Side> s_pipe = pipe_sides();
  Samples prm_len;
  for (int i = 0; i < warmup + requests; ++i)
    if (Status s = b.score_round(i, i >= warmup, s_reuse, s_positions, s_pipe, &prm_len); !s.ok())
      return fail(s.message());

  // ---- table
  Samples prompt_len;
  for (int i = 0; i < 50; ++i) prompt_len.add((double)pol->tokenizer->encode(b.next_prompt()).size());
  std::printf("generate: %.1f prompt tokens, %.1f tokens generated (engine) / %.1f (pipeline), greedy; "
              "same tokens: %s\n",
              mean(prompt_len), mean(g_engine.work), mean(g_pipe[0].work), *same ? "yes" : "NO");
  std::printf("score: %zu steps, %.1f PRM tokens, of which the verifier computed %.1f and the engine with prefix "
              "reuse %.1f (the template's full blocks come from the prefix cache)\n\n",
              kSteps.size(), mean(prm_len), mean(s_pipe[0].work), mean(s_reuse.work));
  std::printf("| request | side (%d requests after %d warm-up) | median ms | min ms | p99 ms | "
              "overhead ms, paired median | overhead ms, of the minima | outside beam manager ms |\n"
              "|---|---|---:|---:|---:|---:|---:|---:|\n",
              requests, warmup);
  json jr;
  for (size_t l = 0; l < b.lanes.size(); ++l) print_row("ping", ping[l], nullptr, jr["ping"][b.lanes[l].first]);
  const std::string gk = "generate " + std::to_string(max_tokens);
  print_row(gk, g_engine, nullptr, jr["generate"]["engine"]);
  for (size_t l = 0; l < b.lanes.size(); ++l) print_row(gk, g_pipe[l], &g_engine, jr["generate"][b.lanes[l].first]);
  print_row("generate 1", g1_engine, nullptr, jr["generate_1"]["engine"]);
  for (size_t l = 0; l < b.lanes.size(); ++l)
    print_row("generate 1", g1_pipe[l], &g1_engine, jr["generate_1"][b.lanes[l].first]);
  print_row("score", s_reuse, nullptr, jr["score"]["engine_prefix_reuse"]);
  print_row("score", s_positions, nullptr, jr["score"]["engine_score_positions"]);
  for (size_t l = 0; l < b.lanes.size(); ++l) print_row("score", s_pipe[l], &s_reuse, jr["score"][b.lanes[l].first]);
  jr["generate"]["max_tokens"] = max_tokens, jr["generate"]["prompt_tokens_mean"] = mean(prompt_len);
  jr["generate"]["generated_tokens_mean"] = mean(g_engine.work), jr["generate"]["same_tokens"] = *same;
  jr["score"]["steps"] = kSteps.size(), jr["score"]["prm_tokens_mean"] = mean(prm_len);
  jr["score"]["verifier_computed_tokens_mean"] = mean(s_pipe[0].work);
  jr["score"]["engine_reuse_computed_tokens_mean"] = mean(s_reuse.work);

  // ---- solve, for context: the pipeline against the same search done
  // directly on the engines (every other solve), same problem and seed.
  Side solve("pipeline, ipc client"), solve_engine("engine: generate() + one PRM pass");
  Samples s_pol, s_prm, s_prmc, s_gen, s_ver, e_prmc;
  bool same_samples = true;
  const double solve_temperature = 0.8;
  for (int i = 0; i < 1 + solves; ++i) {
    const bool timed = i > 0;
    const std::string problem = b.next_prompt();
    double ms = 0;
    int64_t computed = 0;
    auto texts = b.solve_direct(problem, solve_n, solve_steps * solve_step_tokens, solve_temperature, (uint64_t)i,
                                &ms, &computed);
    if (!texts) return fail(texts.error().message);
    if (timed) solve_engine.ms.add(ms), e_prmc.add((double)computed);
    msg::MapWriter w;
    w.put("problem", problem).put("strategy", "best_of_n").put("n", solve_n).put("temperature", solve_temperature);
    w.put("max_steps", solve_steps).put("max_tokens_per_step", solve_step_tokens).put("seed", uint64_t(i));
    w.put("return_completions", true);
    auto f = b.call(1, "solve", w, &solve, timed);
    if (!f) return fail(f.error().message);
    msg::MapReader st;
    std::vector<msg::MapReader> completions;
    if (!f->body.get("stats", &st).ok() || !f->body.get("completions", &completions).ok())
      return fail("solve: the result has no stats or completions");
    for (const msg::MapReader& c : completions) {
      int32_t beam = -1;
      std::string text;
      if (!c.get("beam", &beam).ok() || !c.get("text", &text).ok() || beam < 0 || beam >= (int32_t)texts->size() ||
          (*texts)[beam] != text)
        same_samples = false;
    }
    if (!timed) continue;
    double gen = 0, vb = 0;
    int64_t pt = 0, rt = 0, rc = 0;
    (void)st.get("policy_tokens", &pt), (void)st.get("prm_tokens", &rt), (void)st.get("prm_tokens_computed", &rc);
    (void)st.get("generation_job_ms_sum", &gen), (void)st.get("verification_job_ms_sum", &vb);
    s_pol.add((double)pt), s_prm.add((double)rt), s_prmc.add((double)rc), s_gen.add(gen), s_ver.add(vb);
  }
  const std::string sk = "solve n=" + std::to_string(solve_n);
  print_row(sk, solve_engine, nullptr, jr["solve"]["engine"]);
  print_row(sk, solve, &solve_engine, jr["solve"]["ipc"]);
  std::printf(
      "\nsolve: best_of_n, n=%d, max_steps %d x max_tokens_per_step %d, temperature %.1f; %d timed after 1 warm-up; "
      "same samples as the engine: %s\n"
      "  pipeline stats (medians): policy tokens %.0f, PRM tokens %.0f (computed %.0f; engine side %.0f), "
      "generation_job_ms_sum %.1f, verification_job_ms_sum %.1f (sums of per-job run times)\n",
      solve_n, solve_steps, solve_step_tokens, solve_temperature, solves, same_samples ? "yes" : "NO", s_pol.median(),
      s_prm.median(), s_prmc.median(), e_prmc.median(), s_gen.median(), s_ver.median());
  jr["solve"]["n"] = solve_n, jr["solve"]["max_steps"] = solve_steps;
  jr["solve"]["max_tokens_per_step"] = solve_step_tokens, jr["solve"]["same_samples"] = same_samples;
  jr["solve"]["stats_median"] = {{"policy_tokens", s_pol.median()},
                                 {"prm_tokens", s_prm.median()},
                                 {"prm_tokens_computed", s_prmc.median()},
                                 {"generation_job_ms_sum", s_gen.median()},
                                 {"verification_job_ms_sum", s_ver.median()}};
  jr["solve"]["engine_prm_tokens_computed_median"] = e_prmc.median();
  out["requests"] = jr;

  out["machine"]["load_average_end"] = load_average();
  std::printf("load average at the end: %s\n", load_average().c_str());
  (*sup)->shutdown();
  if (!json_out.empty()) {
    std::ofstream f(json_out);
    f << out.dump(2) << "\n";
    if (!f) return fail("cannot write " + json_out);
  }
  std::error_code ec;
  fs::remove_all(tmp, ec);
  return 0;
}
