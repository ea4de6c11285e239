// Helpers shared by the GoogleTest programs: where the shared test data and
// the built programs are, and scratch folders.
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
#include <memory>
#include <optional>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "messages/envelope.h"
#include "runtime/client.h"
#include "runtime/config.h"
#include "runtime/logging.h"
#include "runtime/supervisor.h"

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

// An ipc:// endpoint in a fresh scratch folder.
std::string ipc_endpoint(const std::string& tag);

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

}  // namespace flashtts::test
