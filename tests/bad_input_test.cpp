// Bad input through real sockets (issue 19, items 4 and 5): every frame the
// server sends is one a strict msgpack decoder reads (every string UTF-8,
// whatever bytes the request held), and input over a model's limits answers
// too_large naming the limit, never internal.
#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include <msgpack.hpp>
#include <zmq.hpp>

#include "gpu/open_model.h"
#include "gpu/unicode.h"
#include "messages/msgpack_io.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

using namespace std::chrono_literals;

// A bare DEALER: the test sees the server's bytes exactly as sent.
class RawClient {
 public:
  RawClient(zmq::context_t& ctx, const std::string& endpoint) : s_(ctx, zmq::socket_type::dealer) {
    s_.set(zmq::sockopt::linger, 0);
    s_.connect(endpoint);
  }
  void send(const std::string& bytes) { s_.send(zmq::buffer(bytes), zmq::send_flags::none); }
  std::optional<std::string> recv(std::chrono::milliseconds timeout) {
    zmq::pollitem_t it{s_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&it, 1, timeout) <= 0) return std::nullopt;
    zmq::message_t m;
    if (!s_.recv(m, zmq::recv_flags::dontwait)) return std::nullopt;
    return m.to_string();
  }

 private:
  zmq::socket_t s_;
};

// The path of the first string in `o` that is not UTF-8 ("" when there is
// none). gpu/unicode judges, not messages/utf8, which is under test. A `bin`
// counts as bad: the server sends text as `str` only.
std::string first_bad_string(const msgpack::object& o, const std::string& path) {
  switch (o.type) {
    case msgpack::type::STR: {
      std::string_view s(o.via.str.ptr, o.via.str.size);
      return unicode::to_valid_utf8(s) == s ? "" : path;
    }
    case msgpack::type::BIN: return path + " (bin)";
    case msgpack::type::ARRAY:
      for (uint32_t i = 0; i < o.via.array.size; ++i)
        if (auto p = first_bad_string(o.via.array.ptr[i], path + "[" + std::to_string(i) + "]"); !p.empty()) return p;
      return "";
    case msgpack::type::MAP:
      for (uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        if (auto p = first_bad_string(kv.key, path + " key"); !p.empty()) return p;
        std::string name = "?";
        if (kv.key.type == msgpack::type::STR) name.assign(kv.key.via.str.ptr, kv.key.via.str.size);
        if (auto p = first_bad_string(kv.val, path + "." + name); !p.empty()) return p;
      }
      return "";
    default: return "";
  }
}

struct Frame {
  std::string type, code, message;
  bool nil_id = false;
  msg::MapReader map;
};

// Checks that every string of `bytes` is UTF-8, then reads the frame.
Frame read_frame(const std::string& bytes) {
  Frame f;
  auto h = msgpack::unpack(bytes.data(), bytes.size());
  std::string bad = first_bad_string(h.get(), "frame");
  EXPECT_EQ(bad, "") << "not UTF-8 at " << bad << " in " << testing::PrintToString(bytes);
  auto r = msg::MapReader::parse(bytes);
  EXPECT_TRUE(r.ok());
  if (!r) return f;
  f.map = *r;
  (void)f.map.get("type", &f.type);
  (void)f.map.get_opt("code", &f.code);
  (void)f.map.get_opt("message", &f.message);
  f.nil_id = f.map.is_nil("id");
  return f;
}

// The final frame of the next request, every frame on the way checked.
Frame final_frame(RawClient& c, std::chrono::seconds timeout = 60s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto bytes = c.recv(100ms);
    if (!bytes) continue;
    Frame f = read_frame(*bytes);
    if (f.type != "progress") return f;
  }
  ADD_FAILURE() << "no final frame";
  return {};
}

std::string request(const std::function<void(msg::MapWriter&)>& fill) {
  msg::MapWriter w;
  fill(w);
  return w.bytes();
}

