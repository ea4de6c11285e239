// The soak: a real `flashtts serve` child process under many clients over
// ipc:// and tcp://, checking that every request gets exactly one final reply
// whatever the clients do (issue 19):
//   - clients send a mix of solve / generate / score, half of them streaming,
//     several requests in flight per connection; 10% of requests are
//     cancelled, 10% of clients vanish mid-request (their socket closes with
//     work in flight), some requests carry short deadlines, and every client
//     reconnects at once when it is done;
//   - fuzz clients interleave mutated, truncated, random and multi-frame
//     messages; every one under the size limit must be answered;
//   - at the end: the KV blocks in use (must be 0 once all is answered: the
//     vanished clients' work was cancelled), the server's RSS growth over the
//     last two thirds of the run (the first third, of the same shape, reaches
//     the high-water marks), and a SIGTERM with requests in flight, each of
//     which must still get its one reply, and a clean exit.
// Per request id it counts final frames: 0 is lost, 2+ duplicated.
//
//   flashtts-bench-soak [--quick] [--policy DIR --prm DIR] [--requests 3000]
//                       [--concurrency 1000] [--fuzz 1000000] [--seed 1]
//                       [--max-rss-growth 5] [--json FILE]
//
// Without --policy/--prm it serves the shipped models of configs/default.toml.
// Exit status 0 when every check holds, 1 otherwise; the checks and figures
// are printed as a table and, with --json, appended as one JSON line.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "messages/envelope.h"
#include "runtime/client.h"
#include "runtime/config.h"

using namespace flashtts;
using json = nlohmann::ordered_json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

struct Options {
  bool quick = false;
  fs::path policy, prm;
  int requests = 3000, concurrency = 1000, fuzz = 1000000;
  uint64_t seed = 1;
  double max_rss_growth = 5;  // percent; < 0: not checked
  std::string json_out;
  int reply_timeout_s = 600;
};

// ---------------------------------------------------------------------------
// The server

// `flashtts serve` as a child process, its output in a log file.
struct Server {
  pid_t pid = -1;
  fs::path dir, log;
  std::string ipc, tcp;

