// The TOML configuration: defaults, every key read back, and an error a user
// can act on (file, `section.key`, line) for each kind of mistake.
#include "runtime/config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "gpu/model_loader.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

namespace fs = std::filesystem;

// Prints the whole message when the expected part is missing.
::testing::AssertionResult contains(const std::string& message, const std::string& part) {
  if (message.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << message << "' does not contain '" << part << "'";
}

Expected<Config> parse(const std::string& text) { return parse_config(text, "configs/x.toml", /*check_models=*/false); }

// The error message of a text that must not parse.
std::string error_of(const std::string& text, bool check_models = false) {
  auto c = parse_config(text, "configs/x.toml", check_models);
  EXPECT_FALSE(c.ok()) << "parsed, but should not have:\n" << text;
  return c.ok() ? "" : c.error().message;
}

void write_file(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

TEST(Config, DefaultsKeepTheStructDefaultsAndGiveEveryActorAnInprocEndpoint) {
  Config c = default_config();
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.memory.block_size, 16);
  EXPECT_EQ(c.engine.device, "cpu");
  EXPECT_EQ(c.policies.scheduling, "fifo");
  EXPECT_FALSE(c.policies.speculation);
  EXPECT_EQ(c.step_delimiter, "\n\n");
  EXPECT_EQ(c.endpoints.clients, std::vector<std::string>{"ipc:///tmp/flashtts.sock"});
  ASSERT_EQ(c.endpoints.actors.size(), actor_names().size());
  for (const auto& name : actor_names()) EXPECT_EQ(c.endpoints.actors[name], "inproc://flashtts-" + name);
  EXPECT_TRUE(c.models.policy.empty());
  EXPECT_EQ(c.limits.max_n, msg::Limits{}.max_n);
}

TEST(Config, AnEmptyFileGivesTheDefaults) {
  auto c = parse("");
  ASSERT_TRUE(c.ok()) << c.error().message;
  Config d = default_config();
  EXPECT_EQ(c->source, fs::path("configs/x.toml"));
  EXPECT_EQ(c->endpoints.actors, d.endpoints.actors);
  EXPECT_EQ(c->memory.budget_mb, d.memory.budget_mb);
  EXPECT_EQ(c->defaults.solve.selection, d.defaults.solve.selection);
  EXPECT_EQ(c->limits.max_deadline_ms, d.limits.max_deadline_ms);
}

TEST(Config, AFileSettingEveryKeyIsReadBackExactly) {
  auto c = parse_config(R"(
log_level = "debug"
[models]
policy = "/m/policy"
prm = "rel/prm"
prm_family = "skywork"
prompt_format = "llama3"
system_prompt = "Be brief."
[memory]
budget_mb = 512.5
generator_share = 0.6
block_size = 32
[engine]
device = "auto"
generator_threads = 3
verifier_threads = 2
prefill_chunk = 64
max_batch = 8
[policies]
scheduling = "fifo"
memory_split = "static"
speculation = false
[search]
step_delimiter = "\n"
strategy = "best_of_n"
n = 6
beam_width = 3
max_steps = 5
max_tokens_per_step = 100
temperature = 0.5
top_p = 0.9
top_k = 40
seed = 1234567890123
aggregation = "min"
selection = "majority"
lookahead = 2
filter_duplicates = true
sort_completed = true
answer_marker = "Final answer:"
[generate]
max_tokens = 120
[limits]
max_message_bytes = 5000000
max_problem_bytes = 1000
max_n = 16
max_steps = 10
max_tokens_per_step = 200
max_tokens = 300
max_score_steps = 20
max_live_requests = 7
max_deadline_ms = 60000
[endpoints]
clients = ["tcp://0.0.0.0:9000", "ipc:///tmp/a.sock"]
memory_arbiter = "inproc://ma"
generator = "ipc:///tmp/gen"
verifier = "tcp://127.0.0.1:9001"
scheduler = "inproc://s"
beam_manager = "inproc://b"
intake = "inproc://i"
)",
                        "/etc/flashtts/x.toml", /*check_models=*/false);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->source, fs::path("/etc/flashtts/x.toml"));
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->models.policy, fs::path("/m/policy"));
  EXPECT_EQ(c->models.prm, fs::path("/etc/flashtts/rel/prm"));
  EXPECT_EQ(c->models.prm_family, "value_head");  // "skywork" as the loader names it
  EXPECT_EQ(c->models.prompt_format, "llama3");
  EXPECT_EQ(c->models.system_prompt, "Be brief.");
  EXPECT_DOUBLE_EQ(c->memory.budget_mb, 512.5);
  EXPECT_DOUBLE_EQ(c->memory.generator_share, 0.6);
  EXPECT_EQ(c->memory.block_size, 32);
  EXPECT_EQ(c->engine.device, "auto");
  EXPECT_EQ(c->engine.generator_threads, 3);
  EXPECT_EQ(c->engine.verifier_threads, 2);
  EXPECT_EQ(c->engine.prefill_chunk, 64);
  EXPECT_EQ(c->engine.max_batch, 8);
  EXPECT_EQ(c->policies.scheduling, "fifo");
  EXPECT_EQ(c->policies.memory_split, "static");
  EXPECT_FALSE(c->policies.speculation);
  EXPECT_EQ(c->step_delimiter, "\n");
  const msg::SolveParams& s = c->defaults.solve;
  EXPECT_EQ(s.strategy, "best_of_n");
  EXPECT_EQ(s.n, 6);
  EXPECT_EQ(s.beam_width, 3);
  EXPECT_EQ(s.max_steps, 5);
  EXPECT_EQ(s.max_tokens_per_step, 100);
  EXPECT_DOUBLE_EQ(s.temperature, 0.5);
  EXPECT_DOUBLE_EQ(s.top_p, 0.9);
  EXPECT_EQ(s.top_k, 40);
  EXPECT_EQ(s.seed, 1234567890123ull);
  EXPECT_EQ(s.aggregation, "min");
  EXPECT_EQ(s.selection, "majority");
  EXPECT_EQ(s.lookahead, 2);
  EXPECT_TRUE(s.filter_duplicates);
  EXPECT_TRUE(s.sort_completed);
  EXPECT_EQ(s.answer_marker, "Final answer:");
  EXPECT_TRUE(s.problem.empty());  // the placeholder used to validate stays out
  const msg::Limits& l = c->limits;
  EXPECT_EQ(l.max_message_bytes, 5000000);
  EXPECT_EQ(l.max_problem_bytes, 1000);
  EXPECT_EQ(l.max_n, 16);
  EXPECT_EQ(l.max_steps, 10);
  EXPECT_EQ(l.max_tokens_per_step, 200);
  EXPECT_EQ(l.max_tokens, 300);
  EXPECT_EQ(c->defaults.generate.max_tokens, 120);
  EXPECT_EQ(l.max_score_steps, 20);
  EXPECT_EQ(l.max_live_requests, 7);
  EXPECT_EQ(l.max_deadline_ms, 60000);
  EXPECT_EQ(c->endpoints.clients, (std::vector<std::string>{"tcp://0.0.0.0:9000", "ipc:///tmp/a.sock"}));
  EXPECT_EQ(c->endpoints.actors.at("memory_arbiter"), "inproc://ma");
  EXPECT_EQ(c->endpoints.actors.at("generator"), "ipc:///tmp/gen");
  EXPECT_EQ(c->endpoints.actors.at("verifier"), "tcp://127.0.0.1:9001");
  EXPECT_EQ(c->endpoints.actors.at("scheduler"), "inproc://s");
  EXPECT_EQ(c->endpoints.actors.at("beam_manager"), "inproc://b");
  EXPECT_EQ(c->endpoints.actors.at("intake"), "inproc://i");
}

