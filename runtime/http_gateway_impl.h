// The HTTP gateway's insides, shared by http_gateway.cpp (lifecycle,
// /health, /metrics, /v1/models, errors) and http_routes.cpp (/v1/solve
// and the OpenAI routes). Not for other users: include http_gateway.h.
//
// Thread contract: Impl is built and stopped by the gateway's owner; its
// route handlers run on the HTTP worker threads, and touch only the
// thread-safe members (pool, metrics, stopping, random()).
#pragma once

#include <atomic>
#include <functional>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>
#include <variant>

#include <httplib.h>

#include "runtime/http_exchange.h"
#include "runtime/http_gateway.h"
#include "runtime/http_metrics.h"
#include "runtime/http_openai.h"

namespace flashtts {

// One HTTP request's entry in the gateway's metrics, written once: at
// end(), or as "disconnected" when it goes without one (a stream whose
// client left).
class RequestRecord {
 public:
  RequestRecord(http::GatewayMetrics& m, std::string route, std::string type);
  ~RequestRecord();
  RequestRecord(const RequestRecord&) = delete;
  RequestRecord& operator=(const RequestRecord&) = delete;

  void set_type(std::string type) { type_ = std::move(type); }
  void end(int status, const std::string& outcome);

 private:
  http::GatewayMetrics& m_;
  std::string route_, type_;
  std::chrono::steady_clock::time_point t0_;
  bool ended_ = false;
};

struct HttpGateway::Impl {
  Impl(zmq::context_t& ctx, GatewayOptions opts, Logger logger)
      : o(std::move(opts)), log(std::move(logger)), pool(ctx, o.endpoint), rng(std::random_device{}()) {}

  GatewayOptions o;
  Logger log;
  http::ClientPool pool;
  http::GatewayMetrics metrics;
  std::atomic<bool> stopping{false};
  std::atomic<bool> listen_ended{false};  // the server's listening loop returned
  httplib::Server srv;
  std::thread thread;
  int port = 0;

  // A random 64-bit number (response ids, seeds of requests without one).
  uint64_t random();

  // The deadline of a request starting now.
  std::chrono::steady_clock::time_point deadline() const {
    return std::chrono::steady_clock::now() + o.request_timeout;
  }

  // A Client for work: leased, and the server known to answer (a ping
  // within ping_timeout), else `unavailable` (503) at once rather than a
  // request left waiting in the socket for a server that is not there.
  std::variant<http::ClientPool::Lease, http::HttpError> lease_for_work();

  void add_routes();
  // http_gateway.cpp
  void health(const httplib::Request& req, httplib::Response& res);
  void metrics_text(const httplib::Request& req, httplib::Response& res);
  void models(const httplib::Request& req, httplib::Response& res);
  // http_routes.cpp
  // `body` is the request's body, whatever its Content-Type.
  void solve(const std::string& body, httplib::Response& res);
  void openai(http::OpenAiApi api, const std::string& body, httplib::Response& res);

 private:
  std::mutex rng_mu_;
  std::mt19937_64 rng;
};

// The JSON body `j` with `status`.
void reply_json(httplib::Response& res, int status, const http::json& j);
// The error body of `e` with its status; ends `rec` with it.
void reply_error(httplib::Response& res, const http::HttpError& e, RequestRecord& rec);

}  // namespace flashtts