TEST(BadInput, InvalidUtf8AnywhereInARequestGetsAReplyAStrictDecoderReadsWithTheRightCode) {
  test::Pipeline p(test::tiny_pipeline_config(test::ipc_endpoint("utf8")));
  RawClient c(p.ctx, p.cfg.endpoints.clients.front());
  struct Case {
    std::string what, bytes, code, words;
    bool nil_id = false;
  };
  auto solve_with = [](int id, const char* key, const std::string& value) {
    return request([&](auto& w) { w.put("id", id).put("type", "solve").put("problem", "p").put(key, value); });
  };
  const std::vector<Case> cases = {
      {"type", request([](auto& w) { w.put("id", 1).put("type", "fly\xFF\x01"); }), "unknown_type",
       "'fly\\xFF\\x01'"},
      {"unknown key", request([](auto& w) { w.put("id", 2).put("type", "ping").put("x\xC3", 1); }), "bad_request",
       "unknown field 'x\\xC3'"},
      {"strategy", solve_with(3, "strategy", "b\xE2\x82"), "bad_request", "'strategy' = 'b\\xE2\\x82'"},
      {"selection", solve_with(4, "selection", "\xC0\xAF"), "bad_request", "'selection' = '\\xC0\\xAF'"},
      {"id", request([](auto& w) { w.put("id", "r\xFF").put("type", "ping"); }), "bad_request",
       "'id' is not valid UTF-8 at byte offset 1", true},
      {"cancel target", request([](auto& w) { w.put("id", 5).put("type", "cancel").put("target", "\xED\xA0\x80"); }),
       "bad_request", "'target' is not valid UTF-8 at byte offset 0"},
      {"problem", request([](auto& w) { w.put("id", 6).put("type", "solve").put("problem", "2 + 2 = \xF5?"); }),
       "bad_request", "'problem' is not valid UTF-8 at byte offset 8"},
      {"prompt", request([](auto& w) { w.put("id", 7).put("type", "generate").put("prompt", "Hi \xE2\x82"); }),
       "bad_request", "'prompt' is not valid UTF-8 at byte offset 3"},
      {"steps", request([](auto& w) {
         w.put("id", 8).put("type", "score").put("problem", "p").put("steps", std::vector<std::string>{"1", "\x80"});
       }),
       "bad_request", "'steps[1]' is not valid UTF-8 at byte offset 0"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.what);
    c.send(k.bytes);
    Frame f = final_frame(c, 10s);
    EXPECT_EQ(f.type, "error");
    EXPECT_EQ(f.code, k.code) << f.message;
    EXPECT_NE(f.message.find(k.words), std::string::npos) << f.message;
    EXPECT_EQ(f.nil_id, k.nil_id);
  }

  // Results and progress of valid non-ASCII text: the tokenizer's decode
  // keeps model output UTF-8 on every path to the client.
  c.send(request([](auto& w) {
    w.put("id", "solve-\xC3\xA9").put("type", "solve").put("problem", "Wie viel ist 2 + 2? \xC3\x84\xF0\x9F\x98\x80");
    w.put("stream", true).put("return_completions", true);
  }));
  Frame solve = final_frame(c);
  EXPECT_EQ(solve.type, "result") << solve.code << ": " << solve.message;
  c.send(request([](auto& w) {
    w.put("id", 9).put("type", "generate").put("prompt", "\xE2\x82\xAC").put("max_tokens", 24).put("stream", true);
    w.put("temperature", 1.0);
  }));
  Frame gen = final_frame(c);
  EXPECT_EQ(gen.type, "result") << gen.code << ": " << gen.message;
  c.send(request([](auto& w) { w.put("id", 10).put("type", "stats"); }));
  EXPECT_EQ(final_frame(c).type, "result");
}

