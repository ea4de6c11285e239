// Messages: every internal type survives a round trip, and untrusted bytes
// become errors that name the field, never crashes.
#include <gtest/gtest.h>

#include <random>

#include "messages/envelope.h"
#include "messages/error_codes.h"
#include "messages/internal.h"
#include "messages/protocol.h"

namespace flashtts::msg {
namespace {

template <class M>
M round_trip(const M& m) {
  auto env = open(encode(m));
  EXPECT_TRUE(env.ok()) << (env.ok() ? "" : env.error().message);
  EXPECT_EQ(env->type, M::kType);
  auto back = decode<M>(*env);
  EXPECT_TRUE(back.ok()) << (back.ok() ? "" : back.error().message);
  return *back;
}

TEST(Messages, EveryInternalMessageSurvivesARoundTrip) {
  GenJob j;
  j.job_id = 7, j.rid = 1ull << 40, j.beam = 3, j.tokens = {1, 2, -3, 1 << 30}, j.temperature = 0.7, j.top_p = 0.9;
  j.top_k = 5, j.seed = ~0ull, j.max_tokens = 99, j.stop_at_delimiter = false, j.report_every = 4, j.priority = -2;
  GenJob j2 = round_trip(j);
  EXPECT_EQ(j2.tokens, j.tokens);
  EXPECT_EQ(j2.seed, j.seed);
  EXPECT_EQ(j2.rid, j.rid);
  EXPECT_DOUBLE_EQ(j2.temperature, 0.7);
  EXPECT_FALSE(j2.stop_at_delimiter);
  EXPECT_EQ(j2.priority, -2);
  EXPECT_FALSE(j2.keep_kv);
  EXPECT_EQ(j2.from_job, 0u);
  EXPECT_EQ(j2.request_beams, 0);
  j.keep_kv = true, j.from_job = 1ull << 50, j.request_beams = 512;
  EXPECT_TRUE(round_trip(j).keep_kv);
  EXPECT_EQ(round_trip(j).from_job, 1ull << 50);
  EXPECT_EQ(round_trip(j).request_beams, 512);

  GenDone d;
  d.job_id = 1, d.rid = 2, d.beam = 3, d.tokens = {5}, d.text = "a\n\n", d.finish = "delimiter", d.n_cached = 16;
  GenDone d2 = round_trip(d);
  EXPECT_EQ(d2.text, "a\n\n");
  EXPECT_EQ(d2.n_cached, 16);
  EXPECT_EQ(d2.code, "");
  d.finish = "error", d.error = "too long", d.code = code::kTooLarge;
  EXPECT_EQ(round_trip(d).code, code::kTooLarge);

  ScoreJob s;
  s.job_id = 4, s.problem = "p", s.steps = {"one", "", "three"};
  EXPECT_EQ(round_trip(s).steps, s.steps);
  s.keep_kv = true, s.from_job = 9, s.request_beams = 64;
  EXPECT_TRUE(round_trip(s).keep_kv);
  EXPECT_EQ(round_trip(s).from_job, 9u);
  EXPECT_EQ(round_trip(s).request_beams, 64);
  EXPECT_FALSE(round_trip(Forget{3}).completed);
  EXPECT_TRUE(round_trip(Forget{3, true}).completed);
  EXPECT_EQ(round_trip(Forget{3, true}).rid, 3u);
  ReleaseKv rk{5, {1, 1ull << 60}};
  EXPECT_EQ(round_trip(rk).job_ids, rk.job_ids);
  EXPECT_EQ(round_trip(rk).rid, 5u);
  DropKv dk{6, {2, 1ull << 61}};
  EXPECT_EQ(round_trip(dk).job_ids, dk.job_ids);
  EXPECT_EQ(round_trip(dk).rid, 6u);
  ScoreDone sd;
  sd.scores = {0.25f, 1.0f};
  EXPECT_EQ(round_trip(sd).scores, sd.scores);
  sd.error = "too long", sd.code = code::kTooLarge;
  EXPECT_EQ(round_trip(sd).code, code::kTooLarge);

  Start st;
  st.rid = 9, st.kind = "solve", st.solve.problem = "What?", st.solve.n = 16, st.solve.selection = "majority";
  Start st2 = round_trip(st);
  EXPECT_EQ(st2.solve.problem, "What?");
  EXPECT_EQ(st2.solve.n, 16);
  EXPECT_EQ(st2.solve.selection, "majority");

  MapWriter result;
  result.put("answer", "42").put("nested", MapWriter().put("x", int64_t(1)));
  Reply r;
  r.rid = 5, r.result = result.bytes();
  Reply r2 = round_trip(r);
  auto rr = MapReader::parse(r2.result);
  ASSERT_TRUE(rr.ok());
  std::string answer;
  EXPECT_TRUE(rr->get("answer", &answer).ok());
  EXPECT_EQ(answer, "42");
  Reply e;
  e.ok = false, e.code = code::kInternal, e.message = "m";
  EXPECT_EQ(round_trip(e).code, code::kInternal);

  EXPECT_EQ(round_trip(Grant{"verifier", 1 << 20, 512}).kv_tokens, 512);
  Grant turns{"verifier", 1 << 20, 512};
  turns.turns = true, turns.resident = false;
  EXPECT_TRUE(round_trip(turns).turns);
  EXPECT_FALSE(round_trip(turns).resident);
  EXPECT_TRUE(round_trip(Grant{"verifier", 1 << 20, 512}).resident);  // the default: both on the device
  EXPECT_TRUE(round_trip(DeviceUse{"verifier", true}).wants);
  EXPECT_EQ(round_trip(DeviceTurn{"generator", true, 9}).serial, 9u);
  const TurnDone td = round_trip(TurnDone{"generator", 9, true, 0.5, "x"});
  EXPECT_TRUE(td.on);
  EXPECT_EQ(td.seconds, 0.5);
  EXPECT_EQ(td.error, "x");
  EXPECT_EQ(round_trip(Weights{"generator", 10, 20, 16}).kv_bytes_per_token, 20);
  EXPECT_FALSE(round_trip(Weights{"generator", 10, 20, 16}).answer);
  Weights asked{"verifier", 10, 20, 16};
  asked.answer = true;
  EXPECT_TRUE(round_trip(asked).answer);
  EXPECT_EQ(round_trip(StatsReply{3, "scheduler", MapWriter().put("q", int64_t(2)).bytes()}).actor, "scheduler");
  EXPECT_EQ(round_trip(Cancel{8, "client gone"}).reason, "client gone");
}

TEST(Messages, AFieldOfTheWrongTypeIsAnErrorNamingIt) {
  MapWriter w;
  w.put("v", kProtocolVersion).put("type", "gen_job").put("job_id", "seven");
  auto env = open(w.bytes());
  ASSERT_TRUE(env.ok());
  auto j = decode<GenJob>(*env);
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.error().message.find("'job_id' must be a non-negative integer, not string"), std::string::npos)
      << j.error().message;
}

TEST(Messages, NestedFieldErrorsNameTheirPath) {
  MapWriter inner;
  inner.put("problem", 3);
  MapWriter w;
  w.put("rid", uint64_t(1)).put("kind", "solve").put("params", inner);
  auto r = MapReader::parse(w.bytes());
  ASSERT_TRUE(r.ok());
  Start s;
  Status st = s.read(*r);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("'params.problem'"), std::string::npos) << st.message();
}

