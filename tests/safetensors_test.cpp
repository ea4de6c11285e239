// The safetensors reader and writer: dtype conversions, round trips, sharded
// stores, and every malformed-file case ending in an Error, never a crash.
#include "gpu/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "gpu/safetensors_writer.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_all(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
}

// A file with a hand-made header (for dtypes and faults the writer never makes).
void write_raw(const fs::path& p, const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = char(n >> (8 * i));
  write_all(p, out + header + data);
}

std::vector<float> iota_values(size_t n, float scale = 0.37f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * float(int(i) - int(n / 2));
  return v;
}

TEST(Safetensors, EveryHalfFloatSurvivesARoundTripThroughFloat32) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), uint16_t(h)) << "half bits " << h;
  }
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f32_to_f16(70000.0f), 0x7c00);               // overflow -> inf
}

TEST(Safetensors, Bfloat16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  // 1 + 3*2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3f81);  // above half: up
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
  EXPECT_EQ(bf16_to_f32(0x3f81), 1.0f + std::ldexp(1.0f, -7));
}

TEST(Safetensors, WrittenTensorsReadBackInEveryFloatDtype) {
  fs::path dir = test::scratch_dir("st_roundtrip");
  std::vector<float> a = iota_values(12), b = iota_values(6, 1.5f), c = iota_values(5, 0.001f);
  ASSERT_TRUE(write_safetensors(dir / "m.safetensors", {{{"a", DType::F32, {3, 4}}, a},
                                                        {{"b", DType::BF16, {6}}, b},
                                                        {{"c", DType::F16, {5}}, c},
                                                        {{"empty", DType::F32, {0, 3}}, {}}}));
  auto f = SafetensorsFile::open(dir / "m.safetensors");
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->metadata().at("format"), "pt");
  ASSERT_EQ(f->tensors().size(), 4u);
  const TensorInfo* ta = f->find("a");
  ASSERT_NE(ta, nullptr);
  EXPECT_EQ(ta->dtype, DType::F32);
  EXPECT_EQ(ta->shape, (std::vector<int64_t>{3, 4}));
  std::vector<float> out(12);
  ASSERT_TRUE(f->read_f32(*ta, out));
  EXPECT_EQ(out, a);
  std::vector<float> ob(6), oc(5);
  ASSERT_TRUE(f->read_f32(*f->find("b"), ob));
  ASSERT_TRUE(f->read_f32(*f->find("c"), oc));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(ob[i], bf16_to_f32(f32_to_bf16(b[i])));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(oc[i], f16_to_f32(f32_to_f16(c[i])));
  EXPECT_EQ(f->find("missing"), nullptr);
  // The header is padded so that the data section starts 8-byte aligned.
  std::string raw = read_all(dir / "m.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ(n % 8, 0u);
}

TEST(Safetensors, TheWriterRefusesTensorsOutOfOrderOrIncomplete) {
  fs::path dir = test::scratch_dir("st_writer");
  auto w = SafetensorsWriter::create(dir / "w.safetensors", {{"x", DType::F32, {4}}, {"y", DType::BF16, {2}}});
  ASSERT_TRUE(w.ok());
  std::vector<float> two = {1, 2};
  EXPECT_FALSE(w->write("y", two).ok());
  ASSERT_TRUE(w->write("x", two));  // chunks are fine
  Status early = w->finish();
  ASSERT_FALSE(early.ok());
  EXPECT_NE(early.message().find("'x'"), std::string::npos);
}

TEST(Safetensors, AnIntegerTensorOpensButDoesNotConvert) {
  fs::path dir = test::scratch_dir("st_int");
  write_raw(dir / "i.safetensors", R"({"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", std::string(16, '\1'));
  auto f = SafetensorsFile::open(dir / "i.safetensors");
  ASSERT_TRUE(f.ok()) << f.error().message;
  std::vector<float> out(2);
  Status s = f->read_f32(*f->find("ids"), out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("I64"), std::string::npos);
  EXPECT_NE(s.message().find("'ids'"), std::string::npos);
  EXPECT_NE(s.message().find("i.safetensors"), std::string::npos);
}

struct BadFile {
  const char* what;
  std::string header;
  std::string data;
  const char* expect;  // a substring of the message
};

TEST(Safetensors, MalformedFilesAreErrorsThatNameTheFileAndTheProblem) {
  fs::path dir = test::scratch_dir("st_bad");
  const std::vector<BadFile> cases = {
      {"bad json", R"({"a":{"dtype":)", "", "bad JSON header at byte"},
      {"not an object", R"([1,2])", "", "not an object"},
      {"offsets beyond data", R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, 'x'),
       "beyond the end of the data"},
      {"size mismatch", R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", std::string(16, 'x'),
       "need 12"},
      {"no dtype", R"({"w":{"shape":[1],"data_offsets":[0,4]}})", std::string(4, 'x'), "dtype"},
      {"negative dim", R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", std::string(4, 'x'), "shape"},
      {"reversed offsets", R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", std::string(4, 'x'),
       "begin > end"},
      {"huge shape", R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}})",
       std::string(4, 'x'), "shape"},
  };
  for (const auto& c : cases) {
    fs::path p = dir / "bad.safetensors";
    write_raw(p, c.header, c.data);
    auto f = SafetensorsFile::open(p);
    ASSERT_FALSE(f.ok()) << c.what;
    EXPECT_NE(f.error().message.find("bad.safetensors"), std::string::npos) << f.error().message;
    EXPECT_NE(f.error().message.find(c.expect), std::string::npos) << c.what << ": " << f.error().message;
  }
  // Header length beyond the file.
  std::string raw(8, '\0');
  raw[0] = char(200);
  write_all(dir / "short.safetensors", raw + "{}");
  auto f = SafetensorsFile::open(dir / "short.safetensors");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.error().message.find("beyond the file size"), std::string::npos) << f.error().message;
  write_all(dir / "tiny.safetensors", "abc");
  EXPECT_FALSE(SafetensorsFile::open(dir / "tiny.safetensors").ok());
  EXPECT_FALSE(SafetensorsFile::open(dir / "absent.safetensors").ok());
}