  ~Server() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
  bool alive() const { return pid > 0 && kill(pid, 0) == 0; }
  // VmRSS in KiB (0 when unreadable).
  int64_t rss_kib() const {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line))
      if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
    return 0;
  }
  // SIGTERM, then the exit status within `t` (-1: none).
  int terminate(std::chrono::seconds t) {
    kill(pid, SIGTERM);
    for (auto deadline = Clock::now() + t; Clock::now() < deadline; std::this_thread::sleep_for(20ms)) {
      int st = 0;
      if (waitpid(pid, &st, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
    }
    return -1;
  }
};

fs::path build_dir() {
  std::error_code ec;
  return fs::read_symlink("/proc/self/exe", ec).parent_path().parent_path();  // build/bench/ -> build/
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t n = sizeof a;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  close(fd);
  return ntohs(a.sin_port);
}

Expected<std::unique_ptr<Server>> start_server(const Options& o) {
  auto s = std::make_unique<Server>();
  s->dir = fs::temp_directory_path() / ("flashtts-soak-" + std::to_string(getpid()));
  fs::remove_all(s->dir);
  fs::create_directories(s->dir);
  s->log = s->dir / "serve.log";
  s->ipc = "ipc://" + (s->dir / "client").string();
  s->tcp = "tcp://127.0.0.1:" + std::to_string(free_port());
  std::ofstream f(s->dir / "soak.toml");
  f << "log_level = \"warn\"\n[models]\npolicy = \"" << o.policy.string() << "\"\nprm = \"" << o.prm.string()
    << "\"\n[memory]\nbudget_mb = 512\n[search]\nn = 4\nmax_steps = 2\nmax_tokens_per_step = 16\n"
    << "[limits]\nmax_live_requests = " << std::max(4096, 4 * o.concurrency) << "\n"
    << "[endpoints]\nclients = [\"" << s->ipc << "\", \"" << s->tcp << "\"]\n";
  f.close();
  s->pid = fork();
  if (s->pid == 0) {
    FILE* out = std::freopen(s->log.c_str(), "w", stdout);
    (void)out;
    dup2(fileno(stdout), fileno(stderr));
    std::string bin = (build_dir() / "flashtts").string(), cfg = (s->dir / "soak.toml").string();
    execl(bin.c_str(), bin.c_str(), "serve", "--config", cfg.c_str(), (char*)nullptr);
    _exit(127);
  }
  zmq::context_t ctx;
  for (auto deadline = Clock::now() + 120s; Clock::now() < deadline;) {
    if (!s->alive()) break;
    auto c = Client::connect(ctx, s->tcp);
    if (c && c->ping(1s).ok()) return s;
  }
  std::ifstream lf(s->log);
  return make_error("the server did not start:\n" + std::string(std::istreambuf_iterator<char>(lf), {}));
}

// ---------------------------------------------------------------------------
// Well-behaved (and vanishing) clients

struct Tally {
  int64_t sent = 0, answered = 0, lost = 0, duplicated = 0, vanished = 0, cancels = 0, progress = 0;
  std::map<std::string, int64_t> by_code;  // "ok" for results
  std::string undecodable_sample;          // a reply the client could not read
  void add(const Tally& t) {
    sent += t.sent, answered += t.answered, lost += t.lost, duplicated += t.duplicated, vanished += t.vanished;
    cancels += t.cancels, progress += t.progress;
    for (const auto& [k, v] : t.by_code) by_code[k] += v;
    if (undecodable_sample.empty()) undecodable_sample = t.undecodable_sample;
  }
};

msg::MapWriter random_request(std::mt19937_64& rng, std::string* type) {
  std::uniform_int_distribution<int> pct(0, 99), small(1, 9);
  msg::MapWriter w;
  const int k = pct(rng);
  std::string problem = "Let a = " + std::to_string(small(rng)) + ". Let b = a + " + std::to_string(small(rng)) +
                        ". What is b?";
  if (k < 40) {
    *type = "solve";
    w.put("problem", problem).put("seed", uint64_t(rng() % 1000));
  } else if (k < 80) {
    *type = "generate";
    w.put("prompt", problem).put("max_tokens", int64_t(4 + rng() % 20));
  } else {
    *type = "score";
    w.put("problem", problem).put("steps", std::vector<std::string>{"a = 3", "b = a + 2 = 5", "\\boxed{5}"});
  }
  if (*type != "score" && pct(rng) < 50) w.put("stream", true);
  if (pct(rng) < 5) w.put("deadline_ms", int64_t(1 + rng() % 50));
  return w;
}

// One connection's life: send k requests, maybe cancel some, maybe vanish,
// else wait for every final frame (and a moment more, to see duplicates).
void session(zmq::context_t& ctx, const std::string& ep, std::mt19937_64& rng, int k, const Options& o, Tally* t) {
  auto c = Client::connect(ctx, ep);
  if (!c) return;
  std::uniform_int_distribution<int> pct(0, 99);
  std::map<std::string, int> finals;  // id -> final frames seen
  std::vector<std::string> ids;
  for (int i = 0; i < k; ++i) {
    std::string type;
    auto w = random_request(rng, &type);
    ids.push_back(c->send(type, w));
    finals[ids.back()] = 0;
    ++t->sent;
  }
  if (pct(rng) < 10) {  // vanish with work in flight
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 30));
    t->vanished += k;
    t->sent -= k;
    return;
  }
  for (const auto& id : ids)
    if (pct(rng) < 10) {
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 20));
      msg::MapWriter cw;
      cw.put_raw("target", id);
      finals[c->send("cancel", cw)] = 0;
      ++t->sent, ++t->cancels;
    }
  auto deadline = Clock::now() + std::chrono::seconds(o.reply_timeout_s);
  size_t open = finals.size();
  auto settle = Clock::time_point::max();
  while (Clock::now() < std::min(deadline, settle)) {
    auto f = c->recv(open ? 100ms : 5ms);
    if (!f || !f->has_value()) {
      if (!open && settle == Clock::time_point::max()) settle = Clock::now() + 20ms;
      continue;
    }
    const ServerFrame& fr = **f;
    if (fr.type == "progress") {
      ++t->progress;
      continue;
    }
    auto it = finals.find(fr.id);
    if (it == finals.end()) continue;
    if (++it->second == 1) {
      --open;
      ++t->answered;
      ++t->by_code[fr.type == "result" ? "ok" : fr.code];
    } else {
      ++t->duplicated;
    }
  }
  for (const auto& [id, n] : finals)
    if (n == 0) ++t->lost;
}