TEST(Messages, DecodingLimitsHoldAgainstHostileInput) {
  // A map that claims 2^32-1 entries in five bytes.
  auto r = MapReader::parse(std::string("\xdf\xff\xff\xff\xff", 5));
  EXPECT_FALSE(r.ok());
  // Deep nesting.
  std::string deep(100, '\x91');
  deep += '\x80';
  r = MapReader::parse(std::string("\x81\xa1x", 3) + deep);
  ASSERT_FALSE(r.ok());
  // Non-string keys.
  r = MapReader::parse(std::string("\x81\x01\x02", 3));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("keys must be strings"), std::string::npos) << r.error().message;
}

TEST(Messages, RandomBytesNeverCrashTheRequestParser) {
  std::mt19937 rng(1);
  Limits l;
  RequestDefaults d;
  MapWriter good;
  good.put("id", int64_t(1)).put("type", "solve").put("problem", "Let a = 1. What is a?").put("n", 4);
  std::string base = good.bytes();
  int errors = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string b = base;
    int flips = 1 + int(rng() % 4);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] = char(rng());
    if (rng() % 3 == 0) b.resize(rng() % b.size());
    auto p = parse_request(b, l, d);
    if (std::holds_alternative<RequestError>(p)) {
      ++errors;
      EXPECT_FALSE(std::get<RequestError>(p).message.empty());
    }
  }
  EXPECT_GT(errors, 1000);
}

