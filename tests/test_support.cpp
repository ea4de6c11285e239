#include "tests/test_support.h"

#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runtime/base/mailbox.h"

#include <atomic>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <mutex>
#include <unistd.h>

namespace flashtts::test {

std::vector<float> randn(std::mt19937& rng, size_t n, float stdev, float mean) {
  std::normal_distribution<float> d(mean, stdev);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

std::filesystem::path testdata_dir() {
  std::filesystem::path p = FLASHTTS_TESTDATA;
  std::error_code ec;
  if (!std::filesystem::is_directory(p, ec)) return {};
  return p;
}

std::filesystem::path binary_dir() { return FLASHTTS_BINARY_DIR; }

namespace {

// The scratch folders this test process made, removed when it exits (not by
// a forked child, which shares the list but not the ownership).
struct ScratchFolders {
  std::mutex mu;
  std::vector<std::filesystem::path> dirs;
  pid_t owner = getpid();
  ~ScratchFolders() {
    if (getpid() != owner) return;
    std::error_code ec;
    for (const auto& d : dirs) std::filesystem::remove_all(d, ec);
  }
};

ScratchFolders& scratch_folders() {
  static ScratchFolders f;
  return f;
}

}  // namespace

std::filesystem::path scratch_dir(const std::string& tag) {
  static std::atomic<int> counter{0};
  auto p = std::filesystem::temp_directory_path() /
           ("flashtts-" + tag + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  ScratchFolders& f = scratch_folders();
  std::lock_guard<std::mutex> lock(f.mu);
  f.dirs.push_back(p);
  return p;
}

int run_command(const std::string& cmd, std::string* out) {
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    if (out) out->append(buf, n);
  int st = pclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace flashtts::test

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <mutex>
#include <stdexcept>

namespace flashtts::test {

void write_model(const std::filesystem::path& out, const std::string& flags) {
  std::string log;
  std::string cmd = (binary_dir() / "flashtts-mkmodel").string() + " --out " + out.string() + " " + flags + " 2>&1";
  if (run_command(cmd, &log) != 0) throw std::runtime_error("mkmodel failed: " + cmd + "\n" + log);
}

std::filesystem::path tiny_models() {
  static std::mutex mu;
  static std::filesystem::path dir;
  std::lock_guard<std::mutex> lock(mu);
  if (!dir.empty()) return dir;
  auto d = scratch_dir("tiny-models");
  std::string common = std::string(kSmallShape) + " --seed 7";
  for (auto [name, arch] : {std::pair{"policy", "qwen2"}, {"prm", "qwen2-prm"}})
    write_model(d / name, std::string("--arch ") + arch + common);
  dir = d;
  return dir;
}

std::filesystem::path model_with_generation_config(const std::filesystem::path& model, const std::string& tag,
                                                   const std::string& keys) {
  namespace fs = std::filesystem;
  fs::path d = scratch_dir(tag) / model.filename();
  fs::copy(model, d, fs::copy_options::recursive);
  const fs::path file = d / "generation_config.json";
  nlohmann::json g = fs::exists(file) ? nlohmann::json::parse(read_file(file)) : nlohmann::json::object();
  g.update(nlohmann::json::parse(keys));
  std::ofstream(file, std::ios::binary) << g.dump(2) << "\n";
  return d;
}

Config tiny_pipeline_config(const std::string& client_endpoint) {
  Config c = default_config();
  c.log_level = "warn";
  c.models.policy = tiny_models() / "policy";
  c.models.prm = tiny_models() / "prm";
  c.memory.budget_mb = 64;
  c.engine.generator_threads = 1;
  c.engine.verifier_threads = 1;
  c.endpoints.clients = {client_endpoint};
  // Unique inproc names per configuration: tests may run several pipelines.
  static std::atomic<int> n{0};
  int k = n++;
  for (auto& [name, ep] : c.endpoints.actors) ep = "inproc://test-" + std::to_string(k) + "-" + name;
  auto& s = c.defaults.solve;
  s.n = 4;
  s.max_steps = 2;
  s.max_tokens_per_step = 12;
  s.temperature = 0.8;
  return c;
}

int free_tcp_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  close(fd);
  return port;
}

zmq::socket_t pull_at(zmq::context_t& ctx, const std::string& ep) {
  zmq::socket_t s(ctx, zmq::socket_type::pull);
  configure_socket(s);
  s.bind(ep);
  return s;
}

std::optional<msg::Envelope> recv_envelope(zmq::socket_t& s, std::chrono::milliseconds timeout) {
  zmq::pollitem_t it{s.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&it, 1, timeout) <= 0) return std::nullopt;
  zmq::message_t m;
  if (!s.recv(m, zmq::recv_flags::dontwait)) return std::nullopt;
  auto env = msg::open(m.to_string());
  EXPECT_TRUE(env.ok()) << (env.ok() ? "" : env.error().message);
  if (!env) return std::nullopt;
  return std::move(env).value();
}

std::string ipc_endpoint(const std::string& tag) { return "ipc://" + (scratch_dir(tag) / "s").string(); }

double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

namespace {

spdlog::level::level_enum test_log_level() {
  const char* env = getenv("FLASHTTS_TEST_LOG");
  auto level = env ? parse_log_level(env) : Expected<spdlog::level::level_enum>(spdlog::level::warn);
  return level ? *level : spdlog::level::warn;
}

}  // namespace

Pipeline::Pipeline(Config c) : logs(test_log_level()), cfg(std::move(c)) {
  auto s = Supervisor::start(ctx, cfg, logs);
  if (!s) throw std::runtime_error(s.error().message);
  sup = std::move(*s);
}

Pipeline::~Pipeline() {
  if (auto failed = sup->watch(std::chrono::milliseconds(0))) ADD_FAILURE() << *failed;
  sup->shutdown();
}

Client Pipeline::client() { return Client::connect(ctx, cfg.endpoints.clients.front()).value(); }

}  // namespace flashtts::test

#include <csignal>
#include <fstream>
#include <sys/wait.h>
#include <thread>

namespace flashtts::test {

Child::Child(const std::vector<std::string>& args, const std::filesystem::path& log) {
  pid = fork();
  if (pid == 0) {
    FILE* out = std::freopen(log.c_str(), "w", stdout);
    (void)out;
    dup2(fileno(stdout), fileno(stderr));
    std::vector<char*> argv;
    std::string bin = (binary_dir() / "flashtts").string();
    argv.push_back(bin.data());
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
}

int Child::wait(std::chrono::milliseconds t) {
  if (pid <= 0) return -1;
  auto deadline = std::chrono::steady_clock::now() + t;
  for (;;) {
    int st = 0;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      pid = -1;
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int Child::stop(int sig, std::chrono::milliseconds t) {
  if (pid <= 0) return -1;
  kill(pid, sig);
  return wait(t);
}

Child::~Child() {
  if (pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

bool wait_for_text(const std::filesystem::path& log, const std::string& text, std::chrono::seconds t) {
  auto deadline = std::chrono::steady_clock::now() + t;
  while (std::chrono::steady_clock::now() < deadline) {
    if (read_file(log).find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::filesystem::path write_split_config(const std::filesystem::path& dir, const std::string& extra) {
  auto m = tiny_models();
  std::ofstream f(dir / "flashtts.toml");
  f << "log_level = \"warn\"\n"
    << "[models]\npolicy = \"" << (m / "policy").string() << "\"\nprm = \"" << (m / "prm").string() << "\"\n"
    << "[memory]\nbudget_mb = 64\n"
    << "[engine]\ngenerator_threads = 1\nverifier_threads = 1\n"
    << "[search]\nn = 4\nmax_steps = 2\nmax_tokens_per_step = 12\n" << extra
    << "[endpoints]\nclients = [\"ipc://" << (dir / "client").string() << "\"]\n";
  for (const auto& a : actor_names()) f << a << " = \"ipc://" << (dir / a).string() << "\"\n";
  return dir / "flashtts.toml";
}

}  // namespace flashtts::test

#include <map>

#include "actors/engine_actor.h"
#include "gpu/generate.h"
#include "gpu/model_loader.h"
#include "gpu/open_model.h"
#include "messages/internal.h"

namespace flashtts::test {

const std::filesystem::path& small_model(const std::string& tag, const std::string& arch, int seed) {
  return random_model(tag, "--arch " + arch + kSmallShape + " --seed " + std::to_string(seed));
}

ModelConfig qwen_1_5b() {
  ModelConfig c;
  c.architecture = "Qwen2ForCausalLM";
  c.hidden_size = 1536, c.intermediate_size = 8960, c.n_layers = 28, c.n_heads = 12, c.n_kv_heads = 2;
  c.head_dim = 128, c.vocab_size = 151936, c.max_position = 4096, c.tie_embeddings = true;
  return c;
}

const std::filesystem::path& random_model(const std::string& tag, const std::string& flags) {
  static std::mutex mu;
  static std::map<std::string, std::filesystem::path> dirs;
  std::lock_guard<std::mutex> lock(mu);
  auto it = dirs.find(tag);
  if (it != dirs.end()) return it->second;
  std::filesystem::path out = scratch_dir(tag);
  write_model(out, flags);
  return dirs[tag] = out;
}

const Tokenizer& model_tokenizer(const std::filesystem::path& dir) {
  static std::mutex mu;
  static std::map<std::filesystem::path, std::unique_ptr<Tokenizer>> toks;
  std::lock_guard<std::mutex> lock(mu);
  auto& tok = toks[dir];
  if (!tok) tok = std::move(open_tokenizer(dir)).value();
  return *tok;
}

GenerateResult reference_generate(const std::filesystem::path& dir, const msg::GenJob& job) {
  auto m = load_model(dir);
  EXPECT_TRUE(m.ok());
  EngineOptions eo;
  eo.kv_bytes = 16 << 20;
  eo.n_threads = 1;
  GenerateRequest q;
  q.prompt = job.tokens;
  q.sampling = {(float)job.temperature, (float)job.top_p, job.top_k, job.seed};
  q.max_tokens = job.max_tokens;
  if (job.forced_tokens == 0) q.stop_ids = m->config.eos_token_ids;  // a forced length ignores EOS
  q.seq_id = (uint64_t)job.beam;
  auto e = Engine::create(m->config, std::move(m->weights), eo);
  EXPECT_TRUE(e.ok());
  auto r = generate(**e, std::span<const GenerateRequest>(&q, 1));
  EXPECT_TRUE(r.ok());
  return (*r)[0];
}

namespace {

std::string next_inproc_base(const std::string& tag) {
  static std::atomic<int> n{0};
  return "inproc://" + tag + "-" + std::to_string(n++);
}

}  // namespace

EngineActorHarness::EngineActorHarness(const std::string& tag, std::string r)
    : base(next_inproc_base(tag)), role(std::move(r)) {
  scheduler = pull_at(ctx, base + "-scheduler");
  arbiter = pull_at(ctx, base + "-arbiter");
  intake = pull_at(ctx, base + "-intake");
}

EngineActorHarness::~EngineActorHarness() {
  if (actor) actor->stop(std::chrono::seconds(5));
}

void EngineActorHarness::fill(EngineActorOptions& o, const std::filesystem::path& model_dir) const {
  o.model_dir = model_dir;
  o.inbox = base + "-inbox";
  o.peers = {{"scheduler", base + "-scheduler"}, {"memory_arbiter", base + "-arbiter"}, {"intake", base + "-intake"}};
  o.n_threads = 1;
}

Status EngineActorHarness::start(ActorBody body, const std::string& inbox) {
  auto a = Actor::start(ctx, role, std::move(body));
  if (!a) return a.error();
  actor = std::move(a).value();
  to_actor = zmq::socket_t(ctx, zmq::socket_type::push);
  configure_socket(to_actor);
  to_actor.connect(inbox);
  return Status::success();
}

void EngineActorHarness::start_granted(ActorBody body, const std::string& inbox, int64_t kv_bytes,
                                       int64_t bytes_per_token) {
  Status s = start(std::move(body), inbox);
  ASSERT_TRUE(s.ok()) << s.message();
  auto w = recv_message<msg::Weights>(arbiter);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->role, role);
  send(msg::Grant{role, kv_bytes, kv_bytes / bytes_per_token});
}

msg::MapReader EngineActorHarness::stats() {
  static std::atomic<uint64_t> last_qid{100};
  uint64_t qid = ++last_qid;
  send(msg::StatsQuery{qid});
  auto r = recv_message<msg::StatsReply>(intake);
  EXPECT_TRUE(r.has_value());
  if (!r) return {};
  EXPECT_EQ(r->qid, qid);
  EXPECT_EQ(r->actor, role);
  return std::move(msg::MapReader::parse(r->stats)).value();
}

int64_t stat(const msg::MapReader& m, const char* key) {
  int64_t v = -1;
  EXPECT_TRUE(m.get(key, &v).ok()) << key;
  return v;
}

}  // namespace flashtts::test
