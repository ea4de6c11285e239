// flashtts: the one binary, with one subcommand per job.
#include <spdlog/spdlog.h>

#include <cstdio>

#include "runtime/cli.h"

namespace {

// "generate, tokenize, ..." in the order they were added.
std::string command_list(const CLI::App& app) {
  std::string s;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    s += (s.empty() ? "" : ", ") + sub->get_name();
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"flashtts: a test-time-scaling serving engine"};
  app.require_subcommand(1);
  app.footer(
      "Environment:\n"
      "  FLASHTTS_CONFIG  the TOML configuration used when a command is given no --config\n"
      "                   (serve, run, eval, generate --chat; ask reads its endpoint there);\n"
      "                   unset: configs/default.toml beside the build folder, else in the source tree\n");
  flashtts::cli::Globals g;
  app.add_option("--log-level", g.log_level, "trace, debug, info, warn, error, off (serve: overrides the config)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option("--log-format", g.log_format, "text, or json: one JSON object per line (overrides the config)")
      ->check(CLI::IsMember({"text", "json"}));
  app.parse_complete_callback(
      [&] { spdlog::set_level(spdlog::level::from_str(g.log_level.empty() ? "warn" : g.log_level)); });
  int rc = 0;
  flashtts::cli::add_generate(app, &rc);
  flashtts::cli::add_tokenize(app, &rc);
  flashtts::cli::add_score(app, &rc);
  flashtts::cli::add_serve(app, &rc, &g);
  flashtts::cli::add_ask(app, &rc, &g);
  flashtts::cli::add_run(app, &rc, &g);
  flashtts::cli::add_eval(app, &rc, &g);
  flashtts::cli::add_demo(app, &rc, &g);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // No command, or a word that is none: say which commands there are,
    // with exit status 2, the usual one for a misused command line.
    const bool no_command = dynamic_cast<const CLI::RequiredError*>(&e) || dynamic_cast<const CLI::ExtrasError*>(&e);
    if (no_command && app.get_subcommands().empty()) {
      std::vector<std::string> rest = app.remaining();
      if (rest.empty())
        std::fprintf(stderr, "flashtts: error: no command given\n");
      else
        std::fprintf(stderr, "flashtts: error: unknown command '%s'\n", rest.front().c_str());
      std::fprintf(stderr, "commands: %s\nRun 'flashtts --help' (or 'flashtts COMMAND --help') for more.\n",
                   command_list(app).c_str());
      return 2;
    }
    return app.exit(e);
  }
  return rc;
}
