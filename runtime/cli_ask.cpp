// flashtts ask: a client of a running server. `ask "problem"` sends one
// solve; `ask ping` and `ask stats` send the protocol's ping and stats
// requests. It pings first, so a missing server is reported in
// --connect-timeout seconds rather than after --timeout.
#include <chrono>
#include <cstdio>
#include <iostream>

#include "runtime/cli.h"
#include "runtime/cli_solve.h"
#include "runtime/config.h"

namespace flashtts::cli {

namespace {

// `ask ping`: the pong as a line, or the whole result with --json.
int run_ping(Client& client, const std::string& ep, const SolveFlags& f) {
  auto t0 = std::chrono::steady_clock::now();
  auto res = client.call("ping", msg::MapWriter(), std::chrono::milliseconds(int64_t(f.timeout_s * 1000)));
  if (!res) return fail("ask ping", res.error().message + " (server at " + ep + ")");
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (f.json) {
    std::cout << to_json_text(res->body) << "\n";
    return 0;
  }
  std::string server;
  int64_t protocol = 0;
  double uptime_ms = 0;
  (void)res->body.get_opt("server", &server);
  (void)res->body.get_opt("protocol", &protocol);
  (void)res->body.get_opt("uptime_ms", &uptime_ms);
  std::printf("pong from %s at %s: protocol %lld, up %.1f s, %.2f ms\n", server.c_str(), ep.c_str(),
              (long long)protocol, uptime_ms / 1000, ms);
  return 0;
}

// `ask stats`: every actor's counters (docs/protocol.md, "stats") as JSON;
// nested maps of counters read best that way in a terminal too.
int run_stats(Client& client, const std::string& ep, const SolveFlags& f, bool reset_peaks) {
  msg::MapWriter w;
  if (reset_peaks) w.put("reset_peaks", true);
  auto res = client.call("stats", w, std::chrono::milliseconds(int64_t(f.timeout_s * 1000)));
  if (!res) return fail("ask stats", res.error().message + " (server at " + ep + ")");
  std::cout << to_json_text(res->body) << "\n";
  return 0;
}

}  // namespace

void add_ask(CLI::App& app, int* rc, const Globals* g) {
  auto* sub = app.add_subcommand("ask", "Ask a running flashtts server to solve a problem (or: ask ping, ask stats)");
  struct Opts {
    std::string endpoint;
    double connect_timeout_s = Client::kConnectTimeout.count() / 1000.0;
    bool reset_peaks = false;
    SolveFlags solve;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--endpoint", o->endpoint,
                  "Server endpoint (default: the first client endpoint of $FLASHTTS_CONFIG, else of configs/default.toml)");
  sub->add_option("--connect-timeout", o->connect_timeout_s,
                  "Seconds to wait for the server's answer to a first ping (0 = do not ping)")
      ->check(CLI::NonNegativeNumber);
  o->solve.add(sub, /*problem_required=*/false);
  // The ask options (--endpoint, --json, --timeout, ...) may also come after
  // the word: fallthrough hands them to `ask`. A problem that is the word
  // itself goes after `--`: flashtts ask -- ping
  auto* ping = sub->add_subcommand("ping", "Check that a server answers: its protocol version and uptime")->fallthrough();
  auto* stats = sub->add_subcommand("stats", "Print every actor's counters as JSON (docs/protocol.md)")->fallthrough();
  stats->add_flag("--reset-peaks", o->reset_peaks, "Start the KV peaks again from the blocks in use after this report");
  sub->require_subcommand(0, 1);
  sub->callback([o, rc, ping, stats] {
    const bool solve = !ping->parsed() && !stats->parsed();
    if (solve && o->solve.problem.empty()) {
      *rc = fail("ask", "give the problem to solve, or `ping` or `stats` (see flashtts ask --help)");
      return;
    }
    if (!solve && !o->solve.problem.empty()) {
      *rc = fail("ask", "`" + std::string(ping->parsed() ? "ping" : "stats") + "` takes no problem");
      return;
    }
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
    if (ping->parsed()) { *rc = run_ping(*client, ep, o->solve); return; }
    if (stats->parsed()) { *rc = run_stats(*client, ep, o->solve, o->reset_peaks); return; }
    auto t0 = std::chrono::steady_clock::now();
    auto res = solve_and_wait(*client, o->solve);
    if (!res) { *rc = fail("ask", res.error().message + " (server at " + ep + ")"); return; }
    print_solve_result(*res, o->solve, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    *rc = 0;
  });
}

}  // namespace flashtts::cli