TEST(Config, TheShippedDefaultFileParsesAndSaysWhatTheIssueAsksFor) {
  fs::path file = fs::path(FLASHTTS_SOURCE_DIR) / "configs" / "default.toml";
  auto c = load_config(file, /*check_models=*/false);
  ASSERT_TRUE(c.ok()) << c.error().message;
  fs::path configs = fs::absolute(file).parent_path();
  EXPECT_EQ(c->models.policy, (configs / ".." / "models" / "policy").lexically_normal());
  EXPECT_EQ(c->models.prm, (configs / ".." / "models" / "prm").lexically_normal());
  EXPECT_DOUBLE_EQ(c->memory.budget_mb, 1024);
  EXPECT_DOUBLE_EQ(c->memory.generator_share, 0.75);
  EXPECT_EQ(c->engine.device, "cpu");
  EXPECT_EQ(c->endpoints.clients, (std::vector<std::string>{"ipc:///tmp/flashtts.sock", "tcp://127.0.0.1:7797"}));
  EXPECT_EQ(c->endpoints.actors, default_config().endpoints.actors);
  EXPECT_EQ(c->defaults.solve.max_tokens_per_step, 128);
  EXPECT_EQ(c->defaults.solve.selection, "weighted");
  EXPECT_EQ(c->defaults.solve.lookahead, 0);
  EXPECT_EQ(c->defaults.solve.answer_marker, "\\boxed");
  EXPECT_EQ(c->step_delimiter, "\n\n");
  EXPECT_EQ(c->limits.max_deadline_ms, msg::Limits{}.max_deadline_ms);
  EXPECT_EQ(c->limits.max_message_bytes, msg::Limits{}.max_message_bytes);
  EXPECT_EQ(c->models.system_prompt, ModelsConfig{}.system_prompt);
}

