// flashtts: the one binary, with one subcommand per job.
#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
  CLI::App app{"flashtts: a test-time-scaling serving engine"};
  app.require_subcommand(1);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
