"""Unit tests of tools/arith/coverage.py's arithmetic (plain asserts, no torch).
Run: python3 tests/arith/test_coverage.py"""
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "arith"))
import coverage  # noqa: E402
import data  # noqa: E402


def test_relevant_steps():
    # e = d + a needs d and a; d = b - 59 needs b; c is never used.
    p = data.parse_problem("Let a = 37. Let b = a * 4. Let c = a + 1. Let d = b - 59. Let e = d + a. What is e?")
    assert coverage.relevant_steps(p) == [True, False, True, True, True]  # b, c, d, e, the answer
    p = data.parse_problem("Let a = 5. Let b = a * 3. Let c = a - 4. What is c?")
    assert coverage.relevant_steps(p) == [False, True, True]


def test_summarise():
    half = math.log(0.5)
    # One problem of two steps, each right with probability 1/2 at the temperature, the
    # first also the argmax; one problem whose single step is always right.
    res = coverage.summarise([[(half, True), (half, False)], [(0.0, True)]], [2])
    assert res["greedy"] == 0.5
    assert math.isclose(res["sample"], (0.25 + 1) / 2)
    assert math.isclose(res["step@2"], (0.75 * 0.75 + 1) / 2)  # each step right in one of 2 samples
    assert math.isclose(res["pass@2"], (1 - 0.75 ** 2 + 1) / 2)  # one of 2 whole samples right
    assert res["steps_q<1/16"] == 0


def test_step_spans():
    # A stand-in tokenizer, one token per character: each step's span must run from its
    # start through its delimiter, split where its result begins (the sign), and the
    # final step's from the boxed answer through the closing <|im_end|>.
    class Chars:
        def encode(self, text, add_special_tokens=False):
            return list(text.replace("<|im_end|>", "\x00"))
    p = data.parse_problem("Let a = 33. Let b = a - 99. What is b?")
    ids, spans = coverage.step_spans(Chars(), p)
    text = "".join(ids)
    assert text.endswith(data.solution(p) + "\x00"), text
    got = [(text[a:r], text[r:b]) for a, r, b in spans]
    assert got == [("b = a - 99 = 33 - 99 =", " -66\n\n"), ("The answer is \\boxed", "{-66}.\x00")], got


def main():
    test_relevant_steps()
    test_summarise()
    test_step_spans()
    print("coverage tests ok")


if __name__ == "__main__":
    main()