TEST(Config, AnUnknownTopLevelKeyIsAnErrorNamingTheKeyAndTheKnownOnes) {
  std::string e = error_of("log_level = \"info\"\nloglevel = \"debug\"\n");
  EXPECT_TRUE(contains(e, "configs/x.toml: unknown key 'loglevel' on line 2"));
  EXPECT_TRUE(contains(e, "known: log_level, models, memory"));
}

TEST(Config, AnUnknownSectionIsAnErrorNamingIt) {
  std::string e = error_of("[gpu]\ndevice = \"cuda\"\n");
  EXPECT_TRUE(contains(e, "configs/x.toml: unknown key 'gpu'"));
}

TEST(Config, AnUnknownKeyInASectionIsAnErrorNamingSectionDotKey) {
  std::string e = error_of("[memory]\nbudget_mb = 10\nbudget_gb = 1\n");
  EXPECT_TRUE(contains(e, "configs/x.toml: unknown key 'memory.budget_gb' on line 3 "
                           "(known: budget_mb, generator_share, block_size, offload)"));
  EXPECT_TRUE(contains(error_of("[memory.extra]\nx = 1\n"), "unknown key 'memory.extra'"));
}

TEST(Config, AStringWhereAnIntegerBelongsIsATypeErrorWithTheLine) {
  std::string e = error_of("[memory]\n\nblock_size = \"16\"\n");
  EXPECT_TRUE(contains(e, "configs/x.toml: memory.block_size on line 3 must be an integer, not a string"));
}

TEST(Config, AnIntegerWhereABooleanBelongsIsATypeError) {
  std::string e = error_of("[policies]\nspeculation = 0\n");
  EXPECT_TRUE(contains(e, "policies.speculation on line 2 must be a boolean"));
  EXPECT_TRUE(contains(e, "not an integer"));
}

TEST(Config, ATableWhereAStringBelongsIsATypeError) {
  std::string e = error_of("[engine]\ndevice = { name = \"cpu\" }\n");
  EXPECT_TRUE(contains(e, "engine.device on line 2 must be a string, not a table"));
  EXPECT_TRUE(contains(error_of("[endpoints]\nclients = [\"ipc:///a\", 7]\n"),
              "endpoints.clients on line 2 must be an array of strings"));
  EXPECT_TRUE(contains(error_of("memory = 5\n"), "memory on line 1 must be a table ([memory]), not an integer"));
}

TEST(Config, AnIntegerIsAcceptedWhereAFloatBelongs) {
  auto c = parse("[memory]\nbudget_mb = 300\n[search]\ntemperature = 1\ntop_p = 1\n");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_DOUBLE_EQ(c->memory.budget_mb, 300);
  EXPECT_DOUBLE_EQ(c->defaults.solve.temperature, 1);
  // The reverse is not: a float is no integer.
  EXPECT_TRUE(contains(error_of("[engine]\nmax_batch = 8.0\n"),
                       "engine.max_batch on line 2 must be an integer, not a float"));
}

