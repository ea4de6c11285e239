// flashtts serve: runs the actors of a configuration until SIGINT/SIGTERM.
// Under systemd (Type=notify) it tells the service manager when it is ready
// and when it stops (runtime/service_notify.h), and pings its watchdog while
// every actor answers (runtime/service_watchdog.h).
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "runtime/cli.h"
#include "runtime/http_gateway.h"
#include "runtime/service_notify.h"
#include "runtime/service_watchdog.h"
#include "runtime/supervisor.h"

namespace flashtts::cli {

namespace {

volatile std::sig_atomic_t g_stop_signal = 0;  // the signal handler's only output
void on_signal(int sig) { g_stop_signal = sig; }

// The in-process endpoint through which the HTTP gateway reaches the intake.
constexpr const char* kGatewayEndpoint = "inproc://flashtts-http";

}  // namespace

Status check_model_folders(const Config& c, const std::vector<std::string>& only) {
  auto runs = [&](const char* a) { return only.empty() || std::find(only.begin(), only.end(), a) != only.end(); };
  auto need = [&](const char* key, const std::filesystem::path& p) -> Status {
    if (p.empty()) return make_error(c.source.string() + ": " + key + " is not set");
    if (!std::filesystem::is_regular_file(p / "config.json"))
      return make_error(c.source.string() + ": " + key + " = '" + p.string() + "' is not a model folder (no config.json)");
    return Status::success();
  };
  if (runs("generator") || runs("beam_manager")) FLASHTTS_TRY(need("models.policy", c.models.policy));
  if (runs("verifier")) FLASHTTS_TRY(need("models.prm", c.models.prm));
  return Status::success();
}

Expected<Config> load_cli_config(const std::string& path, const Globals& g) {
  std::filesystem::path file = path.empty() ? default_config_path() : std::filesystem::path(path);
  auto c = load_config(file, /*check_models=*/false);
  if (!c) return c.error();
  if (!g.log_level.empty()) c->log_level = g.log_level == "critical" ? "error" : g.log_level;
  if (!g.log_format.empty()) c->log_format = g.log_format;
  return c;
}

Expected<Config> load_in_process_config(const std::string& path, const Globals& g, const std::string& cmd) {
  auto c = load_cli_config(path, g);
  if (!c) return c.error();
  c->endpoints.clients = {"inproc://flashtts-" + cmd};
  if (g.log_level.empty()) c->log_level = "warn";
  FLASHTTS_TRY(check_model_folders(*c));
  return c;
}

Expected<LogSink> make_log_sink(const Config& c) {
  auto level = parse_log_level(c.log_level);
  if (!level) return level.error();
  auto format = parse_log_format(c.log_format);
  if (!format) return format.error();
  return LogSink(*level, *format);
}

void add_serve(CLI::App& app, int* rc, const Globals* g) {
  auto* sub = app.add_subcommand("serve", "Run the actor pipeline and answer clients over ZeroMQ");
  struct Opts {
    std::string config;
    std::vector<std::string> actors, endpoints;
    std::string http;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--config", o->config, "TOML configuration (default: configs/default.toml)");
  sub->add_option("--actors", o->actors, "Run only these actors here (the others run elsewhere)")->delimiter(',');
  sub->add_option("--endpoint", o->endpoints, "Listen on these client endpoints instead of the configured ones");
  sub->add_option("--http", o->http,
                  "Also answer HTTP at HOST:PORT (port 0: a free one): /v1/solve, OpenAI-compatible "
                  "/v1/completions and /v1/chat/completions, /health, /metrics (docs/http.md)");
  sub->callback([o, rc, g] {
    auto c = load_cli_config(o->config, *g);
    if (!c) { *rc = fail("serve", c.error().message); return; }
    if (!o->endpoints.empty()) c->endpoints.clients = o->endpoints;
    if (Status s = check_model_folders(*c, o->actors); !s.ok()) { *rc = fail("serve", s.message()); return; }
    auto sink = make_log_sink(*c);
    if (!sink) { *rc = fail("serve", sink.error().message); return; }
    const LogSink& logs = *sink;

    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    zmq::context_t ctx;
    bool has_intake = o->actors.empty() || std::find(o->actors.begin(), o->actors.end(), "intake") != o->actors.end();
    // The gateway starts before the models load: /health answers 503 until
    // the intake answers its ping.
    std::unique_ptr<HttpGateway> gateway;
    if (!o->http.empty()) {
      auto addr = parse_http_address(o->http);
      if (!addr) { *rc = fail("serve", addr.error().message); return; }
      GatewayOptions go;
      std::tie(go.host, go.port) = *addr;
      if (has_intake) {
        c->endpoints.clients.push_back(kGatewayEndpoint);
        go.endpoint = kGatewayEndpoint;
      } else if (!c->endpoints.clients.empty()) {
        go.endpoint = c->endpoints.clients.front();  // the intake runs elsewhere
      } else {
        *rc = fail("serve", "--http needs the intake here or a client endpoint to reach it");
        return;
      }
      if (!c->models.policy.empty()) go.model = c->models.policy.filename().string();
      auto gw = HttpGateway::start(ctx, go, logs.make("http"));
      if (!gw) { *rc = fail("serve", gw.error().message); return; }
      gateway = std::move(*gw);
      std::printf("flashtts serve: HTTP on %s\n", gateway->url().c_str());
      std::fflush(stdout);
    }
    auto sup = Supervisor::start(ctx, *c, logs, o->actors);
    if (!sup) {
      (void)notify_service("STATUS=failed to start: " + sup.error().message);
      *rc = fail("serve", sup.error().message);
      return;
    }
    // The models are loaded and the intake listens (Supervisor::start
    // returns once every actor said ready): requests are answered from here.
    std::string status;
    if (has_intake) {
      for (const auto& ep : c->endpoints.clients)
        if (ep != kGatewayEndpoint) {
          std::printf("flashtts serve: listening on %s\n", ep.c_str());
          status += (status.empty() ? "listening on " : ", ") + ep;
        }
      if (gateway) status += (status.empty() ? "HTTP on " : "; HTTP on ") + gateway->url();
    } else {
      std::printf("flashtts serve: running %zu actor(s), no client endpoint here\n", o->actors.size());
      status = "running " + std::to_string(o->actors.size()) + " actor(s)";
    }
    std::fflush(stdout);
    if (Status s = notify_service("READY=1\nSTATUS=" + status); !s.ok())
      logs.make("serve")->warn("{}", s.message());
    // systemd's watchdog runs from READY=1 on: model loading is not timed.
    using Clock = ServiceWatchdog::Clock;
    auto watchdog = ServiceWatchdog::from_environment(logs.make("serve"), Clock::now());
    for (;;) {
      if (g_stop_signal) {
        std::string name = g_stop_signal == SIGINT ? "SIGINT" : "SIGTERM";
        (void)notify_service("STOPPING=1\nSTATUS=stopping (" + name + "): answering what is in flight");
        (*sup)->shutdown("shutting_down", "the server was stopped (" + name + ")");
        if (gateway) gateway->stop();  // after the intake answered what was in flight
        std::fprintf(stderr, "flashtts serve: stopped by %s\n", name.c_str());
        *rc = 0;
        return;
      }
      std::chrono::milliseconds wait(100);
      if (watchdog) {
        if (Clock::now() >= watchdog->due()) watchdog->tick((*sup)->probe(), Clock::now());
        auto left = std::chrono::ceil<std::chrono::milliseconds>(watchdog->due() - Clock::now());
        wait = std::clamp(left, std::chrono::milliseconds(0), wait);
      }
      std::optional<std::string> failed;
      try {
        failed = (*sup)->watch(wait);
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;  // a signal interrupted the poll: loop and look
      }
      if (!failed && gateway) failed = gateway->failed();
      if (failed) {
        (void)notify_service("STOPPING=1\nSTATUS=" + *failed);
        *rc = fail("serve", *failed);
        return;
      }
    }
  });
}

}  // namespace flashtts::cli
