"""Unit tests of tools/arith/data.py (plain asserts).
Run: .venv-ref/bin/python tests/arith/test_data.py"""
import os
import random
import sys
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "arith"))
import data  # noqa: E402


def test_example():
    text = "Let a = 37. Let b = a * 4. Let c = b - 59. Let d = c + a. What is d?"
    p = data.parse_problem(text)
    assert p.text == text
    assert data.solve(text) == 126
    sol = data.solution(p)
    assert sol == ("b = a * 4 = 37 * 4 = 148\n\nc = b - 59 = 148 - 59 = 89\n\n"
                   "d = c + a = 89 + 37 = 126\n\nThe answer is \\boxed{126}.")
    assert data.extract_answer(sol) == 126
    steps = data.split_steps(sol)
    assert all(data.check_step(p, s) for s in steps)
    assert data.label_steps(p, steps) == [1, 1, 1, 1]
    assert data.solve("Let a = 5. Let b = a * 3. Let c = b - 4. What is c?") == 11


def test_checker_rejects():
    p = data.parse_problem("Let a = 37. Let b = a * 4. Let c = b - 59. Let d = c + a. What is d?")
    bad = ["b = a * 4 = 37 * 4 = 149", "b = a * 4 = 36 * 4 = 144", "b = a * 5 = 37 * 5 = 185",
           "b = a + 4 = 37 + 4 = 41", "c = b - 59 = 148 - 59 = 88", "e = d + 1 = 126 + 1 = 127",
           "d = c + a = 89 + 37 = 126 extra", "The answer is \\boxed{125}.", "garbage"]
    for s in bad:
        assert not data.check_step(p, s), s
    steps = data.solution_steps(p)
    assert data.label_steps(p, [steps[0], bad[4], steps[2], steps[3]]) == [1, 0, 0, 0]


def test_negative_operand():
    p = data.parse_problem("Let a = 3. Let b = a - 8. Let c = a - b. Let d = b * 2. What is d?")
    steps = data.solution_steps(p)
    assert steps[0] == "b = a - 8 = 3 - 8 = -5"
    assert steps[1] == "c = a - b = 3 - (-5) = 8"
    assert steps[2] == "d = b * 2 = -5 * 2 = -10"
    assert all(data.check_step(p, s) for s in steps)


def test_corruptions_are_wrong():
    rng = random.Random(1)
    for p in data.test_set(200, seed=7):
        for s in data.solution_steps(p):
            c = data.corrupt_step(rng, s)
            assert c != s and not data.check_step(p, c), (p.text, s, c)


def test_distribution():
    rng = random.Random(0)
    probs = [data.sample_problem(rng) for _ in range(20000)]
    ks = Counter(len(p.ops) for p in probs)
    assert set(ks) == {2, 3, 4, 5, 6}
    ops = Counter(o.op for p in probs for o in p.ops)
    var_z = Counter(isinstance(o.z, str) for p in probs for o in p.ops if o.op != "*")
    for p in probs:
        assert data.parse_problem(p.text) == p  # round trip; grammar and range hold
        assert 1 <= p.a <= 99
        for o in p.ops:
            if o.op == "*":
                assert isinstance(o.z, int) and 2 <= o.z <= 9
            elif isinstance(o.z, int):
                assert 1 <= o.z <= 99
    tot = sum(ops.values())
    for o in "+-*":  # redraws bias "*" down a little; still near uniform
        assert 0.25 < ops[o] / tot < 0.40, ops
    assert 0.45 < var_z[True] / sum(var_z.values()) < 0.55, var_z
    # the held-out set is fixed
    assert [p.text for p in data.test_set(5)] == [p.text for p in data.test_set(5)]


def test_parse_errors():
    for t in ["Let a = 0. Let b = a + 1. What is b?", "Let a = 5. Let c = a + 1. What is c?",
              "Let a = 5. Let b = c + 1. What is b?", "Let a = 5. Let b = a + 1. What is a?",
              "Let a = 5. Let b = a + 01. What is b?", "Let a = 99. Let b = a * 99. Let c = b * 9. What is c?"]:
        try:
            data.parse_problem(t)
        except ValueError:
            continue
        raise AssertionError(t)


def test_slips_are_the_policys():
    # result_errors keeps only the result's deltas at each solution's first wrong step
    p = data.parse_problem("Let a = 37. Let b = a * 4. Let c = b - 59. What is c?")
    texts = ["b = a * 4 = 37 * 4 = 158\n\nc = b - 59 = 158 - 59 = 99",  # +10 on *, later steps ignored
             "b = a * 4 = 37 * 4 = 148\n\nc = b - 59 = 148 - 59 = 88",  # -1 on -
             "b = a * 4 = 36 * 4 = 144",  # a wrong operand, not a result slip
             data.solution(p)]  # no slip at all
    assert data.result_errors([(p, t) for t in texts]) == {"+": [], "-": [-1], "*": [10]}
    rng = random.Random(1)
    errors = {"+": [10], "-": [-1], "*": [20]}
    for _ in range(50):
        q = data.sample_problem(rng)
        for step in data.solution_steps(q)[:-1]:
            bad = data.slip_step(rng, step, errors)
            assert not data.check_step(q, bad) and data.arithmetic_ok(bad) is False, (step, bad)
            assert data.arithmetic_ok(step) is True
    assert data.arithmetic_ok("The answer is \\boxed{3}.") is None
    assert data.arithmetic_ok("b = a * 4 = 36 * 4 = 144") is True  # its own arithmetic is right


def test_op_weights():
    rng = random.Random(3)
    ops = Counter(o.op for _ in range(400) for o in data.sample_problem(rng, 4, 6, (1, 4, 0)).ops)
    assert ops["*"] == 0 and ops["-"] > 2.5 * ops["+"], ops
    # without weights the benchmark's draws are untouched
    assert data.sample_problem(random.Random(5)) == data.sample_problem(random.Random(5), 2, 6, None)


def test_result_spans():
    import train_policy  # torch is imported inside its functions only
    p = data.parse_problem("Let a = 33. Let b = a * 2. Let c = a - 99. What is c?")
    sol = data.solution(p)
    assert [sol[a:b] for a, b in train_policy.result_spans(sol)] == [" 66", " -66", "{-66}."]


if __name__ == "__main__":
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            fn()
            print("ok", name)
