// messages/utf8: finding bytes that are not UTF-8, escaping them for a
// sentence, and the request parser's use of both (issue 19: a strict msgpack
// decoder must be able to read every reply).
#include "messages/utf8.h"

#include <gtest/gtest.h>

#include <functional>
#include <random>

#include "gpu/unicode.h"
#include "messages/error_codes.h"
#include "messages/protocol.h"

namespace flashtts::msg {
namespace {

constexpr size_t npos = std::string_view::npos;

// An independent judge: gpu/unicode's lossy conversion changes exactly the
// strings that are not valid UTF-8.
bool valid_by_unicode(std::string_view s) { return unicode::to_valid_utf8(s) == s; }

TEST(Utf8, WellFormedTextIsValid) {
  for (std::string_view s : {"", "plain ascii", "tab\tand\nnewline", "Äpfel für 3 €", "\xF0\x9F\x98\x80 emoji",
                             "\xEF\xBF\xBD replacement", "\xF4\x8F\xBF\xBF last code point"})
    EXPECT_EQ(invalid_utf8_offset(s), npos) << s;
}

TEST(Utf8, EachKindOfMalformedSequenceIsFoundAtItsOffset) {
  struct Case {
    std::string_view bytes;
    size_t offset;
  };
  for (const Case& c : {Case{"\xFF", 0}, Case{"ab\xC3", 2},              // a stray byte; a cut-off sequence
                        Case{"a\x80", 1}, Case{"ok\xF5\x80\x80\x80", 2},  // a lone continuation; no such lead
                        Case{"\xC0\xAF", 0}, Case{"x\xE0\x80\xAF", 1},    // overlong forms
                        Case{"\xED\xA0\x80", 0},                          // a surrogate (U+D800)
                        Case{"\xF4\x90\x80\x80", 0},                      // past U+10FFFF
                        Case{"\xE2\x82 euro", 0}}) {                      // a sequence broken off by ASCII
    EXPECT_EQ(invalid_utf8_offset(c.bytes), c.offset) << testing::PrintToString(std::string(c.bytes));
    EXPECT_FALSE(is_valid_utf8(c.bytes));
  }
}

TEST(Utf8, AgreesWithTheTokenizersDecoderOnRandomBytes) {
  std::mt19937 rng(19);
  // Bytes drawn mostly from the interesting ranges, so that many strings are valid.
  const std::vector<uint8_t> pool = {'a', ' ', 0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2,
                                     0xDF, 0xE0, 0xE2, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF};
  int n_valid = 0;
  for (int k = 0; k < 20000; ++k) {
    std::string s(rng() % 7, '\0');
    for (char& c : s) c = (char)pool[rng() % pool.size()];
    const bool valid = is_valid_utf8(s);
    n_valid += valid;
    ASSERT_EQ(valid, valid_by_unicode(s)) << testing::PrintToString(s);
    ASSERT_TRUE(valid_by_unicode(escape_invalid_utf8(s))) << testing::PrintToString(s);
    ASSERT_TRUE(valid_by_unicode(quote_client_bytes(s, 3))) << testing::PrintToString(s);
  }
  EXPECT_GT(n_valid, 1000);
}

TEST(Utf8, EscapingShowsInvalidBytesAsHexAndKeepsValidText) {
  EXPECT_EQ(escape_invalid_utf8("a\xFF" "b\xC3"), "a\\xFFb\\xC3");
  EXPECT_EQ(escape_invalid_utf8("line\nnext \xE2\x82\xAC"), "line\nnext \xE2\x82\xAC");  // valid: unchanged
  // For a sentence, control characters are escaped too.
  EXPECT_EQ(quote_client_bytes("fly\x01\xFF"), "fly\\x01\\xFF");
  EXPECT_EQ(quote_client_bytes("\xC3\xA9t\xC3\xA9"), "\xC3\xA9t\xC3\xA9");
}

TEST(Utf8, ALongQuoteIsCutAtACharacterBoundary) {
  std::string e_acute;
  for (int i = 0; i < 40; ++i) e_acute += "\xC3\xA9";
  std::string q = quote_client_bytes("x" + e_acute, 64);
  EXPECT_EQ(q, "x" + e_acute.substr(0, 62) + "...");  // 63 bytes: the 32nd é would pass 64
  EXPECT_EQ(quote_client_bytes(std::string(64, 'a'), 64), std::string(64, 'a'));
}

TEST(Utf8, TheCheckOfATextFieldNamesItAndTheOffset) {
  EXPECT_TRUE(check_utf8("'problem'", "fine").ok());
  Status s = check_utf8("'problem'", "2 + 2 = \xFF");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "'problem' is not valid UTF-8 at byte offset 8 (0xFF); strings must be UTF-8");
}

// ---------------------------------------------------------------- the parser

RequestError refused(const std::function<void(MapWriter&)>& fill) {
  MapWriter w;
  fill(w);
  auto p = parse_request(w.bytes(), Limits{}, RequestDefaults{});
  EXPECT_TRUE(std::holds_alternative<RequestError>(p));
  if (!std::holds_alternative<RequestError>(p)) return {};
  RequestError e = std::get<RequestError>(p);
  EXPECT_TRUE(valid_by_unicode(e.message)) << testing::PrintToString(e.message);
  return e;
}

TEST(Protocol, ClientBytesInAnErrorMessageAreEscaped) {
  RequestError e = refused([](auto& w) { w.put("id", 1).put("type", "fly\xFF"); });
  EXPECT_EQ(e.code, code::kUnknownType);
  EXPECT_NE(e.message.find("'fly\\xFF'"), npos) << e.message;

  e = refused([](auto& w) { w.put("id", 1).put("type", "solve").put("problem", "p").put("n\xC3", 2); });
  EXPECT_EQ(e.code, code::kBadRequest);
  EXPECT_NE(e.message.find("unknown field 'n\\xC3'"), npos) << e.message;

  for (const char* key : {"strategy", "aggregation", "selection"}) {
    e = refused([&](auto& w) { w.put("id", 1).put("type", "solve").put("problem", "p").put(key, "best\xE2\x82"); });
    EXPECT_EQ(e.code, code::kBadRequest);
    EXPECT_NE(e.message.find(std::string("'") + key + "' = 'best\\xE2\\x82'"), npos) << e.message;
  }
}

TEST(Protocol, TextThatIsNotUtf8IsRefusedNamingTheFieldAndOffset) {
  struct Case {
    std::function<void(MapWriter&)> fill;
    std::string words;
  };
  const std::vector<Case> cases = {
      {[](auto& w) { w.put("type", "solve").put("problem", "2+2\xED\xA0\x80"); },
       "'problem' is not valid UTF-8 at byte offset 3"},
      {[](auto& w) { w.put("type", "solve").put("problem", "p").put("answer_marker", "\xC0\xAF"); }, "'answer_marker'"},
      {[](auto& w) { w.put("type", "generate").put("prompt", "Hi \xFF"); },
       "'prompt' is not valid UTF-8 at byte offset 3"},
      {[](auto& w) {
         w.put("type", "score").put("problem", "p").put("steps", std::vector<std::string>{"ok", "b\xF5"});
       },
       "'steps[1]' is not valid UTF-8 at byte offset 1"},
      {[](auto& w) { w.put("type", "score").put("problem", "\x80").put("steps", std::vector<std::string>{"s"}); },
       "'problem' is not valid UTF-8 at byte offset 0"},
      {[](auto& w) { w.put("type", "cancel").put("target", "t\xFF"); }, "'target' is not valid UTF-8 at byte offset 1"},
  };
  for (const Case& c : cases) {
    RequestError e = refused([&](MapWriter& w) {
      w.put("id", "ok");
      c.fill(w);
    });
    EXPECT_EQ(e.code, code::kBadRequest) << e.message;
    EXPECT_EQ(id_text(e.id), "'ok'");
    EXPECT_NE(e.message.find(c.words), npos) << e.message;
  }
}

TEST(Protocol, AnIdThatIsNotUtf8IsRefusedWithANilId) {
  RequestError e = refused([](auto& w) { w.put("id", "r\xFF" "1").put("type", "ping"); });
  EXPECT_EQ(e.code, code::kBadRequest);
  EXPECT_EQ(e.id, "");  // it cannot be echoed: the error carries nil
  EXPECT_NE(e.message.find("'id' is not valid UTF-8 at byte offset 1"), npos) << e.message;
}

TEST(Protocol, ErrorFramesAndIdTextAreValidUtf8WhateverTheyAreGiven) {
  auto r = MapReader::parse(encode_error("", code::kInternal, "an unquoted \xFF byte"));
  ASSERT_TRUE(r.ok());
  std::string m;
  ASSERT_TRUE(r->get("message", &m).ok());
  EXPECT_EQ(m, "an unquoted \\xFF byte");
  std::string packed = MapWriter().put("x", "a\xFF\n").bytes().substr(3);  // the packed string
  EXPECT_EQ(id_text(packed), "'a\\xFF\\x0A'");
}

}  // namespace
}  // namespace flashtts::msg