TEST(Safetensors, TruncationAtAnyOffsetIsAnErrorAndNeverACrash) {
  fs::path dir = test::scratch_dir("st_trunc");
  ASSERT_TRUE(write_safetensors(dir / "full.safetensors", {{{"a", DType::F32, {7, 3}}, iota_values(21)},
                                                           {{"b", DType::BF16, {5}}, iota_values(5)},
                                                           {{"c", DType::F16, {2, 2}}, iota_values(4)}}));
  const std::string full = read_all(dir / "full.safetensors");
  for (size_t cut = 0; cut < full.size(); ++cut) {
    fs::path p = dir / "cut.safetensors";
    write_all(p, full.substr(0, cut));
    auto f = SafetensorsFile::open(p);
    EXPECT_FALSE(f.ok()) << "a file cut at " << cut << " of " << full.size() << " bytes opened";
  }
  // Random byte corruption: whatever opens must read back without crashing.
  std::mt19937 rng(7);
  for (int trial = 0; trial < 500; ++trial) {
    std::string bad = full;
    for (int k = 0; k < 3; ++k) bad[rng() % bad.size()] = char(rng());
    fs::path p = dir / "flip.safetensors";
    write_all(p, bad);
    auto f = SafetensorsFile::open(p);
    if (!f.ok()) continue;
    for (const auto& t : f->tensors()) {
      if (!dtype_converts_to_f32(t.dtype)) continue;
      std::vector<float> out(size_t(t.numel()));
      (void)f->read_f32(t, out);
    }
  }
}

// Two shards plus index, as transformers writes them.
fs::path make_sharded(const std::string& tag) {
  fs::path dir = test::scratch_dir(tag);
  EXPECT_TRUE(write_safetensors(dir / "model-00001-of-00002.safetensors", {{{"a", DType::F32, {2, 2}}, {1, 2, 3, 4}}}));
  EXPECT_TRUE(write_safetensors(dir / "model-00002-of-00002.safetensors", {{{"b", DType::BF16, {3}}, {5, 6, 7}}}));
  json idx = {{"metadata", {{"total_size", 22}}},
              {"weight_map", {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}}}};
  write_all(dir / "model.safetensors.index.json", idx.dump());
  return dir;
}

TEST(TensorStore, FindsTensorsByNameAcrossShards) {
  fs::path dir = make_sharded("store_ok");
  auto s = TensorStore::open(dir);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(s->file_of("b").filename(), "model-00002-of-00002.safetensors");
  std::vector<int64_t> sa = {2, 2}, sb = {3};
  auto a = s->load_f32("a", sa);
  auto b = s->load_f32("b", sb);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(*b, (std::vector<float>{5, 6, 7}));
}

TEST(TensorStore, AWrongShapeNamesTheTensorWithExpectedAndActualShapes) {
  fs::path dir = make_sharded("store_shape");
  auto s = TensorStore::open(dir);
  ASSERT_TRUE(s.ok());
  std::vector<int64_t> want = {4};
  auto a = s->load_f32("a", want);
  ASSERT_FALSE(a.ok());
  const std::string& m = a.error().message;
  EXPECT_NE(m.find("model-00001-of-00002.safetensors"), std::string::npos) << m;
  EXPECT_NE(m.find("'a'"), std::string::npos) << m;
  EXPECT_NE(m.find("[2, 2]"), std::string::npos) << m;
  EXPECT_NE(m.find("expected [4]"), std::string::npos) << m;
  auto missing = s->load_f32("nope", want);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("model.safetensors.index.json: missing tensor 'nope'"), std::string::npos)
      << missing.error().message;
}

TEST(TensorStore, AMissingShardIsAnErrorNamingTheIndexAndTheShard) {
  fs::path dir = make_sharded("store_noshard");
  fs::remove(dir / "model-00002-of-00002.safetensors");
  auto s = TensorStore::open(dir);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("model.safetensors.index.json"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("model-00002-of-00002.safetensors"), std::string::npos) << s.error().message;
}

TEST(TensorStore, ATensorListedInTheIndexButAbsentFromItsShardIsAnError) {
  fs::path dir = make_sharded("store_notinshard");
  json idx = json::parse(read_all(dir / "model.safetensors.index.json"));
  idx["weight_map"]["ghost"] = "model-00001-of-00002.safetensors";
  write_all(dir / "model.safetensors.index.json", idx.dump());
  auto s = TensorStore::open(dir);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("'ghost'"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("model-00001-of-00002.safetensors"), std::string::npos) << s.error().message;
}

TEST(TensorStore, AFolderWithoutSafetensorsSaysWhatItLooksFor) {
  fs::path dir = test::scratch_dir("store_empty");
  auto s = TensorStore::open(dir);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("model.safetensors"), std::string::npos) << s.error().message;
}

}  // namespace
}  // namespace flashtts