// ---------------------------------------------------------------------------
// Fuzz

// A frame built from a valid request by one of several damages.
std::string fuzz_frame(std::mt19937_64& rng, int64_t max_bytes, bool* counted) {
  *counted = true;
  msg::MapWriter w;
  const int pick = int(rng() % 6);
  w.put("v", int64_t(1)).put("id", uint64_t(rng() % 100000));
  if (pick == 0) w.put("type", "ping");
  else if (pick == 1) w.put("type", "cancel").put("target", uint64_t(rng()));
  else if (pick == 2) w.put("type", "solve").put("problem", "x").put("strategy", "nope");
  else if (pick == 3) w.put("type", "generate").put("prompt", "x").put("max_tokens", int64_t(0));
  else if (pick == 4) w.put("type", "score").put("problem", "x");
  else w.put("type", std::string(1, char(rng() % 256)));
  std::string b = w.bytes();
  switch (rng() % 6) {
    case 0: break;                                               // as it is (invalid or cheap)
    case 1: b[rng() % b.size()] ^= char(1 << (rng() % 8)); break;  // one bit
    case 2: b.resize(rng() % b.size()); break;                   // truncated
    case 3:                                                      // random bytes
      b.resize(1 + rng() % 64);
      for (char& ch : b) ch = char(rng());
      break;
    case 4:
      for (int i = 0; i < 4; ++i) b[rng() % b.size()] = char(rng());
      break;
    default:  // over the limit but under 4x: a too_large reply
      if (rng() % 64 == 0) b.append(size_t(max_bytes) + 1, 'x');
      break;
  }
  return b;
}

// Sends `n` fuzzed messages (a few of several frames) with up to 256 in
// flight; every one must get exactly one final frame back.
void fuzz(zmq::context_t& ctx, const std::string& ep, uint64_t seed, int n, int64_t max_bytes, Tally* t,
          std::atomic<int64_t>* progress) {
  std::mt19937_64 rng(seed);
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.connect(ep);
  int64_t in_flight = 0;
  auto last_reply = Clock::now();
  for (int sent = 0; sent < n || in_flight > 0;) {
    while (sent < n && in_flight < 256) {
      bool counted;
      std::string b = fuzz_frame(rng, max_bytes, &counted);
      if (rng() % 50 == 0) s.send(zmq::buffer(b), zmq::send_flags::sndmore);  // two frames: bad_message
      s.send(zmq::buffer(b), zmq::send_flags::none);
      ++sent, ++in_flight, ++t->sent;
      ++*progress;
    }
    zmq::pollitem_t p{s.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&p, 1, 100ms);
    zmq::message_t m;
    while (s.recv(m, zmq::recv_flags::dontwait)) {
      last_reply = Clock::now();
      // A message sent as [empty, payload] looks like a REQ envelope and is
      // answered as one: [empty, reply].
      if (m.size() == 0 && m.more()) continue;
      auto env = msg::open(m.to_string());
      if (env && env->type == "progress") continue;
      if (!env && t->undecodable_sample.empty()) t->undecodable_sample = env.error().message + ": " + m.to_string();
      --in_flight, ++t->answered;
      ++t->by_code[!env ? "undecodable" : env->type == "result" ? "ok" : [&] {
        std::string code;
        (void)env->fields.get("code", &code);
        return code;
      }()];
    }
    if (Clock::now() - last_reply > 30s) break;  // what is still out is lost
  }
  t->lost += in_flight;
}

// ---------------------------------------------------------------------------
// Checks at the end

int64_t kv_blocks_used(zmq::context_t& ctx, const std::string& ep) {
  auto c = Client::connect(ctx, ep);
  if (!c) return -1;
  auto st = c->call("stats", msg::MapWriter(), 10s);
  if (!st) return -1;
  msg::MapReader actors, a;
  int64_t total = 0;
  if (!st->body.get("actors", &actors).ok()) return -1;
  for (const char* name : {"generator", "verifier"}) {
    int64_t used = 0;
    if (!actors.get(name, &a).ok() || !a.get("kv_blocks_used", &used).ok()) return -1;
    total += used;
  }
  return total;
}