TEST(Config, AValueOutsideItsChoicesIsAnErrorListingThem) {
  EXPECT_TRUE(contains(error_of("[engine]\ndevice = \"gpu\"\n"),
              "configs/x.toml: engine.device = 'gpu' on line 2 is not one of: 'cpu', 'auto', 'cuda'"));
  EXPECT_TRUE(contains(error_of("log_level = \"verbose\"\n"), "log_level = 'verbose' on line 1 is not one of"));
  EXPECT_TRUE(contains(error_of("[models]\nprm_family = \"llama\"\n"),
              "models.prm_family = 'llama' on line 2 is not one of: '', 'qwen', 'skywork', 'lm'"));
  EXPECT_TRUE(contains(error_of("[models]\nprompt_format = \"alpaca\"\n"), "models.prompt_format = 'alpaca'"));
  EXPECT_TRUE(contains(error_of("[policies]\nscheduling = \"lifo\"\n"),
              "policies.scheduling = 'lifo' on line 2 is not one of: 'fifo', 'prefix', 'random', 'scatter'"));
  EXPECT_TRUE(contains(error_of("[policies]\nscheduling_max_overtaken = 0\n"), "policies.scheduling_max_overtaken"));
  EXPECT_TRUE(contains(error_of("[policies]\nscheduling_reserve = 1.5\n"),
                       "policies.scheduling_reserve = 1.5 on line 2 must be in [0, 1]"));
  EXPECT_TRUE(contains(error_of("[policies]\nmemory_split = \"dynamic\"\n"), "policies.memory_split = 'dynamic'"));
  EXPECT_TRUE(contains(error_of("[policies]\neviction = \"request\"\n"),
                       "policies.eviction = 'request' on line 2 is not one of: 'lru', 'pruned'"));
  auto c = parse("[policies]\neviction = \"pruned\"\n");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->policies.eviction, "pruned");
}

// Issue 24: the file documents "qwen", "skywork" and "lm", the loader reads
// "classifier", "value_head" and "lm_logits"; each side refused the other's.
TEST(Config, EveryDocumentedPrmFamilyIsOneTheModelLoaderReads) {
  const std::pair<const char*, PrmKind> families[] = {
      {"qwen", PrmKind::Classifier},     {"skywork", PrmKind::ValueHead},   {"lm", PrmKind::LmLogits},
      {"classifier", PrmKind::Classifier}, {"value_head", PrmKind::ValueHead}, {"lm_logits", PrmKind::LmLogits}};
  for (auto [name, kind] : families) {
    auto c = parse(std::string("[models]\nprm_family = \"") + name + "\"\n");
    ASSERT_TRUE(c.ok()) << name << ": " << c.error().message;
    auto parsed = parse_prm_family(c->models.prm_family);
    ASSERT_TRUE(parsed.ok()) << name << " -> '" << c->models.prm_family << "': " << parsed.error().message;
    EXPECT_EQ(*parsed, kind) << name;
  }
  auto detect = parse("[models]\nprm_family = \"\"\n");
  ASSERT_TRUE(detect.ok());
  EXPECT_EQ(detect->models.prm_family, "");
  // The shipped file's comment lists the three names the parser takes.
  std::ifstream f(fs::path(FLASHTTS_SOURCE_DIR) / "configs" / "default.toml");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  for (const char* doc : {"\"qwen\"", "\"skywork\"", "\"lm\""}) EXPECT_TRUE(contains(text, doc));
  EXPECT_TRUE(contains(error_of("[models]\nprm_family = \"none\"\n"), "models.prm_family = 'none' on line 2"));
}

