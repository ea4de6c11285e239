// Helpers shared by the GoogleTest programs: where the shared test data and
// the built programs are, scratch folders, random-weight models, and test
// sockets standing in for an actor's peers.
//
// Thread contract: call from the test's main thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <random>
#include <sys/types.h>
#include <string>
#include <vector>

namespace flashtts::test {

// ../shared/testdata, or an empty path when it is absent (then GTEST_SKIP).
std::filesystem::path testdata_dir();

// The CMake build folder (holds flashtts and the flashtts-* tools).
std::filesystem::path binary_dir();

// A fresh, empty folder under the system temp dir, unique per call, removed
// with its contents when the test process exits.
std::filesystem::path scratch_dir(const std::string& tag);

// Runs a shell command; returns its exit status and appends stdout to *out.
int run_command(const std::string& cmd, std::string* out);

// A child process running `flashtts <args>` with stdout and stderr in `log`;
// killed with SIGKILL if still running when the object goes.
struct Child {
  pid_t pid = -1;
  Child(const std::vector<std::string>& args, const std::filesystem::path& log);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  // Sends `sig` and waits up to `t` for the exit; its status (128 + signal
  // when killed), or -1 if it did not exit.
  int stop(int sig, std::chrono::milliseconds t);
  // The exit status if it exited within `t` (no signal sent), else -1.
  int wait(std::chrono::milliseconds t);
};

// A file's whole text ("" when absent).
std::string read_file(const std::filesystem::path& p);

// Waits up to `t` for `text` to appear in the file `log`.
bool wait_for_text(const std::filesystem::path& log, const std::string& text, std::chrono::seconds t);

// Writes <dir>/flashtts.toml for the tiny models with every actor on an
// ipc:// endpoint under `dir` and clients at ipc://<dir>/client; returns its
// path. `extra` is appended to the [search] section.
std::filesystem::path write_split_config(const std::filesystem::path& dir, const std::string& extra = "");

}  // namespace flashtts::test

#define FLASHTTS_REQUIRE_TESTDATA()                                             \
  do {                                                                          \
    if (flashtts::test::testdata_dir().empty())                                 \
      GTEST_SKIP() << "../shared/testdata is absent on this machine; skipped";  \
  } while (0)

#include <chrono>
#include <map>
#include <memory>
#include <optional>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "gpu/model_config.h"
#include "messages/envelope.h"
#include "messages/msgpack_io.h"
#include "runtime/base/actor.h"
#include "runtime/client.h"
#include "runtime/config.h"
#include "runtime/base/logging.h"
#include "runtime/supervisor.h"

namespace flashtts {

struct EngineActorOptions;
struct GenerateResult;
class Tokenizer;
namespace msg {
struct GenJob;
}

}  // namespace flashtts

namespace flashtts::test {

// n normal draws (mean, stdev) from rng: random weights built in memory.
std::vector<float> randn(std::mt19937& rng, size_t n, float stdev, float mean = 0.0f);

// Writes a random-weight Hugging Face folder at `out` with flashtts-mkmodel
// and its `flags` (--arch, sizes, --seed, ...); throws std::runtime_error with
// the command and its output if mkmodel fails.
void write_model(const std::filesystem::path& out, const std::string& flags);

// A tiny random-weight Qwen2 policy and Qwen2 PRM written once per test
// process by flashtts-mkmodel: <dir>/policy and <dir>/prm.
std::filesystem::path tiny_models();

// A copy of the model folder `model` in a fresh scratch folder (tagged
// `tag`) whose generation_config.json also holds the keys of the JSON
// object `keys`, e.g. R"({"temperature": 0})" (the folder's own keys, bos
// and eos, are kept unless `keys` names them).
std::filesystem::path model_with_generation_config(const std::filesystem::path& model, const std::string& tag,
                                                   const std::string& keys);

// A configuration of the whole pipeline on tiny_models(): actors over
// inproc://, clients over `client_endpoint`, short search defaults.
Config tiny_pipeline_config(const std::string& client_endpoint);

// A TCP port that was free a moment ago on 127.0.0.1.
int free_tcp_port();

// A PULL socket bound at `ep`: a test standing in for an actor's peer.
zmq::socket_t pull_at(zmq::context_t& ctx, const std::string& ep);

// The next message on `s` within `timeout`, opened; nullopt on timeout (a
// frame that is not a message fails the test).
std::optional<msg::Envelope> recv_envelope(zmq::socket_t& s, std::chrono::milliseconds timeout);

// The next message of type M within `timeout`, skipping other types.
template <class M>
std::optional<M> recv_message(zmq::socket_t& s, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    auto env = recv_envelope(s, left);
    if (!env) break;
    if (env->type != M::kType) continue;
    auto m = msg::decode<M>(*env);
    if (m) return std::move(m).value();
    ADD_FAILURE() << m.error().message;
  }
  return std::nullopt;
}