TEST(Protocol, ARequestFillsServerDefaultsAndKeepsItsId) {
  RequestDefaults d;
  d.solve.n = 8;
  d.solve.temperature = 0.5;
  MapWriter w;
  w.put("id", "req-1").put("type", "solve").put("problem", "Q").put("temperature", 0.9);
  auto p = parse_request(w.bytes(), Limits{}, d);
  ASSERT_TRUE(std::holds_alternative<ClientRequest>(p));
  const auto& q = std::get<ClientRequest>(p);
  EXPECT_EQ(q.solve.n, 8);
  EXPECT_DOUBLE_EQ(q.solve.temperature, 0.9);
  EXPECT_EQ(id_text(q.id), "'req-1'");
}

TEST(Protocol, AnErrorKeepsTheIdWhenItCouldBeRead) {
  MapWriter w;
  w.put("id", int64_t(77)).put("type", "generate");
  auto p = parse_request(w.bytes(), Limits{}, RequestDefaults{});
  ASSERT_TRUE(std::holds_alternative<RequestError>(p));
  const auto& e = std::get<RequestError>(p);
  EXPECT_EQ(e.code, code::kBadRequest);
  EXPECT_EQ(id_text(e.id), "77");
  EXPECT_NE(e.message.find("'prompt'"), std::string::npos) << e.message;
}

TEST(Protocol, ImpossibleSolveParametersAreRefusedWithTheReason) {
  auto check = [](std::function<void(MapWriter&)> f, const std::string& words) {
    MapWriter w;
    w.put("id", int64_t(1)).put("type", "solve").put("problem", "Q");
    f(w);
    auto p = parse_request(w.bytes(), Limits{}, RequestDefaults{});
    ASSERT_TRUE(std::holds_alternative<RequestError>(p)) << words;
    EXPECT_NE(std::get<RequestError>(p).message.find(words), std::string::npos) << std::get<RequestError>(p).message;
  };
  check([](auto& w) { w.put("strategy", "magic"); }, "'strategy' = 'magic'");
  check([](auto& w) { w.put("top_p", 0.0); }, "'top_p'");
  check([](auto& w) { w.put("temperature", -1.0); }, "'temperature'");
  check([](auto& w) { w.put("aggregation", "max"); }, "'aggregation'");
  check([](auto& w) { w.put("selection", "best"); }, "'selection'");
  check([](auto& w) { w.put("max_steps", 0); }, "'max_steps'");
  check([](auto& w) { w.put("deadline_ms", int64_t(-5)); }, "'deadline_ms'");
  check([](auto& w) { w.put("stream", "yes"); }, "'stream' must be a boolean");
}

TEST(Protocol, RepliesCarryVersionTypeAndId) {
  MapWriter id;
  std::string packed_id = MapWriter().put("x", "abc").bytes().substr(3);  // the packed string "abc"
  auto r = MapReader::parse(encode_error(packed_id, code::kCancelled, "cancelled by the client"));
  ASSERT_TRUE(r.ok());
  std::string type, got_id, c;
  int64_t v = 0;
  EXPECT_TRUE(r->get("v", &v).ok());
  EXPECT_EQ(v, 1);
  EXPECT_TRUE(r->get("type", &type).ok());
  EXPECT_EQ(type, "error");
  EXPECT_TRUE(r->get("id", &got_id).ok());
  EXPECT_EQ(got_id, "abc");
  EXPECT_TRUE(r->get("code", &c).ok());
  EXPECT_EQ(c, "cancelled");
  auto nil = MapReader::parse(encode_error("", code::kBadMessage, "m"));
  ASSERT_TRUE(nil.ok());
  EXPECT_TRUE(nil->is_nil("id"));
}

}  // namespace
}  // namespace flashtts::msg