TEST(Config, ANumberOutOfItsRangeIsAnErrorNamingKeyAndValue) {
  EXPECT_TRUE(contains(error_of("[memory]\nblock_size = 24\n"),
              "memory.block_size = 24 on line 2 must be a power of two in [1, 256]"));
  EXPECT_TRUE(contains(error_of("[memory]\nblock_size = 512\n"), "memory.block_size = 512"));
  EXPECT_TRUE(contains(error_of("[memory]\nblock_size = 0\n"), "memory.block_size = 0"));
  EXPECT_TRUE(contains(error_of("[memory]\nbudget_mb = -1\n"), "memory.budget_mb = -1 on line 2 must be >= 0 (0: from the device)"));
  EXPECT_DOUBLE_EQ(parse("[memory]\nbudget_mb = 0\n")->memory.budget_mb, 0);  // automatic
  EXPECT_TRUE(contains(error_of("[memory]\nbudget_mb = nan\n"), "memory.budget_mb on line 2 must be a finite number"));
  EXPECT_TRUE(contains(error_of("[memory]\ngenerator_share = 1\n"),
                       "memory.generator_share = 1 on line 2 must be in (0, 1)"));
  EXPECT_TRUE(contains(error_of("[memory]\ngenerator_share = 0.0\n"), "memory.generator_share = 0"));
  EXPECT_TRUE(contains(error_of("[engine]\ngenerator_threads = -1\n"),
                       "engine.generator_threads = -1 on line 2 must be >= 0"));
  EXPECT_TRUE(contains(error_of("[engine]\nprefill_chunk = 0\n"), "engine.prefill_chunk = 0 on line 2 must be >= 1"));
  EXPECT_TRUE(contains(error_of("[engine]\nmax_batch = 3000000000\n"),
              "engine.max_batch = 3000000000 on line 2 must be in [1, 2147483647]"));
  EXPECT_TRUE(contains(error_of("[limits]\nmax_n = 0\n"), "limits.max_n = 0 on line 2 must be >= 1"));
  EXPECT_TRUE(contains(error_of("[limits]\nmax_deadline_ms = -5\n"), "limits.max_deadline_ms = -5"));
  EXPECT_TRUE(contains(error_of("[search]\nseed = -1\n"), "search.seed = -1 on line 2 must be >= 0"));
  EXPECT_TRUE(contains(error_of("[generate]\nmax_tokens = 0\n"), "generate.max_tokens = 0 on line 2 must be in [1, 8192]"));
  // Within the limit the same file sets.
  EXPECT_TRUE(contains(error_of("[generate]\nmax_tokens = 500\n[limits]\nmax_tokens = 400\n"),
                       "generate.max_tokens = 500 on line 2 must be in [1, 400]"));
  EXPECT_TRUE(contains(error_of("[search]\nstep_delimiter = \"\"\n"),
                       "search.step_delimiter = \"\" on line 2 must not be empty"));
}

// Issue 19: 10^12 MiB used to pass here and fail in the KV cache with advice
// about block_size.
TEST(Config, ABudgetPastOnePebibyteIsAnErrorNamingTheKeyAndTheLargestValue) {
  EXPECT_TRUE(contains(error_of("[memory]\nbudget_mb = 1e12\n"),
                       "memory.budget_mb = 1e+12 on line 2 is over the largest accepted value, 1073741824"));
  EXPECT_TRUE(contains(error_of("[memory]\nbudget_mb = 1073741825\n"), "memory.budget_mb"));
  auto c = parse("[memory]\nbudget_mb = 1073741824\n");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_DOUBLE_EQ(c->memory.budget_mb, 1073741824.0);
}

TEST(Config, SpeculationAndItsSlowdownBoundAreRead) {
  auto c = parse_config("[policies]\nspeculation = true\nspeculation_max_slowdown = 0.2\nlive_beams = true\n", "t.toml",
                        false);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(c->policies.speculation);
  EXPECT_TRUE(c->policies.live_beams);
  EXPECT_TRUE(contains(error_of("[policies]\nlive_beams = 1\n"), "policies.live_beams on line 2 must be a boolean"));
  EXPECT_DOUBLE_EQ(c->policies.speculation_max_slowdown, 0.2);
  EXPECT_TRUE(contains(error_of("[policies]\nspeculation_max_slowdown = -0.1\n"),
                       "policies.speculation_max_slowdown = -0.1 on line 2 must be in [0, 10]"));
  // Dropping the speculation of beams certain to be pruned is on unless turned off.
  EXPECT_TRUE(c->policies.speculation_prune);
  auto off = parse_config("[policies]\nspeculation_prune = false\n", "t.toml", false);
  ASSERT_TRUE(off.ok()) << off.error().message;
  EXPECT_FALSE(off->policies.speculation_prune);
  EXPECT_TRUE(contains(error_of("[policies]\nspeculation_prune = 1\n"),
                       "policies.speculation_prune on line 2 must be a boolean"));
  // The paper's score bins are on unless turned off.
  EXPECT_TRUE(c->policies.speculation_bins);
  auto flat = parse_config("[policies]\nspeculation_bins = false\n", "t.toml", false);
  ASSERT_TRUE(flat.ok()) << flat.error().message;
  EXPECT_FALSE(flat->policies.speculation_bins);
}

