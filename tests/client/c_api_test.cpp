// The C API (include/flashtts/flashtts.h) on its own, linked against the
// shared client library only (no engine): argument errors, no server, and
// a scripted server (a ROUTER socket in this test) that answers with
// results, progress events, protocol errors and garbage, so each status and
// sentence is checked exactly. The C example against a real server is
// tests/client/test_c_example.sh.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <unistd.h>

#include <zmq.hpp>

#include "flashtts/flashtts.h"
#include "messages/msgpack_io.h"

namespace {

using flashtts::msg::MapReader;
using flashtts::msg::MapWriter;

std::string unique_ipc(const char* what) {
  static std::atomic<int> n{0};
  return "ipc:///tmp/flashtts-capi-" + std::string(what) + "-" + std::to_string(getpid()) + "-" +
         std::to_string(n++) + ".sock";
}

// A string the library returned, released on scope exit.
struct Owned {
  char* s = nullptr;
  ~Owned() { flashtts_free_string(s); }
  std::string str() const { return s ? s : "(null)"; }
};

// A reply frame to `req`: `fields` with the protocol version and req's id.
std::string framed(const MapReader& req, const MapWriter& fields) {
  MapWriter frame;
  frame.put("v", int64_t(1)).put_raw("id", req.raw("id")).merge(fields);
  return frame.bytes();
}

// A server that answers each request with the frames `script` returns for
// it. Runs on its own thread with its own context, as a real server is
// another process.
class ScriptedServer {
 public:
  using Script = std::function<std::vector<std::string>(const MapReader& request)>;
  ScriptedServer(std::string endpoint, Script script) : endpoint_(std::move(endpoint)) {
    router_.set(zmq::sockopt::linger, 0);
    router_.bind(endpoint_);
    thread_ = std::thread([this, script = std::move(script)] { serve(script); });
  }
  ~ScriptedServer() {
    stop_ = true;
    thread_.join();
    // The socket file stays in /tmp after the process otherwise.
    router_.close();
    std::error_code ec;
    std::filesystem::remove(endpoint_.substr(std::string_view("ipc://").size()), ec);
  }
  const std::string& endpoint() const { return endpoint_; }
  std::vector<std::string> seen_types() {
    std::lock_guard<std::mutex> l(mu_);
    return seen_;
  }
  std::string last_request() {
    std::lock_guard<std::mutex> l(mu_);
    return last_;
  }

 private:
  void serve(const Script& script) {
    while (!stop_) {
      zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(20));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::message_t who, body;
      (void)router_.recv(who);
      (void)router_.recv(body);
      auto req = MapReader::parse(body.to_string());
      if (!req) continue;
      std::string type;
      (void)req->get("type", &type);
      {
        std::lock_guard<std::mutex> l(mu_);
        seen_.push_back(type);
        last_ = body.to_string();
      }
      for (const std::string& bytes : script(*req)) {
        router_.send(zmq::buffer(who.to_string()), zmq::send_flags::sndmore);
        router_.send(zmq::buffer(bytes), zmq::send_flags::none);
      }
    }
  }

  std::string endpoint_;
  zmq::context_t ctx_;
  zmq::socket_t router_{ctx_, zmq::socket_type::router};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> seen_;
  std::string last_;
  std::thread thread_;
};

MapWriter result(const std::string& request, const MapWriter& body) {
  MapWriter w;
  w.put("type", "result").put("request", request).put("result", body);
  return w;
}

MapWriter error(const std::string& code, const std::string& message) {
  MapWriter w;
  w.put("type", "error").put("code", code).put("message", message);
  return w;
}

MapWriter pong() {
  MapWriter b;
  b.put("pong", true).put("protocol", int64_t(1)).put("server", "flashtts");
  return result("ping", b);
}

// The usual server: pongs, and answers solve per its problem text.
std::vector<std::string> usual(const MapReader& req) {
  std::string type, problem;
  (void)req.get("type", &type);
  if (type == "ping") return {framed(req, pong())};
  if (type == "cancel") return {};  // never confirmed
  (void)req.get_opt("problem", &problem);
  if (problem == "slow") return {};  // never answered: the client times out
  if (problem == "refused") return {framed(req, error("bad_request", "solve: 'n' = 0 is out of range [1, 256]"))};
  if (problem == "garbage") return {"\xc1 is no msgpack"};
  MapWriter ev1, ev2, p1, p2;
  ev1.put("kind", "generated").put("beam", int64_t(0));
  ev2.put("kind", "completed").put("beam", int64_t(0));
  p1.put("type", "progress").put("event", ev1);
  p2.put("type", "progress").put("event", ev2);
  MapWriter body;
  body.put("answer", "15").put("score", 0.75).put("strategy", "best_of_n").put("n", int64_t(2));
  return {framed(req, p1), framed(req, p2), framed(req, result(type, body))};
}