// Words enough for more than `tokens` tokens of the policy's tokenizer.
std::string text_of_tokens(int32_t tokens) {
  auto tok = open_tokenizer(test::tiny_models() / "policy");
  EXPECT_TRUE(tok.ok());
  std::string text;
  for (int i = 0; tok.ok(); ++i) {
    text += " item" + std::to_string(i * 7919 % 100003) + ",";
    if (i % 64 == 0 && (int32_t)(*tok)->encode(text).size() > tokens) break;
  }
  return text;
}

void expect_too_large(RawClient& c, const std::string& bytes, const std::string& words) {
  c.send(bytes);
  Frame f = final_frame(c);
  EXPECT_EQ(f.type, "error");
  EXPECT_EQ(f.code, "too_large") << f.message;
  EXPECT_NE(f.message.find(words), std::string::npos) << f.message;
}

TEST(BadInput, APromptOverAModelsPositionsIsTooLargeNamingTheLimit) {
  Config cfg = test::tiny_pipeline_config(test::ipc_endpoint("positions"));
  cfg.limits.max_problem_bytes = 256 << 10;
  test::Pipeline p(cfg);
  RawClient c(p.ctx, p.cfg.endpoints.clients.front());
  const std::string long_text = text_of_tokens(4096 + 100);  // the tiny models hold 4096 positions
  const std::string limit = "at most 4096 positions (max_position_embeddings)";

  expect_too_large(c, request([&](auto& w) { w.put("id", 1).put("type", "solve").put("problem", long_text); }),
                   "the prompt is ");
  expect_too_large(c, request([&](auto& w) { w.put("id", 2).put("type", "generate").put("prompt", long_text); }),
                   "the policy model holds " + limit);
  // The verifier's limit: the PRM input (problem and steps in its format).
  expect_too_large(c, request([&](auto& w) {
                     w.put("id", 3).put("type", "score").put("problem", long_text);
                     w.put("steps", std::vector<std::string>{"It is 4."});
                   }),
                   "the PRM holds " + limit);
  // The server goes on.
  c.send(request([](auto& w) { w.put("id", 4).put("type", "generate").put("prompt", "Hi").put("max_tokens", 2); }));
  EXPECT_EQ(final_frame(c).type, "result");
}

TEST(BadInput, AContextOverTheKvPoolIsTooLarge) {
  Config cfg = test::tiny_pipeline_config(test::ipc_endpoint("kv"));
  cfg.memory.budget_mb = 2;  // weights of about 1 MiB: the KV pool holds fewer tokens than the positions
  test::Pipeline p(cfg);
  RawClient c(p.ctx, p.cfg.endpoints.clients.front());
  // The generator's pool, once its grant has come (stats say 0 blocks before).
  int64_t blocks = 0;
  for (int k = 1; blocks == 0 && k <= 100; ++k) {
    c.send(request([&](auto& w) { w.put("id", 1000 + k).put("type", "stats"); }));
    Frame st = final_frame(c);
    ASSERT_EQ(st.type, "result") << st.message;
    msg::MapReader result, actors, gen;
    ASSERT_TRUE(st.map.get("result", &result).ok());
    ASSERT_TRUE(result.get("actors", &actors).ok() && actors.get("generator", &gen).ok());
    ASSERT_TRUE(gen.get("kv_blocks_total", &blocks).ok());
    if (blocks == 0) std::this_thread::sleep_for(50ms);
  }
  const int64_t capacity = blocks * cfg.memory.block_size;
  ASSERT_GT(capacity, 0);
  ASSERT_LT(capacity + 100, 4096) << "the KV pool must be the smaller limit";

  const std::string text = text_of_tokens(int32_t(capacity) + 50);
  expect_too_large(c, request([&](auto& w) { w.put("id", 2).put("type", "generate").put("prompt", text); }), "KV");
  expect_too_large(c, request([&](auto& w) { w.put("id", 3).put("type", "solve").put("problem", text); }), "KV");
}

}  // namespace
}  // namespace flashtts
