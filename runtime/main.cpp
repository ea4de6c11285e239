// flashtts: the one binary, with one subcommand per job.
#include <spdlog/spdlog.h>

#include "runtime/cli.h"

int main(int argc, char** argv) {
  CLI::App app{"flashtts: a test-time-scaling serving engine"};
  app.require_subcommand(1);
  flashtts::cli::Globals g;
  app.add_option("--log-level", g.log_level, "trace, debug, info, warn, error, off (serve: overrides the config)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
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
  CLI11_PARSE(app, argc, argv);
  return rc;
}
