// flashtts ask: a client; sends one problem to a running server. It pings
// first, so a missing server is reported in --connect-timeout seconds rather
// than after --timeout.
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
    double connect_timeout_s = Client::kConnectTimeout.count() / 1000.0;
    SolveFlags solve;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--endpoint", o->endpoint, "Server endpoint (default: the first client endpoint of the default config)");
  sub->add_option("--connect-timeout", o->connect_timeout_s,
                  "Seconds to wait for the server's answer to a first ping (0 = do not ping)")
      ->check(CLI::NonNegativeNumber);
  o->solve.add(sub);
  sub->callback([o, rc] {
    std::string ep = o->endpoint;
    if (ep.empty()) {
      auto c = load_config(default_config_path(), false);
      ep = c ? c->endpoints.clients.front() : default_config().endpoints.clients.front();
    }
    std::optional<std::chrono::milliseconds> check;
    if (o->connect_timeout_s > 0) check = std::chrono::milliseconds(int64_t(o->connect_timeout_s * 1000));
    zmq::context_t ctx;
    auto client = Client::connect(ctx, ep, check);
    if (!client) { *rc = fail("ask", client.error().message); return; }
    auto t0 = std::chrono::steady_clock::now();
    auto res = solve_and_wait(*client, o->solve);
    if (!res) { *rc = fail("ask", res.error().message + " (server at " + ep + ")"); return; }
    print_solve_result(*res, o->solve, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    *rc = 0;
  });
}

}  // namespace flashtts::cli