TEST(Config, InvalidSearchDefaultsAreRejectedUnderTheSearchSection) {
  EXPECT_TRUE(contains(error_of("[search]\nn = 0\n"), "configs/x.toml: [search]: 'n' = 0 is out of range"));
  EXPECT_TRUE(contains(error_of("[search]\nselection = \"best\"\n"), "[search]: 'selection' = 'best'"));
  EXPECT_TRUE(contains(error_of("[search]\ntop_p = 0\n"), "[search]: 'top_p' must be in (0, 1]"));
  // The limits of the same file bound the defaults.
  EXPECT_TRUE(contains(error_of("[search]\nn = 8\n[limits]\nmax_n = 4\n"), "[search]: 'n' = 8 is out of range [1, 4]"));
  EXPECT_TRUE(contains(error_of("[search]\nstrategy = \"mcts\"\n"),
                       "[search]: 'strategy' = 'mcts' is not one of: best_of_n, beam_search, dvts"));
  EXPECT_TRUE(contains(error_of("[search]\nstrategy = \"dvts\"\nn = 6\nbeam_width = 4\n"),
                       "[search]: 'n' = 6 must be a multiple of 'beam_width' = 4 for dvts"));
  EXPECT_TRUE(contains(error_of("[search]\nlookahead = -1\n"), "[search]: 'lookahead' = -1 is out of range [0, 64]"));
  EXPECT_TRUE(contains(error_of("[search]\nlookahead = 9\n[limits]\nmax_steps = 8\n"),
                       "[search]: 'lookahead' = 9 is out of range [0, 8]"));
  EXPECT_TRUE(contains(error_of("[search]\nfilter_duplicates = 1\n"), "search.filter_duplicates"));
}

TEST(Config, BeamSearchKeysAreDefaultsForBeamSearchWhateverTheDefaultStrategy) {
  // lookahead = 2 with strategy best_of_n (and n = 6, not a multiple of 4) is
  // fine: a best_of_n request switches the beam-search defaults off.
  auto c = parse_config("[search]\nstrategy = \"best_of_n\"\nn = 6\nlookahead = 2\nfilter_duplicates = true\n",
                        "configs/x.toml", /*check_models=*/false);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->defaults.solve.lookahead, 2);
  EXPECT_TRUE(c->defaults.solve.filter_duplicates);
}

TEST(Config, AnEndpointWithoutAZeroMqSchemeIsRejected) {
  EXPECT_TRUE(contains(error_of("[endpoints]\ngenerator = \"http://x\"\n"),
              "endpoints.generator = 'http://x' on line 2 must start with inproc://, ipc:// or tcp://"));
  EXPECT_TRUE(contains(error_of("[endpoints]\nclients = [\"localhost:7797\"]\n"),
              "endpoints.clients = 'localhost:7797' on line 2 must start with"));
  EXPECT_TRUE(contains(error_of("[endpoints]\nintake = \"tcp://\"\n"), "endpoints.intake = 'tcp://'"));
}

TEST(Config, AClientEndpointCannotBeInproc) {
  EXPECT_TRUE(contains(error_of("[endpoints]\nclients = [\"ipc:///tmp/a\", \"inproc://clients\"]\n"),
              "endpoints.clients = 'inproc://clients' on line 2 cannot be inproc://"));
}

TEST(Config, ClientsMustListAtLeastOneEndpoint) {
  EXPECT_TRUE(contains(error_of("[endpoints]\nclients = []\n"),
                       "endpoints.clients = [] on line 2 must list at least one"));
}

