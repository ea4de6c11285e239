// The flashtts binary as a user runs it, on model folders written by our own
// flashtts-mkmodel and the shipped tiny models in models/ (so this runs
// everywhere, with no shared data or Python).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/config.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::binary_dir;
using test::run_command;

std::string bin(const std::string& name) { return (binary_dir() / name).string(); }

// Writes a model once per test program.
const fs::path& model_dir(const std::string& arch) {
  static std::map<std::string, fs::path> dirs;
  auto it = dirs.find(arch);
  if (it != dirs.end()) return it->second;
  fs::path d = test::scratch_dir("cli-" + arch);
  test::write_model(d, "--arch " + arch + " --hidden 64 --layers 2 --heads 4 --kv-heads 2 --intermediate 128"
                       " --vocab 600 --seed 5");
  return dirs[arch] = d;
}

json run_json(const std::string& cmd) {
  std::string out;
  int rc = run_command(cmd + " 2>/dev/null", &out);
  EXPECT_EQ(rc, 0) << cmd;
  return json::parse(out, nullptr, /*allow_exceptions=*/false);
}

TEST(Cli, GenerateJsonHasPromptIdsTokenIdsTextAndFinishReason) {
  std::string m = model_dir("qwen2").string();
  json j = run_json(bin("flashtts") + " generate --model " + m + " --prompt 'Let a = 5.' --max-tokens 12 --temperature 0 --json");
  ASSERT_TRUE(j.is_object());
  EXPECT_FALSE(j["prompt_ids"].empty());
  EXPECT_EQ(j["finish_reason"], j["token_ids"].size() == 12 ? "length" : "stop");
  EXPECT_TRUE(j["text"].is_string());
  // The prompt ids are exactly what tokenize gives.
  json t = run_json(bin("flashtts") + " tokenize --model " + m + " --text 'Let a = 5.' --json");
  EXPECT_EQ(t["ids"], j["prompt_ids"]);
}

TEST(Cli, GreedyGenerationIsRepeatableAndSeededSamplingFollowsTheSeed) {
  std::string m = model_dir("qwen2").string();
  std::string g = bin("flashtts") + " generate --model " + m + " --prompt 'x y z' --max-tokens 16 --json";
  EXPECT_EQ(run_json(g + " --temperature 0")["token_ids"], run_json(g + " --temperature 0")["token_ids"]);
  json a = run_json(g + " --temperature 1 --seed 1"), b = run_json(g + " --temperature 1 --seed 1"),
       c = run_json(g + " --temperature 1 --seed 2");
  EXPECT_EQ(a["token_ids"], b["token_ids"]);
  EXPECT_NE(a["token_ids"], c["token_ids"]);
}

// `generate --model DIR` takes DIR's generation_config.json temperature,
// top_p and top_k as its defaults, as a served generate does: a flag wins
// over the file, the file over the built-in greedy decoding.
TEST(Cli, GenerateTakesTheModelFoldersSamplingKeysAndAFlagWinsOverThem) {
  const fs::path& m = model_dir("qwen2");
  auto ids = [](const fs::path& dir, const std::string& flags) {
    return run_json(bin("flashtts") + " generate --model " + dir.string() +
                    " --prompt 'x y z' --max-tokens 16 --json " + flags)["token_ids"];
  };
  const json greedy = ids(m, "");  // mkmodel's file has no sampling keys
  // The folder samples: seeds differ; --temperature 0 is greedy again.
  fs::path hot = test::model_with_generation_config(m, "cli-gc-hot", R"({"temperature": 1.5})");
  EXPECT_NE(ids(hot, "--seed 1"), ids(hot, "--seed 2")) << "the folder's temperature 1.5 did not apply";
  EXPECT_EQ(ids(hot, "--seed 1 --temperature 0"), greedy);
  EXPECT_EQ(ids(hot, "--seed 2 --temperature 0"), greedy);
  // The folder decodes greedily (top_k 1, whatever the temperature): seeds
  // agree with the greedy text; --top-k 0 samples at the file's temperature.
  fs::path top1 = test::model_with_generation_config(m, "cli-gc-top1", R"({"temperature": 1.5, "top_k": 1})");
  EXPECT_EQ(ids(top1, "--seed 1"), greedy);
  EXPECT_EQ(ids(top1, "--seed 2"), greedy);
  EXPECT_NE(ids(top1, "--seed 1 --top-k 0"), ids(top1, "--seed 2 --top-k 0")) << "--top-k 0 did not win";
  // A malformed file is an error naming the file and key, as for the server.
  fs::path bad = test::model_with_generation_config(m, "cli-gc-bad", R"({"top_p": 7})");
  std::string out;
  EXPECT_EQ(run_command(bin("flashtts") + " generate --model " + bad.string() + " --prompt x 2>&1", &out), 1);
  EXPECT_NE(out.find((bad / "generation_config.json").string() + ": key 'top_p' = 7"), std::string::npos) << out;
}