// The requests in flight at the intake (its stats), -1 when unknown.
int64_t live_requests(Client& c) {
  auto st = c.call("stats", msg::MapWriter(), 5s);
  msg::MapReader actors, intake;
  int64_t n = -1;
  if (st && st->body.get("actors", &actors).ok() && actors.get("intake", &intake).ok())
    (void)intake.get("live_requests", &n);
  return n;
}

// Requests in flight when SIGTERM comes: each still gets one final reply.
Tally sigterm_with_work(zmq::context_t& ctx, Server& s, int n, int* exit_status) {
  Tally t;
  std::vector<Client> clients;
  std::vector<std::map<std::string, int>> finals(4);
  for (int i = 0; i < 4; ++i) clients.push_back(std::move(Client::connect(ctx, i % 2 ? s.ipc : s.tcp).value()));
  for (int i = 0; i < n; ++i) {
    msg::MapWriter w;
    w.put("problem", "Let a = " + std::to_string(i % 9 + 1) + ". What is a?").put("n", int64_t(8));
    finals[i % 4][clients[i % 4].send("solve", w)] = 0;
    ++t.sent;
  }
  std::this_thread::sleep_for(50ms);
  std::thread term([&] { *exit_status = s.terminate(30s); });
  for (int i = 0; i < 4; ++i) {
    auto deadline = Clock::now() + 20s;
    size_t open = finals[i].size();
    while (open > 0 && Clock::now() < deadline) {
      auto f = clients[i].recv(100ms);
      if (!f || !f->has_value() || (*f)->type == "progress") continue;
      auto it = finals[i].find((*f)->id);
      if (it == finals[i].end()) continue;
      if (++it->second == 1) {
        --open, ++t.answered;
        ++t.by_code[(*f)->type == "result" ? "ok" : (*f)->code];
      } else {
        ++t.duplicated;
      }
    }
    for (const auto& [id, k] : finals[i]) t.lost += k == 0;
  }
  term.join();
  return t;
}

