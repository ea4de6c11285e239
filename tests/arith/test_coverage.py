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


def test_result_bounds():
    # A stand-in tokenizer, one token per character: the spans must cover the
    # result from its sign on, with the delimiter after it, and the boxed answer.
    class Chars:
        def encode(self, text, add_special_tokens=False):
            return list(text.replace("<|im_end|>", "\x00"))
    p = data.parse_problem("Let a = 33. Let b = a - 99. What is b?")
    sol = "".join(Chars().encode(data.solution(p) + "<|im_end|>"))
    prompt = list("PROMPT")
    got = [(op, sol[a - len(prompt):b - len(prompt)]) for op, a, b in coverage.result_bounds(Chars(), prompt, p)]
    assert got == [("-", " -66\n\n"), ("answer", "{-66}.\x00")], got


def main():
    test_relevant_steps()
    test_summarise()
    test_result_bounds()
    print("coverage tests ok")


if __name__ == "__main__":
    main()