TEST(Config, TwoSocketsOnOneEndpointAreAnError) {
  EXPECT_TRUE(contains(error_of("[endpoints]\ngenerator = \"inproc://x\"\nverifier = \"inproc://x\"\n"),
              "endpoints.verifier = 'inproc://x' on line 3 is also endpoints.generator"));
  EXPECT_TRUE(contains(error_of("[endpoints]\nclients = [\"ipc:///a\", \"ipc:///a\"]\n"), "lists 'ipc:///a' twice"));
}

TEST(Config, AMissingModelFolderIsAnErrorNamingItsAbsolutePath) {
  fs::path d = test::scratch_dir("config-missing");
  std::string e = error_of("[models]\npolicy = \"" + (d / "nope").string() + "\"\nprm = \"" + d.string() + "\"\n",
                           /*check_models=*/true);
  EXPECT_TRUE(contains(e, "configs/x.toml: models.policy = '" + (d / "nope").string() +
                           "' on line 2 is not a model folder (it does not exist)"));
}

TEST(Config, AFolderWithoutConfigJsonIsNotAModelFolder) {
  fs::path d = test::scratch_dir("config-nojson");
  write_file(d / "policy" / "config.json", "{}");
  std::string e = error_of("[models]\npolicy = \"" + (d / "policy").string() + "\"\nprm = \"" + d.string() + "\"\n",
                           /*check_models=*/true);
  EXPECT_TRUE(contains(e, "models.prm = '" + d.string() + "' on line 3 is not a model folder (no config.json)"));
}

TEST(Config, ModelsMustBeSetWhenTheyAreChecked) {
  EXPECT_TRUE(contains(error_of("", /*check_models=*/true), "configs/x.toml: models.policy is not set"));
  EXPECT_TRUE(parse("").ok());
  // A mistake in the text is reported before the missing folders.
  EXPECT_TRUE(contains(error_of("[memory]\nbudget_gb = 1\n", /*check_models=*/true), "unknown key 'memory.budget_gb'"));
}

TEST(Config, ARelativeModelPathIsResolvedAgainstTheConfigFilesFolder) {
  fs::path d = test::scratch_dir("config-relative");
  write_file(d / "models" / "policy" / "config.json", "");
  write_file(d / "models" / "prm" / "config.json", "");
  fs::path file = d / "etc" / "server.toml";
  write_file(file, "[models]\npolicy = \"../models/./policy\"\nprm = \"../models/prm/\"\n");
  auto c = load_config(file, /*check_models=*/true);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->models.policy, (d / "models" / "policy").lexically_normal());
  EXPECT_TRUE(c->models.policy.is_absolute());
  EXPECT_EQ(c->models.prm.lexically_relative(d / "models" / "prm"), fs::path("."));
  EXPECT_EQ(c->source, file);
}

TEST(Config, ATomlSyntaxErrorNamesTheFileAndTheLine) {
  std::string e = error_of("[memory]\nbudget_mb = \n");
  EXPECT_TRUE(contains(e, "configs/x.toml: invalid TOML on line 2"));
  EXPECT_TRUE(contains(error_of("a = 1\na = 2\n"), "configs/x.toml: invalid TOML"));
}

TEST(Config, AnUnreadableFileIsAnErrorNamingIt) {
  fs::path d = test::scratch_dir("config-unreadable");
  auto c = load_config(d / "absent.toml", false);
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(contains(c.error().message, "cannot read config file '" + (d / "absent.toml").string() + "'"));
  auto dir = load_config(d, false);
  ASSERT_FALSE(dir.ok());
  EXPECT_TRUE(contains(dir.error().message, "not a regular file"));
}

TEST(Config, TheDefaultPathIsTheEnvironmentVariableElseTheShippedFile) {
  const char* old = std::getenv("FLASHTTS_CONFIG");
  std::string saved = old ? old : "";
  setenv("FLASHTTS_CONFIG", "/somewhere/flashtts.toml", 1);
  EXPECT_EQ(default_config_path(), fs::path("/somewhere/flashtts.toml"));
  unsetenv("FLASHTTS_CONFIG");
  fs::path p = default_config_path();
  EXPECT_EQ(p.filename(), "default.toml");
  EXPECT_TRUE(fs::exists(p)) << p;
  if (old) setenv("FLASHTTS_CONFIG", saved.c_str(), 1);
}

}  // namespace
}  // namespace flashtts