json tally_json(const Tally& t) {
  json j = {{"sent", t.sent}, {"answered", t.answered}, {"lost", t.lost}, {"duplicated", t.duplicated}};
  if (t.vanished) j["vanished"] = t.vanished;
  if (t.cancels) j["cancels"] = t.cancels;
  if (t.progress) j["progress_frames"] = t.progress;
  j["by_code"] = t.by_code;
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"flashtts-bench-soak: exactly one reply per request under churn, cancels, fuzz and SIGTERM"};
  app.add_flag("--quick", o.quick, "A short run for the test suite (200 requests, 50 in flight, 20000 fuzzed frames)");
  app.add_option("--policy", o.policy, "Policy model folder (default: the shipped one)");
  app.add_option("--prm", o.prm, "PRM folder (default: the shipped one)");
  app.add_option("--requests", o.requests, "Requests sent by the well-behaved clients")->check(CLI::PositiveNumber);
  app.add_option("--concurrency", o.concurrency, "Requests in flight at once")->check(CLI::PositiveNumber);
  app.add_option("--fuzz", o.fuzz, "Fuzzed messages")->check(CLI::NonNegativeNumber);
  app.add_option("--seed", o.seed, "Random seed");
  app.add_option("--max-rss-growth", o.max_rss_growth, "Largest RSS growth over the last two thirds, percent (< 0: off)");
  app.add_option("--reply-timeout", o.reply_timeout_s, "Seconds a client waits for its replies before counting them lost");
  app.add_option("--json", o.json_out, "Append the figures as one JSON line to this file");
  CLI11_PARSE(app, argc, argv);
  if (o.quick) {
    if (app.count("--requests") == 0) o.requests = 200;
    if (app.count("--concurrency") == 0) o.concurrency = 50;
    if (app.count("--fuzz") == 0) o.fuzz = 20000;
    if (app.count("--max-rss-growth") == 0) o.max_rss_growth = -1;  // too short to tell growth from warm-up
  }
  if (o.policy.empty() || o.prm.empty()) {
    auto c = load_config(default_config_path());
    if (!c) {
      std::fprintf(stderr, "flashtts-bench-soak: %s\n", c.error().message.c_str());
      return 2;
    }
    if (o.policy.empty()) o.policy = c->models.policy;
    if (o.prm.empty()) o.prm = c->models.prm;
  }
  auto server = start_server(o);
  if (!server) {
    std::fprintf(stderr, "flashtts-bench-soak: %s\n", server.error().message.c_str());
    return 2;
  }
  Server& s = **server;
  zmq::context_t ctx;
  const int64_t max_bytes = msg::Limits{}.max_message_bytes;
  auto t0 = Clock::now();

  // Two phases of the same shape: the first third of the requests and of
  // the fuzz, then the rest. Memory is measured after each (and after the
  // cancels settled), so the growth compares like with like: high-water
  // marks of batches and buffers are reached in the first phase, and what
  // grows after it is kept per request.
  std::atomic<int> next{0};
  std::atomic<int64_t> fuzzed{0};
  auto run_clients = [&](int total, int workers, Tally* out) {
    std::mutex mu;
    std::vector<std::thread> ts;
    for (int w = 0; w < workers; ++w)
      ts.emplace_back([&, w] {
        std::mt19937_64 rng(o.seed * 1000003 + w * 7919 + total);
        Tally t;
        for (int round = 0;; ++round) {
          int k = 1 + int(rng() % 7);
          int first = next.fetch_add(k);
          if (first >= total) break;
          k = std::min(k, total - first);
          session(ctx, (w + round) % 2 ? s.ipc : s.tcp, rng, k, o, &t);
        }
        std::lock_guard<std::mutex> lock(mu);
        out->add(t);
      });
    for (auto& t : ts) t.join();
  };
  int sent_before = 0;
  int64_t peak_live = 0;
  auto phase = [&](int requests, int fuzz_n, uint64_t seed, Tally* clients, Tally* fuzzed_t) {
    next = 0;
    std::vector<Tally> ft(2);
    std::vector<std::thread> fuzzers;
    for (int i = 0; i < 2; ++i)
      fuzzers.emplace_back([&, i] {
        fuzz(ctx, i ? s.ipc : s.tcp, seed + i, fuzz_n / 2 + (i ? fuzz_n % 2 : 0), max_bytes, &ft[i], &fuzzed);
      });
    std::atomic<bool> done{false};
    std::thread meter([&] {  // progress, and the requests in flight at the intake
      auto c = Client::connect(ctx, s.tcp);
      while (!done) {
        if (auto n = live_requests(*c); n > peak_live) peak_live = n;
        std::fprintf(stderr, "\rsoak: %d/%d requests sent, %lld/%d fuzzed messages, %lld in flight at most",
                     sent_before + std::min(next.load(), requests), o.requests, (long long)fuzzed.load(), o.fuzz,
                     (long long)peak_live);
        std::this_thread::sleep_for(200ms);
      }
    });
    run_clients(requests, std::max(1, o.concurrency / 4), clients);
    for (auto& f : fuzzers) f.join();
    done = true;
    meter.join();
    for (const auto& t : ft) fuzzed_t->add(t);
    sent_before += requests;
  };
  auto settled_kv = [&] {  // polled: the cancels of vanished clients settle
    int64_t used = -1;
    for (auto deadline = Clock::now() + 15s; Clock::now() < deadline; std::this_thread::sleep_for(100ms))
      if ((used = kv_blocks_used(ctx, s.tcp)) == 0) break;
    return used;
  };
  Tally warm, main_t, fuzz_t;
  phase(std::max(1, o.requests / 3), o.fuzz / 3, o.seed + 77, &warm, &fuzz_t);
  (void)settled_kv();
  const int64_t rss_warm = s.rss_kib();
  phase(o.requests - std::max(1, o.requests / 3), o.fuzz - o.fuzz / 3, o.seed + 177, &main_t, &fuzz_t);
  std::fprintf(stderr, "\n");

  // Everything answered: no KV may stay in use.
  const int64_t kv_used = settled_kv();
  const int64_t rss_end = s.rss_kib();
  const bool alive = s.alive();
  int exit_status = -1;
  Tally term = alive ? sigterm_with_work(ctx, s, 40, &exit_status) : Tally{};
  const bool socket_gone = !fs::exists(s.ipc.substr(6));
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const double growth = rss_warm > 0 ? 100.0 * double(rss_end - rss_warm) / double(rss_warm) : 0;

  Tally all = warm;
  all.add(main_t);
  struct Check {
    const char* what;
    bool ok;
    std::string value;
  };
  std::vector<Check> checks = {
      {"server alive until SIGTERM", alive, alive ? "yes" : "no (crashed)"},
      {"most requests in flight at once (sampled)", true, std::to_string(peak_live)},
      {"client requests lost", all.lost == 0, std::to_string(all.lost) + " of " + std::to_string(all.sent)},
      {"client requests answered twice", all.duplicated == 0, std::to_string(all.duplicated)},
      {"fuzzed messages unanswered", fuzz_t.lost == 0, std::to_string(fuzz_t.lost) + " of " + std::to_string(fuzz_t.sent)},
      {"fuzzed messages answered twice", fuzz_t.duplicated == 0, std::to_string(fuzz_t.duplicated)},
      {"KV blocks in use at the end", kv_used == 0, std::to_string(kv_used)},
      {"requests at SIGTERM lost or doubled", term.lost == 0 && term.duplicated == 0,
       std::to_string(term.lost) + " lost, " + std::to_string(term.duplicated) + " doubled of " +
           std::to_string(term.sent)},
      {"exit status after SIGTERM", exit_status == 0, std::to_string(exit_status)},
      {"ipc socket file removed", socket_gone, socket_gone ? "yes" : "no"},
  };
  char g[64];
  std::snprintf(g, sizeof g, "%+.1f%% (%lld -> %lld KiB)", growth, (long long)rss_warm, (long long)rss_end);
  checks.push_back({"RSS growth after the first third", o.max_rss_growth < 0 || growth < o.max_rss_growth, g});

  bool ok = true;
  std::printf("| check | value | |\n|---|---|---|\n");
  for (const auto& c : checks) {
    std::printf("| %s | %s | %s |\n", c.what, c.value.c_str(), c.ok ? "ok" : "FAILED");
    ok = ok && c.ok;
  }
  std::printf("\nclient replies by code:");
  for (const auto& [k, v] : all.by_code) std::printf(" %s %lld", k.c_str(), (long long)v);
  std::printf("\nvanished with work in flight: %lld requests; cancels sent: %lld; progress frames: %lld\n",
              (long long)all.vanished, (long long)all.cancels, (long long)all.progress);
  std::printf("fuzz replies by code:");
  for (const auto& [k, v] : fuzz_t.by_code) std::printf(" %s %lld", k.c_str(), (long long)v);
  if (!fuzz_t.undecodable_sample.empty()) std::printf("\nan undecodable reply: %s", fuzz_t.undecodable_sample.c_str());
  std::printf("\n%.1f s in all\n", secs);

  json j = {{"bench", "soak"},     {"quick", o.quick},     {"requests", o.requests}, {"concurrency", o.concurrency},
            {"fuzz", o.fuzz},      {"seed", o.seed},       {"ok", ok},               {"seconds", secs},
            {"clients", tally_json(all)}, {"fuzzed", tally_json(fuzz_t)}, {"sigterm", tally_json(term)},
            {"kv_blocks_used_after", kv_used}, {"peak_live_requests", peak_live}, {"rss_warm_kib", rss_warm}, {"rss_end_kib", rss_end},
            {"rss_growth_pct", growth}, {"exit_status", exit_status}};
  if (!o.json_out.empty()) std::ofstream(o.json_out, std::ios::app) << j.dump() << "\n";
  if (!ok) {
    std::ifstream lf(s.log);
    std::fprintf(stderr, "server log:\n%s\n", std::string(std::istreambuf_iterator<char>(lf), {}).c_str());
  }
  std::error_code ec;
  fs::remove_all(s.dir, ec);
  return ok ? 0 : 1;
}
