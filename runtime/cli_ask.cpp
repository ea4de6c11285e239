// flashtts ask: a client; sends one problem to a running server.
#include <chrono>
#include <iostream>

#include "runtime/cli.h"
#include "runtime/cli_solve.h"
#include "runtime/config.h"

namespace flashtts::cli {

void add_ask(CLI::App& app, int* rc, const Globals* g) {
  auto* sub = app.add_subcommand("ask", "Ask a running flashtts server to solve a problem");
  struct Opts {
    std::string endpoint;
    SolveFlags solve;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--endpoint", o->endpoint, "Server endpoint (default: the first client endpoint of the default config)");
  o->solve.add(sub);
  sub->callback([o, rc] {
    std::string ep = o->endpoint;
    if (ep.empty()) {
      auto c = load_config(default_config_path(), false);
      ep = c ? c->endpoints.clients.front() : default_config().endpoints.clients.front();
    }
    zmq::context_t ctx;
    auto client = Client::connect(ctx, ep);
    if (!client) { *rc = fail("ask", client.error().message); return; }
    auto t0 = std::chrono::steady_clock::now();
    auto res = solve_and_wait(*client, o->solve);
    if (!res) { *rc = fail("ask", res.error().message + " (server at " + ep + ")"); return; }
    print_solve_result(*res, o->solve, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    *rc = 0;
  });
}

}  // namespace flashtts::cli
