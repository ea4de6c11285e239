// The flashtts command line: each subcommand registers its options on the
// CLI11 app and runs when chosen. Errors print one line to stderr and exit 1.
//
// Thread contract: the main thread only.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "gpu/engine.h"
#include "runtime/config.h"
#include "runtime/base/logging.h"

namespace flashtts::cli {

// Options of the top-level command that subcommands read.
struct Globals {
  std::string log_level;   // "" = not given on the command line
  std::string log_format;  // "" = not given on the command line
};

// Each registers a subcommand whose callback stores its exit status in *rc.
void add_generate(CLI::App& app, int* rc);
void add_tokenize(CLI::App& app, int* rc);
void add_score(CLI::App& app, int* rc);
void add_serve(CLI::App& app, int* rc, const Globals* g);
void add_ask(CLI::App& app, int* rc, const Globals* g);
void add_run(CLI::App& app, int* rc, const Globals* g);
void add_eval(CLI::App& app, int* rc, const Globals* g);
void add_demo(CLI::App& app, int* rc, const Globals* g);

// The configuration at `path` (the default one when empty), with the log
// level of the command line when given. Model folders are not checked.
Expected<Config> load_cli_config(const std::string& path, const Globals& g);

// Checks the model folders that the actors in `only` (empty: all) read.
Status check_model_folders(const Config& c, const std::vector<std::string>& only = {});

// load_cli_config() for a pipeline this process runs for itself (run, eval,
// demo): its clients connect at inproc://flashtts-<cmd> (no socket file, no
// port), it logs warnings only unless the command line set a level, and both
// model folders are checked.
Expected<Config> load_in_process_config(const std::string& path, const Globals& g, const std::string& cmd);

// The log sink of a configuration's log_level and log_format.
Expected<LogSink> make_log_sink(const Config& c);

// Prints "flashtts <cmd>: error: <message>" to stderr; returns 1.
int fail(const std::string& cmd, const std::string& message);

// Engine flags shared by the commands that run a model.
struct EngineFlags {
  int threads = 0;
  double kv_mb = 256;
  int block_size = 16;
  void add(CLI::App* sub);
  EngineOptions options() const;
};

}  // namespace flashtts::cli
