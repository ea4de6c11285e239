// The problems of `flashtts demo`, drawn by the arith task's generator
// (tools/arith/data.py, docs/arith.md) and kept here so that the demo runs
// from the binary alone; tests/arith/test_demo_set.py draws them again and
// checks they are these.
//
// Thread contract: constants; any thread.
#pragma once

#include <span>

namespace flashtts::demo {

struct Problem {
  const char* text;
  const char* answer;  // the reference solver's answer
};

// Held-out problem #12 (data.test_set()[12]). Picked because the shipped
// policy's greedy decode gets it wrong (it reads "c - 31" as "c - 315" and
// answers 17) and beam search with the shipped PRM gets it right (104).
inline constexpr Problem kPicked = {"Let a = 5. Let b = a * 3. Let c = b * 9. Let d = c - 31. What is d?", "104"};
inline constexpr const char* kPickedFrom = "held-out arith problem #12";

// A dozen fresh problems: `python3 tools/arith/data.py --n 12 --seed 20261205`
// (the benchmark distribution; the seed is none of the training runs' and
// not the held-out set's, and the picked problem is not among them).
inline constexpr int kFreshSeed = 20261205;
inline constexpr Problem kFreshArray[] = {
    {"Let a = 93. Let b = a * 2. Let c = a * 8. What is c?", "744"},
    {"Let a = 73. Let b = a + a. Let c = b + b. Let d = b - b. Let e = b - 25. Let f = c * 7. What is f?", "2044"},
    {"Let a = 74. Let b = a * 8. Let c = a - 77. Let d = c + b. Let e = d + 46. Let f = d - 18. Let g = a * 3. "
     "What is g?",
     "222"},
    {"Let a = 48. Let b = a + 78. Let c = b - 31. Let d = c - c. Let e = d + 96. Let f = b + d. Let g = b * 2. "
     "What is g?",
     "252"},
    {"Let a = 87. Let b = a - 11. Let c = a * 3. What is c?", "261"},
    {"Let a = 80. Let b = a * 4. Let c = b - 94. Let d = a + 96. What is d?", "176"},
    {"Let a = 60. Let b = a + a. Let c = a - 84. Let d = a - b. Let e = d - c. Let f = a * 6. Let g = f + 19. "
     "What is g?",
     "379"},
    {"Let a = 5. Let b = a + a. Let c = b + b. What is c?", "20"},
    {"Let a = 47. Let b = a * 5. Let c = b + 57. Let d = a - 92. Let e = c * 5. Let f = a + b. What is f?", "282"},
    {"Let a = 70. Let b = a - a. Let c = b * 5. Let d = b * 8. Let e = a * 6. Let f = a - d. Let g = e + d. "
     "What is g?",
     "420"},
    {"Let a = 56. Let b = a - a. Let c = b * 3. Let d = a + a. Let e = a - 76. Let f = d + 56. What is f?", "168"},
    {"Let a = 99. Let b = a - a. Let c = b + b. Let d = c * 5. Let e = c + a. Let f = a - d. Let g = d + a. "
     "What is g?",
     "99"},
};
inline constexpr std::span<const Problem> kFresh{kFreshArray};

}  // namespace flashtts::demo
