// flashtts run: the whole pipeline in this process for one problem: start
// the actors on the configuration, ask over inproc, print, stop.
#include <chrono>
#include <cstdio>

#include "runtime/cli.h"
#include "runtime/cli_solve.h"
#include "runtime/supervisor.h"

namespace flashtts::cli {

void add_run(CLI::App& app, int* rc, const Globals* g) {
  auto* sub = app.add_subcommand("run", "Solve one problem with an in-process pipeline and exit");
  struct Opts {
    std::string config;
    SolveFlags solve;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--config", o->config, "TOML configuration (default: $FLASHTTS_CONFIG, else configs/default.toml)");
  o->solve.add(sub);
  sub->callback([o, rc, g] {
    auto t0 = std::chrono::steady_clock::now();
    auto c = load_in_process_config(o->config, *g, "run");
    if (!c) { *rc = fail("run", c.error().message); return; }
    auto sink = make_log_sink(*c);
    if (!sink) { *rc = fail("run", sink.error().message); return; }
    const LogSink& logs = *sink;
    zmq::context_t ctx;
    auto sup = Supervisor::start(ctx, *c, logs);
    if (!sup) { *rc = fail("run", sup.error().message); return; }
    auto client = Client::connect(ctx, "inproc://flashtts-run");
    if (!client) { *rc = fail("run", client.error().message); return; }
    auto res = solve_and_wait(*client, o->solve, [&] { return (*sup)->watch(std::chrono::milliseconds(0)); });
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    client = make_error("closed");  // close the socket before the actors stop
    (*sup)->shutdown();
    if (!res) { *rc = fail("run", res.error().message); return; }
    print_solve_result(*res, o->solve, seconds);
    *rc = 0;
  });
}

}  // namespace flashtts::cli