// Test-owned inboxes standing in for an actor's peers: `names` listen at
// inproc://<tag>-<name>, and `endpoints` is the actor's peers option.
struct Peers {
  zmq::context_t& ctx;
  std::map<std::string, zmq::socket_t> in;
  std::map<std::string, std::string> endpoints;
  Peers(zmq::context_t& c, const std::string& tag, std::vector<std::string> names) : ctx(c) {
    for (const auto& n : names) {
      std::string ep = "inproc://" + tag + "-" + n;
      in.emplace(n, test::pull_at(ctx, ep));
      endpoints[n] = ep;
    }
  }
  // The next message at `peer` within `t`, which must be an M; nullopt on timeout.
  template <class M>
  std::optional<M> next(const std::string& peer, std::chrono::milliseconds t = std::chrono::seconds(2)) {
    auto env = test::recv_envelope(in.at(peer), t);
    if (!env) return std::nullopt;
    EXPECT_EQ(env->type, M::kType);
    auto d = msg::decode<M>(*env);
    EXPECT_TRUE(d.ok());
    return *d;
  }
};

// The next `n` messages of type M in arrival order, each within `timeout`;
// fewer (and a failure) when one does not come.
template <class M>
std::vector<M> recv_messages(zmq::socket_t& s, size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  std::vector<M> out;
  while (out.size() < n) {
    auto m = recv_message<M>(s, timeout);
    if (!m) {
      ADD_FAILURE() << "only " << out.size() << " of " << n << " " << M::kType << " arrived";
      break;
    }
    out.push_back(std::move(*m));
  }
  return out;
}

// An ipc:// endpoint in a fresh scratch folder.
std::string ipc_endpoint(const std::string& tag);

// CPU seconds this process has used, all its threads together: a thread
// that spins shows here, whatever the machine's speed.
double process_cpu_seconds();

// The six actors of `cfg` in this process, with their own ZeroMQ context;
// an actor failure at the end fails the test. FLASHTTS_TEST_LOG=debug shows
// the actors' logs.
struct Pipeline {
  zmq::context_t ctx;
  LogSink logs;
  Config cfg;
  std::unique_ptr<Supervisor> sup;

  explicit Pipeline(Config c);  // throws std::runtime_error when start fails
  ~Pipeline();
  Client client();  // a client of the first client endpoint
};

// A random-weight model folder written by flashtts-mkmodel with `flags` on
// the first call for `tag` (also the scratch folder's tag); later calls with
// that tag return the same folder.
const std::filesystem::path& random_model(const std::string& tag, const std::string& flags);

// The small shape of the actor tests' models (and of tiny_models()): 2
// layers, 2 KV heads of 16 dims, a 512-token vocabulary; one token's KV in
// f32 takes kSmallKvBytesPerToken (K and V x layers x KV heads x head dim x 4).
inline constexpr const char* kSmallShape =
    " --hidden 64 --layers 2 --heads 4 --kv-heads 2 --intermediate 128 --vocab 512";
inline constexpr int64_t kSmallKvBytesPerToken = 2 * 2 * 2 * 16 * 4;
// random_model(tag) of architecture `arch` in the small shape.
const std::filesystem::path& small_model(const std::string& tag, const std::string& arch, int seed);