TEST(Cli, ScoreGivesOneProbabilityPerStep) {
  std::string m = model_dir("qwen2-prm").string();
  json j = run_json(bin("flashtts") + " score --prm " + m +
                    " --problem 'What is 2+3?' --solution '2+3 = 5.\n\nThe answer is 5.\n\n' --json");
  ASSERT_EQ(j["step_scores"].size(), 2u);
  for (double s : j["step_scores"]) {
    EXPECT_GT(s, 0.0);
    EXPECT_LT(s, 1.0);
  }
  json raw = run_json(bin("flashtts") + " score --prm " + m + " --raw 'a<extra_0>b<extra_0>c<extra_0>' --json");
  EXPECT_EQ(raw["step_scores"].size(), 3u);
}

TEST(Cli, BadInputExitsNonZeroWithAMessageNamingTheProblem) {
  std::string out;
  fs::path empty = test::scratch_dir("cli-empty");
  EXPECT_EQ(run_command(bin("flashtts") + " generate --model " + empty.string() + " --prompt x 2>&1", &out), 1);
  EXPECT_NE(out.find("config.json"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(run_command(bin("flashtts") + " score --prm " + model_dir("qwen2").string() + " --raw 'a b' 2>&1", &out), 0);
  EXPECT_NE(out.find("not a process reward model"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(run_command(bin("flashtts") + " generate --model " + model_dir("qwen2-prm").string() + " --prompt x 2>&1", &out), 0);
  EXPECT_NE(out.find("flashtts score"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(run_command(bin("flashtts") + " generate --prompt x 2>&1", &out), 0);
  EXPECT_NE(out.find("--model"), std::string::npos) << out;
}

// ---- the pipeline commands on the shipped models (issue 24) ----------------

const fs::path kShipped = fs::path(FLASHTTS_SOURCE_DIR) / "models";
const char* kProblem = "'Let a = 5. Let b = a * 3. Let c = b - 4. What is c?'";

// A configuration of the shipped models, small and on one thread each, with
// `models` appended to [models] and `search` to [search].
fs::path shipped_config(const std::string& tag, const std::string& models = "", const std::string& search = "",
                        const fs::path& policy = kShipped / "policy", const fs::path& prm = kShipped / "prm") {
  fs::path d = test::scratch_dir(tag);
  std::ofstream(d / "flashtts.toml") << "log_level = \"warn\"\n[models]\npolicy = \"" << policy.string()
                                     << "\"\nprm = \"" << prm.string() << "\"\n" << models
                                     << "[memory]\nbudget_mb = 64\n[engine]\ngenerator_threads = 1\n"
                                        "verifier_threads = 1\n[search]\nmax_steps = 4\n"
                                     << search << "[endpoints]\nclients = [\"ipc://" << (d / "client").string()
                                     << "\"]\n";
  return d / "flashtts.toml";
}

std::string flashtts() { return bin("flashtts"); }

// Runs `cmd 2>&1`; returns its exit status with the output in *out.
int run_all_output(const std::string& cmd, std::string* out) {
  out->clear();
  return run_command(cmd + " 2>&1", out);
}

TEST(Cli, AllPrintsEveryCompletionInTextModeAsInJson) {
  std::string run = flashtts() + " run --quiet --config " + shipped_config("cli-all").string() +
                    " --n 4 --seed 3 " + kProblem;
  json j = run_json(run + " --all --json");
  ASSERT_EQ(j["completions"].size(), 4u) << j.dump();
  std::string text;
  ASSERT_EQ(run_command(run + " --all", &text), 0) << text;
  ASSERT_NE(text.find("completions: 4\n"), std::string::npos) << text;
  // Each completion's line, in the server's order, with its answer and step
  // scores; then its text.
  size_t at = text.find("completions: 4\n");
  for (size_t i = 0; i < 4; ++i) {
    const json& c = j["completions"][i];
    char head[64];
    std::snprintf(head, sizeof head, "  %2zu [%.4f] answer %s  (%zu steps:", i + 1, c["score"].get<double>(),
                  c["answer"].get<std::string>().empty() ? "(none)" : c["answer"].get<std::string>().c_str(),
                  c["step_scores"].size());
    size_t next = text.find(head, at);
    ASSERT_NE(next, std::string::npos) << head << "\n" << text;
    at = next;
    std::string first_line = c["text"].get<std::string>();
    first_line = first_line.substr(0, first_line.find('\n'));
    EXPECT_NE(text.find("       " + first_line + "\n", at), std::string::npos) << first_line;
  }
  // Without --all the text has no completions.
  std::string plain;
  ASSERT_EQ(run_command(run, &plain), 0) << plain;
  EXPECT_EQ(plain.find("completions:"), std::string::npos) << plain;
  EXPECT_NE(plain.find("answer: "), std::string::npos) << plain;
}

TEST(Cli, AskPingAndAskStatsAnswerFromARunningServer) {
  test::Pipeline p(test::tiny_pipeline_config(test::ipc_endpoint("cli-ask")));
  const std::string ep = p.cfg.endpoints.clients.front(), ask = flashtts() + " ask --endpoint " + ep;
  std::string out;
  ASSERT_EQ(run_all_output(ask + " ping", &out), 0) << out;
  EXPECT_EQ(out.rfind("pong from flashtts at " + ep + ": protocol 1, up ", 0), 0u) << out;
  // The ask options may follow the word too.
  json pong = run_json(flashtts() + " ask ping --json --endpoint " + ep);
  EXPECT_EQ(pong["pong"], true);
  EXPECT_EQ(pong["protocol"], 1);
  EXPECT_EQ(pong["server"], "flashtts");

  json stats = run_json(ask + " stats");
  ASSERT_TRUE(stats.contains("actors")) << stats.dump();
  for (const auto& name : actor_names()) EXPECT_TRUE(stats["actors"].contains(name)) << name;
  // A solve first, then the intake's count of results has grown by it (and
  // by the stats request before this one).
  ASSERT_EQ(run_all_output(ask + " --quiet 'Let a = 1. What is a?'", &out), 0) << out;
  json after = run_json(ask + " stats --reset-peaks");
  EXPECT_GE(after["actors"]["intake"]["results"].get<int64_t>(),
            stats["actors"]["intake"]["results"].get<int64_t>() + 2) << after.dump();

  // Neither a problem nor a word; a word with a problem; no server.
  EXPECT_EQ(run_all_output(ask, &out), 1);
  EXPECT_NE(out.find("give the problem to solve, or `ping` or `stats`"), std::string::npos) << out;
  EXPECT_EQ(run_all_output(ask + " ping 'What is 1+1?'", &out), 1);
  EXPECT_NE(out.find("`ping` takes no problem"), std::string::npos) << out;
  std::string nobody = test::ipc_endpoint("cli-ask-none") + "-nobody";
  EXPECT_EQ(run_all_output(flashtts() + " ask --connect-timeout 0.3 --endpoint " + nobody + " stats", &out), 1);
  EXPECT_NE(out.find("no flashtts server answers at " + nobody), std::string::npos) << out;
}

TEST(Cli, BeamSearchWithNBelowTheDefaultBeamWidthSearchesWithN) {
  std::string run = flashtts() + " run --quiet --config " + shipped_config("cli-beam").string();
  for (const char* strategy : {"beam_search", "dvts"}) {
    json j = run_json(run + " --strategy " + strategy + " --n 2 --all --json " + kProblem);
    EXPECT_EQ(j["strategy"], strategy);
    EXPECT_EQ(j["n"], 2);
    EXPECT_EQ(j["beam_width"], 2) << "the default 4 lowered to n";
    EXPECT_EQ(j["completions"].size(), 2u) << j.dump();
  }
  // A width the request names is its own: n must still be a multiple of it.
  std::string out;
  EXPECT_EQ(run_all_output(run + " --strategy beam_search --n 2 --beam-width 4 " + kProblem, &out), 1);
  EXPECT_NE(out.find("'n' = 2 must be a multiple of 'beam_width' = 4"), std::string::npos) << out;
}

TEST(Cli, GenerateChatPutsTheConfiguredSystemPromptFirstAsASolveDoes) {
  std::string m = (kShipped / "policy").string();
  std::string gen = flashtts() + " generate --model " + m + " --prompt 'What is 2?' --max-tokens 1 --chat --json";
  auto ids = [&](const std::string& cmd) { return run_json(cmd)["prompt_ids"]; };
  auto chatml = [&](const std::string& system) {
    std::string text = (system.empty() ? "" : "<|im_start|>system\n" + system + "<|im_end|>\n") +
                       "<|im_start|>user\nWhat is 2?<|im_end|>\n<|im_start|>assistant\n";
    return run_json(flashtts() + " tokenize --model " + m + " --json --text '" + text + "'")["ids"];
  };
  fs::path brief = shipped_config("cli-system", "system_prompt = \"Be brief.\"\n");
  EXPECT_EQ(ids(gen + " --config " + brief.string()), chatml("Be brief."));
  EXPECT_EQ(ids("FLASHTTS_CONFIG=" + brief.string() + " " + gen), chatml("Be brief."));
  // The shipped configuration's prompt when none is named.
  EXPECT_EQ(ids("env -u FLASHTTS_CONFIG " + gen), chatml(ModelsConfig{}.system_prompt));
  // --system wins; "" is none.
  EXPECT_EQ(ids(gen + " --config " + brief.string() + " --system 'Be exact.'"), chatml("Be exact."));
  EXPECT_EQ(ids(gen + " --system ''"), chatml(""));
  std::string out;
  EXPECT_EQ(run_all_output(flashtts() + " generate --model " + m + " --prompt x --system y", &out), 1);
  EXPECT_NE(out.find("--system applies only with --chat"), std::string::npos) << out;
  EXPECT_EQ(run_all_output(gen + " --config /nonexistent/flashtts.toml", &out), 1);
  EXPECT_NE(out.find("cannot read config file '/nonexistent/flashtts.toml'"), std::string::npos) << out;
}

TEST(Cli, AnUnknownCommandListsTheCommandsAndExitsTwo) {
  std::string out;
  EXPECT_EQ(run_all_output(flashtts() + " solve 'What is 1+1?'", &out), 2);
  EXPECT_NE(out.find("flashtts: error: unknown command 'solve'"), std::string::npos) << out;
  auto lists_every_command = [](const std::string& out) {
    size_t at = out.find("\ncommands: ");
    std::string line = at == std::string::npos ? "" : out.substr(at + 1, out.find('\n', at + 1) - at - 1);
    for (const char* c : {"generate", "tokenize", "score", "serve", "ask", "run", "eval"})
      if (line.find(std::string(" ") + c + ",") == std::string::npos && !line.ends_with(std::string(" ") + c))
        return ::testing::AssertionFailure() << "no '" << c << "' in the commands line of:\n" << out;
    return ::testing::AssertionSuccess();
  };
  EXPECT_TRUE(lists_every_command(out));
  EXPECT_EQ(run_all_output(flashtts(), &out), 2);
  EXPECT_NE(out.find("flashtts: error: no command given"), std::string::npos) << out;
  EXPECT_TRUE(lists_every_command(out));
  // A known command's own mistakes keep CLI11's message and status.
  EXPECT_NE(run_all_output(flashtts() + " run", &out), 2);
  EXPECT_NE(out.find("problem is required"), std::string::npos) << out;
}

TEST(Cli, FlashttsConfigIsTheConfigurationOfEveryCommandGivenNone) {
  std::string out;
  ASSERT_EQ(run_all_output(flashtts() + " --help", &out), 0);
  EXPECT_NE(out.find("FLASHTTS_CONFIG"), std::string::npos) << out;
  // run: the file's search defaults are used.
  fs::path two = shipped_config("cli-env", "", "n = 2\nselection = \"majority\"\n");
  json j = run_json("FLASHTTS_CONFIG=" + two.string() + " " + flashtts() + " run --quiet --json " + kProblem);
  EXPECT_EQ(j["n"], 2);
  EXPECT_EQ(j["selection"], "majority");
  EXPECT_EQ(run_all_output("FLASHTTS_CONFIG=/nonexistent/x.toml " + flashtts() + " run " + kProblem, &out), 1);
  EXPECT_NE(out.find("cannot read config file '/nonexistent/x.toml'"), std::string::npos) << out;
  // ask: the file's first client endpoint is where it asks.
  test::Pipeline p(test::tiny_pipeline_config(test::ipc_endpoint("cli-env-ask")));
  fs::path at = test::scratch_dir("cli-env-ask-config") / "c.toml";
  std::ofstream(at) << "[endpoints]\nclients = [\"" << p.cfg.endpoints.clients.front() << "\"]\n";
  ASSERT_EQ(run_all_output("FLASHTTS_CONFIG=" + at.string() + " " + flashtts() + " ask ping", &out), 0) << out;
  EXPECT_NE(out.find("pong from flashtts at " + p.cfg.endpoints.clients.front()), std::string::npos) << out;
}

// The three documented prm_family values, end to end: "qwen" on the shipped
// Qwen2.5-Math-PRM-style PRM; "lm" turns a causal LM whose folder names its
// step tag and good/bad tokens into a PRM; "skywork" reaches the loader,
// which says the shipped PRM is no value-head PRM.
TEST(Cli, EachDocumentedPrmFamilyReachesTheVerifier) {
  std::string run = flashtts() + " run --quiet --json --n 2 ";
  json q = run_json(run + "--config " + shipped_config("cli-qwen", "prm_family = \"qwen\"\n").string() + " " + kProblem);
  EXPECT_EQ(q["n"], 2) << q.dump();
  EXPECT_GT(q["stats"]["prm_tokens"].get<int64_t>(), 0) << q.dump();

  fs::path lm = test::scratch_dir("cli-lm-prm") / "prm";
  fs::create_directories(lm);
  for (const auto& e : fs::directory_iterator(kShipped / "policy")) fs::create_symlink(e.path(), lm / e.path().filename());
  std::ofstream(lm / "flashtts_prm.json") << R"({"step_tag": "<extra_0>", "good_token": "+", "bad_token": "-"})";
  std::string out;
  EXPECT_EQ(run_all_output(run + "--config " + shipped_config("cli-lm-none", "", "", kShipped / "policy", lm).string() +
                               " " + kProblem, &out), 1);
  EXPECT_NE(out.find("is not a process reward model; name its family with prm_family"), std::string::npos) << out;
  json l = run_json(run + "--config " +
                    shipped_config("cli-lm", "prm_family = \"lm\"\n", "", kShipped / "policy", lm).string() + " " +
                    kProblem);
  EXPECT_EQ(l["n"], 2) << l.dump();
  EXPECT_GT(l["stats"]["prm_tokens"].get<int64_t>(), 0) << l.dump();

  EXPECT_EQ(run_all_output(run + "--config " + shipped_config("cli-skywork", "prm_family = \"skywork\"\n").string() +
                               " " + kProblem, &out), 1);
  EXPECT_NE(out.find("asks for PRM family 'value_head', but architecture Qwen2ForProcessRewardModel is a "
                     "'classifier' PRM"), std::string::npos) << out;
}

}  // namespace
}  // namespace flashtts