TEST(CApi, VersionAndStatusNamesAreStaticStrings) {
  EXPECT_STREQ(flashtts_version(), FLASHTTS_TEST_VERSION);
  EXPECT_STREQ(flashtts_status_name(FLASHTTS_OK), "ok");
  EXPECT_STREQ(flashtts_status_name(FLASHTTS_ERROR_TIMEOUT), "timeout");
  EXPECT_STREQ(flashtts_status_name(static_cast<flashtts_status>(99)), "unknown");
}

TEST(CApi, NullArgumentsAreArgumentErrorsWithASentence) {
  Owned err;
  flashtts_status st = FLASHTTS_OK;
  EXPECT_EQ(flashtts_connect(nullptr, 0, &st, &err.s), nullptr);
  EXPECT_EQ(st, FLASHTTS_ERROR_ARGUMENT);
  EXPECT_EQ(err.str(), "the endpoint is NULL or empty");
  Owned e2;
  EXPECT_EQ(flashtts_ping(nullptr, 100, &e2.s), FLASHTTS_ERROR_ARGUMENT);
  EXPECT_EQ(e2.str(), "the client handle is NULL");
  EXPECT_EQ(flashtts_solve(nullptr, "p", nullptr, 100, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
            FLASHTTS_ERROR_ARGUMENT);  // a NULL error pointer is fine too
  flashtts_close(nullptr);
  flashtts_free_string(nullptr);
}

TEST(CApi, AMalformedEndpointFailsToConnect) {
  Owned err;
  flashtts_status st = FLASHTTS_OK;
  EXPECT_EQ(flashtts_connect("nowhere", 0, &st, &err.s), nullptr);
  EXPECT_EQ(st, FLASHTTS_ERROR_CONNECT);
  EXPECT_NE(err.str().find("cannot connect to 'nowhere'"), std::string::npos) << err.str();
}

TEST(CApi, NoServerIsAConnectErrorNamingTheEndpointWithinTheTimeout) {
  std::string ep = unique_ipc("none");
  Owned err;
  flashtts_status st = FLASHTTS_OK;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(flashtts_connect(ep.c_str(), 300, &st, &err.s), nullptr);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_EQ(st, FLASHTTS_ERROR_CONNECT);
  EXPECT_EQ(err.str(), "no flashtts server answers at " + ep + " (no reply to ping within 0.3 s)");
  // Without the check the handle is made; its ping then fails the same way.
  Owned err2;
  flashtts_client* c = flashtts_connect(ep.c_str(), 0, &st, &err2.s);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(st, FLASHTTS_OK);
  EXPECT_EQ(err2.s, nullptr);
  Owned err3;
  EXPECT_EQ(flashtts_ping(c, 200, &err3.s), FLASHTTS_ERROR_CONNECT);
  EXPECT_EQ(err3.str(), "no flashtts server answers at " + ep + " (no reply to ping within 0.2 s)");
  flashtts_close(c);
}

class CApiWithServer : public ::testing::Test {
 protected:
  void SetUp() override {
    flashtts_status st;
    Owned err;
    c_ = flashtts_connect(server_.endpoint().c_str(), 2000, &st, &err.s);
    ASSERT_NE(c_, nullptr) << err.str();
  }
  void TearDown() override { flashtts_close(c_); }
  ScriptedServer server_{unique_ipc("scripted"), usual};
  flashtts_client* c_ = nullptr;
};

TEST_F(CApiWithServer, SolveReturnsTheAnswerTheScoreAndTheResultMapInTheServersOrder) {
  Owned answer, result, err;
  double score = 0;
  ASSERT_EQ(flashtts_solve(c_, "What is b?", "{\"n\": 2, \"temperature\": 0.5, \"strategy\": \"best_of_n\"}", 2000,
                           nullptr, nullptr, &answer.s, &score, &result.s, &err.s),
            FLASHTTS_OK)
      << err.str();
  EXPECT_EQ(answer.str(), "15");
  EXPECT_DOUBLE_EQ(score, 0.75);
  EXPECT_EQ(result.str(), R"({"answer":"15","score":0.75,"strategy":"best_of_n","n":2})");
  EXPECT_EQ(err.s, nullptr);
  // The request carried the problem and the params, typed as JSON had them.
  auto req = MapReader::parse(server_.last_request());
  ASSERT_TRUE(req.ok());
  std::string problem, strategy;
  int64_t n = 0;
  double t = 0;
  EXPECT_TRUE(req->get("problem", &problem).ok());
  EXPECT_TRUE(req->get("n", &n).ok());
  EXPECT_TRUE(req->get("temperature", &t).ok());
  EXPECT_TRUE(req->get("strategy", &strategy).ok());
  EXPECT_EQ(problem, "What is b?");
  EXPECT_EQ(n, 2);
  EXPECT_DOUBLE_EQ(t, 0.5);
  EXPECT_FALSE(req->has("stream")) << "no callback: no streaming";
}

TEST_F(CApiWithServer, AProgressCallbackStreamsAndSeesEveryEventBeforeTheResult) {
  std::vector<std::string> events;
  auto cb = [](const char* event_json, void* user) { static_cast<std::vector<std::string>*>(user)->push_back(event_json); };
  Owned answer, err;
  ASSERT_EQ(flashtts_solve(c_, "What is b?", nullptr, 2000, cb, &events, &answer.s, nullptr, nullptr, &err.s),
            FLASHTTS_OK)
      << err.str();
  EXPECT_EQ(events, (std::vector<std::string>{R"({"kind":"generated","beam":0})", R"({"kind":"completed","beam":0})"}));
  auto req = MapReader::parse(server_.last_request());
  bool stream = false;
  ASSERT_TRUE(req.ok());
  EXPECT_TRUE(req->get("stream", &stream).ok());
  EXPECT_TRUE(stream);
}

TEST_F(CApiWithServer, AServerErrorCarriesItsProtocolCode) {
  Owned answer, err;
  EXPECT_EQ(flashtts_solve(c_, "refused", "", 2000, nullptr, nullptr, &answer.s, nullptr, nullptr, &err.s),
            FLASHTTS_ERROR_SERVER);
  EXPECT_EQ(err.str(), "bad_request: solve: 'n' = 0 is out of range [1, 256]");
  EXPECT_EQ(answer.s, nullptr) << "no output on failure";
}

TEST_F(CApiWithServer, NoAnswerInTimeIsATimeoutAndTheRequestIsCancelled) {
  Owned err;
  EXPECT_EQ(flashtts_solve(c_, "slow", nullptr, 100, nullptr, nullptr, nullptr, nullptr, nullptr, &err.s),
            FLASHTTS_ERROR_TIMEOUT);
  EXPECT_NE(err.str().find("timed out: no answer within 0.1 s; a cancel was sent"), std::string::npos) << err.str();
  auto seen = server_.seen_types();
  EXPECT_EQ(seen.back(), "cancel");
}

TEST_F(CApiWithServer, AFrameThatIsNoMsgpackIsAProtocolError) {
  Owned err;
  EXPECT_EQ(flashtts_solve(c_, "garbage", nullptr, 2000, nullptr, nullptr, nullptr, nullptr, nullptr, &err.s),
            FLASHTTS_ERROR_PROTOCOL);
  EXPECT_NE(err.str().find("bad frame from the server"), std::string::npos) << err.str();
}

TEST_F(CApiWithServer, BadParamsAreRefusedBeforeAnythingIsSent) {
  size_t before = server_.seen_types().size();
  struct Case {
    const char* params;
    const char* sentence;
  } cases[] = {
      {"{\"n\": ", "params_json is not JSON: "},
      {"[1]", "params_json must be a JSON object, not array"},
      {"{\"problem\": \"x\"}", "params_json must not hold \"problem\": the library sets it"},
      {"{\"id\": 3}", "params_json must not hold \"id\": the library sets it"},
  };
  for (const Case& k : cases) {
    Owned err;
    EXPECT_EQ(flashtts_solve(c_, "p", k.params, 2000, nullptr, nullptr, nullptr, nullptr, nullptr, &err.s),
              FLASHTTS_ERROR_ARGUMENT)
        << k.params;
    EXPECT_EQ(err.str().rfind(k.sentence, 0), 0u) << err.str();
  }
  Owned err;
  EXPECT_EQ(flashtts_solve(c_, "p", nullptr, 0, nullptr, nullptr, nullptr, nullptr, nullptr, &err.s),
            FLASHTTS_ERROR_ARGUMENT);
  EXPECT_EQ(err.str(), "timeout_ms must be positive (got 0)");
  EXPECT_EQ(server_.seen_types().size(), before);
}

TEST_F(CApiWithServer, AnyRequestGoesThroughFlashttsRequest) {
  Owned result, err;
  ASSERT_EQ(flashtts_request(c_, "ping", nullptr, 2000, nullptr, nullptr, &result.s, &err.s), FLASHTTS_OK) << err.str();
  EXPECT_EQ(result.str(), R"({"pong":true,"protocol":1,"server":"flashtts"})");
  Owned generated;
  ASSERT_EQ(flashtts_request(c_, "generate", "{\"prompt\": \"x\"}", 2000, nullptr, nullptr, &generated.s, &err.s),
            FLASHTTS_OK)
      << err.str();
  EXPECT_EQ(generated.str(), R"({"answer":"15","score":0.75,"strategy":"best_of_n","n":2})");
  Owned bad;
  EXPECT_EQ(flashtts_request(c_, "", nullptr, 2000, nullptr, nullptr, nullptr, &bad.s), FLASHTTS_ERROR_ARGUMENT);
  EXPECT_EQ(bad.str(), "the request type is NULL or empty");
}

}  // namespace