// The shapes of Qwen2.5(-Math)-1.5B(-Instruct), the paper's policy: no
// weights, for what a model's size decides (the simulated card, the latency model).
ModelConfig qwen_1_5b();

// The tokenizer of the model folder `dir`, opened once per test process.
const Tokenizer& model_tokenizer(const std::filesystem::path& dir);

// generate() for `job` on a fresh engine of the model at `dir`: what a
// generator must reproduce token for token (EOS ignored for a forced length).
GenerateResult reference_generate(const std::filesystem::path& dir, const msg::GenJob& job);

// A GPU actor ("generator" or "verifier") under test with test-owned PULL
// sockets bound at its peers' endpoints before it starts: the test stands in
// for the scheduler, the memory arbiter and the intake. The actor is stopped
// when the harness goes.
struct EngineActorHarness {
  zmq::context_t ctx;
  std::string base;  // inproc://<tag>-<n>, the stem of every endpoint
  std::string role;
  zmq::socket_t scheduler, arbiter, intake, to_actor;
  std::unique_ptr<Actor> actor;

  EngineActorHarness(const std::string& tag, std::string role);
  ~EngineActorHarness();
  EngineActorHarness(const EngineActorHarness&) = delete;
  EngineActorHarness& operator=(const EngineActorHarness&) = delete;

  // Points `o` at `model_dir` and this harness's endpoints, with one engine thread.
  void fill(EngineActorOptions& o, const std::filesystem::path& model_dir) const;

  // Starts `body` as the actor and connects to_actor to its `inbox`.
  Status start(ActorBody body, const std::string& inbox);

  // start(), then checks the Weights report and sends a Grant of `kv_bytes`.
  void start_granted(ActorBody body, const std::string& inbox, int64_t kv_bytes, int64_t bytes_per_token);

  template <class M>
  void send(const M& m) {
    to_actor.send(zmq::buffer(msg::encode(m)), zmq::send_flags::none);
  }

  // A StatsQuery answered by the actor's StatsReply to the intake, parsed
  // (empty, and a failure, when none comes).
  msg::MapReader stats();

  // The actor's next M to the scheduler (GenDone, ScoreDone) within
  // `timeout`; a default M, and a failure, when none comes.
  template <class M>
  M done(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    auto d = recv_messages<M>(scheduler, 1, timeout);
    return d.empty() ? M{} : std::move(d[0]);
  }
};

// An EngineActorHarness for the actor whose body is `run` with options of
// type Options (GeneratorOptions, VerifierOptions), on the model folder
// `model`, whose KV takes `bytes_per_token` per token.
template <class Options>
struct EngineActorHarnessOf : EngineActorHarness {
  using Run = Status (*)(zmq::context_t&, ActorPipe&, const Options&);
  Run run;
  std::filesystem::path model;
  int64_t bytes_per_token;

  EngineActorHarnessOf(const std::string& tag, std::string role, Run r, std::filesystem::path dir, int64_t bpt)
      : EngineActorHarness(tag, std::move(role)), run(r), model(std::move(dir)), bytes_per_token(bpt) {}

  Options options() const {
    Options o;
    fill(o, model);
    return o;
  }

  Status start(const Options& o) { return EngineActorHarness::start(body(o), o.inbox); }

  // start(), then checks the Weights report and grants `kv_bytes`.
  void start_granted(int64_t kv_bytes, const Options& o) {
    EngineActorHarness::start_granted(body(o), o.inbox, kv_bytes, bytes_per_token);
  }
  void start_granted(int64_t kv_bytes = 1 << 20) { start_granted(kv_bytes, options()); }

 private:
  ActorBody body(Options o) const {
    return [run = run, o = std::move(o)](zmq::context_t& c, ActorPipe& p) { return run(c, p, o); };
  }
};

// The integer `key` of a stats map (-1, and a failure, when absent).
int64_t stat(const msg::MapReader& m, const char* key);

}  // namespace flashtts::test
