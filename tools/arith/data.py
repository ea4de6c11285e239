"""The "arith" task of issue 5: problem generator, reference solver, solution
format and step checker.

Grammar (exactly as in the issue):
  "Let a = N." with N in 1..99, then for each further variable
  " Let X = Y OP Z." (Y an earlier variable, OP in + - *, Z an earlier
  variable or an integer 1..99 without leading zeros), then " What is X?"
  naming the last variable. Every value stays within -9999..9999.

Benchmark distribution: 2..6 further variables (uniform); Y uniform over the
earlier variables; OP uniform; for "*" Z is an integer 2..9; for "+"/"-" Z is
an integer 1..99 or an earlier variable with equal chance; a problem whose
values leave the range is redrawn as a whole.

Our solution format: one computation per step, steps separated by "\n\n",
then a final step "The answer is \\boxed{V}.":

  b = a * 4 = 37 * 4 = 148

  c = b - 59 = 148 - 59 = 89

  d = c + a = 89 + 37 = 126

  The answer is \\boxed{126}.

A negative right operand is written in parentheses: "d = c - b = 3 - (-5) = 8".
Pure Python, no dependencies: the trainers, tests and eval scripts share it.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass

SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
STEP_DELIMITER = "\n\n"
VALUE_MIN, VALUE_MAX = -9999, 9999
NAMES = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Op:
    """One definition "X = Y OP Z"; z is a variable name or an int."""

    x: str
    y: str
    op: str
    z: object  # str (variable) or int


@dataclass(frozen=True)
class Problem:
    a: int
    ops: tuple  # of Op

    @property
    def text(self) -> str:
        parts = [f"Let a = {self.a}."]
        for o in self.ops:
            parts.append(f"Let {o.x} = {o.y} {o.op} {o.z}.")
        parts.append(f"What is {self.last}?")
        return " ".join(parts)

    @property
    def last(self) -> str:
        return self.ops[-1].x if self.ops else "a"

    def values(self) -> dict:
        return evaluate(self.a, self.ops)

    @property
    def answer(self) -> int:
        return self.values()[self.last]


def apply(op: str, y: int, z: int) -> int:
    if op == "+":
        return y + z
    if op == "-":
        return y - z
    if op == "*":
        return y * z
    raise ValueError(f"unknown operator {op!r}")


def evaluate(a: int, ops) -> dict:
    vals = {"a": a}
    for o in ops:
        z = vals[o.z] if isinstance(o.z, str) else o.z
        vals[o.x] = apply(o.op, vals[o.y], z)
    return vals


def in_range(vals: dict) -> bool:
    return all(VALUE_MIN <= v <= VALUE_MAX for v in vals.values())


def sample_problem(rng: random.Random, min_ops: int = 2, max_ops: int = 6, op_weights=None) -> Problem:
    """One problem of the benchmark distribution (min_ops..max_ops further
    variables; the benchmark uses 2..6). Out-of-range problems are redrawn.
    op_weights, relative weights of "+", "-" and "*", skews the operators
    away from uniform (for training a verifier's body; None: the benchmark)."""
    while True:
        k = rng.randint(min_ops, max_ops)
        a = rng.randint(1, 99)
        ops = []
        names = ["a"]
        for i in range(k):
            x = NAMES[i + 1]
            y = rng.choice(names)
            op = rng.choice("+-*") if op_weights is None else rng.choices("+-*", op_weights)[0]
            if op == "*":
                z = rng.randint(2, 9)
            elif rng.random() < 0.5:
                z = rng.randint(1, 99)
            else:
                z = rng.choice(names)
            ops.append(Op(x, y, op, z))
            names.append(x)
        if in_range(evaluate(a, ops)):
            return Problem(a, tuple(ops))


_LET_A = re.compile(r"Let a = ([1-9][0-9]?)\.")
_LET = re.compile(r" Let ([a-z]) = ([a-z]) ([-+*]) ([a-z]|[1-9][0-9]?)\.")
_WHAT = re.compile(r" What is ([a-z])\?")


def parse_problem(text: str) -> Problem:
    """Parses a problem of the grammar; raises ValueError otherwise."""
    m = _LET_A.match(text)
    if not m:
        raise ValueError("problem must start 'Let a = N.' with N in 1..99")
    pos = m.end()
    a = int(m.group(1))
    ops = []
    names = ["a"]
    while True:
        m = _LET.match(text, pos)
        if not m:
            break
        x, y, op, z = m.groups()
        if x != NAMES[len(names)]:
            raise ValueError(f"variable {x} out of order")
        if y not in names or (z.isalpha() and z not in names):
            raise ValueError(f"{x} uses a variable not yet defined")
        ops.append(Op(x, y, op, z if z.isalpha() else int(z)))
        names.append(x)
        pos = m.end()
    m = _WHAT.match(text, pos)
    if not m or m.end() != len(text):
        raise ValueError("problem must end ' What is X?'")
    if m.group(1) != names[-1]:
        raise ValueError("the question must name the last variable")
    p = Problem(a, tuple(ops))
    if not in_range(p.values()):
        raise ValueError("a value leaves -9999..9999")
    return p


def solve(text: str) -> int:
    """Reference solver: the answer of a problem text."""
    return parse_problem(text).answer


def _operand(v: int) -> str:
    return f"({v})" if v < 0 else str(v)


def solution_steps(p: Problem) -> list:
    vals = p.values()
    steps = []
    for o in p.ops:
        z = vals[o.z] if isinstance(o.z, str) else o.z
        steps.append(f"{o.x} = {o.y} {o.op} {o.z} = {vals[o.y]} {o.op} {_operand(z)} = {vals[o.x]}")
    steps.append(f"The answer is \\boxed{{{vals[p.last]}}}.")
    return steps


def solution(p: Problem) -> str:
    return STEP_DELIMITER.join(solution_steps(p))


def result_start(step: str) -> int:
    """Where a step of our format writes its result: the space after a
    computation's last " =" (the sign tokens start there), or the final step's
    "{" of \\boxed{...}."""
    i = step.rfind(" = ")
    return i + 2 if i >= 0 else step.find("{")


def split_steps(text: str) -> list:
    return [s for s in text.split(STEP_DELIMITER) if s.strip()]


_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def extract_answer(text: str):
    """The last \\boxed{...} content as an int, or None."""
    found = _BOXED.findall(text)
    if not found:
        return None
    try:
        return int(found[-1].strip())
    except ValueError:
        return None


_NUM = r"(-?\d+|\(-\d+\))"
_STEP = re.compile(r"([a-z]) = ([a-z]) ([-+*]) ([a-z]|\d+) = " + _NUM + r" ([-+*]) " + _NUM + r" = (-?\d+)")
_FINAL = re.compile(r"The answer is \\boxed\{(-?\d+)\}\.")


def _num(s: str) -> int:
    return int(s[1:-1]) if s.startswith("(") else int(s)


def check_step(p: Problem, step: str) -> bool:
    """Is this step right given the problem? A computation step must restate a
    definition of the problem exactly, substitute the true values, and give
    the true result; the final step must box the true answer."""
    step = step.strip()
    vals = p.values()
    m = _FINAL.fullmatch(step)
    if m:
        return int(m.group(1)) == vals[p.last]
    m = _STEP.fullmatch(step)
    if not m:
        return False
    x, y, op, z, vy, op2, vz, r = m.groups()
    defs = {o.x: o for o in p.ops}
    o = defs.get(x)
    if o is None or o.y != y or o.op != op or str(o.z) != z or op2 != op:
        return False
    true_z = vals[o.z] if isinstance(o.z, str) else o.z
    try:
        return _num(vy) == vals[y] and _num(vz) == true_z and int(r) == vals[x]
    except ValueError:
        return False


def _written_result(step: str):
    """(operator, written result, result of the written operands) of a
    computation step; the last is None when the operator changed between the
    definition and the substitution. None for a step that is not a computation."""
    m = _STEP.fullmatch(step.strip())
    if not m:
        return None
    _, _, op, _, vy, op2, vz, r = m.groups()
    return op, int(r), apply(op, _num(vy), _num(vz)) if op2 == op else None


def arithmetic_ok(step: str):
    """Is a computation step's result the result of its own written operands
    (whatever the problem says)? None for a step that is not a computation."""
    w = _written_result(step)
    return None if w is None else w[2] == w[1]


def label_steps(p: Problem, steps) -> list:
    """PRM labels: 1 for each step up to the first wrong one, 0 from there on."""
    labels, ok = [], True
    for s in steps:
        ok = ok and check_step(p, s)
        labels.append(1 if ok else 0)
    return labels


def corrupt_step(rng: random.Random, step: str) -> str:
    """A wrong version of a step: a changed result, a changed operand, or a
    changed boxed answer (used for PRM negatives)."""
    m = _FINAL.fullmatch(step.strip())
    if m:
        v = int(m.group(1))
        return f"The answer is \\boxed{{{v + _delta(rng, v)}}}."
    m = _STEP.fullmatch(step.strip())
    if not m:
        return step + "0"
    x, y, op, z, vy, op2, vz, r = m.groups()
    kind = rng.randrange(3)
    if kind == 0:  # wrong result
        rv = int(r)
        r = str(rv + _delta(rng, rv))
    elif kind == 1:  # wrong left value, result consistent with it
        v = _num(vy) + _delta(rng, _num(vy))
        vy = str(v)
        r = str(apply(op, v, _num(vz)))
    else:  # wrong right value
        v = _num(vz) + _delta(rng, _num(vz))
        vz = _operand(v)
        r = str(apply(op, _num(vy), v))
    return f"{x} = {y} {op} {z} = {vy} {op2} {vz} = {r}"


def result_errors(samples) -> dict:
    """The policy's arithmetic slips, learnt from its own labelled solutions:
    for each operator, the list of (written result - true result) at the first
    wrong step whose only fault is its result. `samples` are (Problem, text)."""
    out = {"+": [], "-": [], "*": []}
    for p, text in samples:
        for s in split_steps(text):
            if check_step(p, s):
                continue
            w = _written_result(s)
            if w is not None and w[2] is not None and w[1] != w[2]:
                out[w[0]].append(w[1] - w[2])
            break
    return out


def slip_step(rng: random.Random, step: str, errors: dict) -> str:
    """A wrong version of a computation step the way the policy gets it wrong:
    its result moved by a slip drawn from `errors` (see result_errors) for the
    step's operator; other steps fall back to corrupt_step."""
    m = _STEP.fullmatch(step.strip())
    if not m or not errors.get(m.group(3)):
        return corrupt_step(rng, step)
    x, y, op, z, vy, op2, vz, r = m.groups()
    v = int(r) + rng.choice(errors[op])
    return f"{x} = {y} {op} {z} = {vy} {op2} {vz} = {v}"


def _delta(rng: random.Random, v: int) -> int:
    choices = [1, -1, 2, -2, 10, -10, 9, -9, 11, -11, 100, -100]
    d = rng.choice(choices)
    return d if d != 0 else 1


def test_set(n: int = 500, seed: int = 20260500) -> list:
    """The held-out benchmark problems: n problems of the benchmark
    distribution drawn with a fixed seed (training data use other seeds)."""
    rng = random.Random(seed)
    return [sample_problem(rng) for _ in range(n)]


def write_jsonl(path: str, problems) -> None:
    """The eval dataset format: {"problem", "answer"} per line."""
    with open(path, "w") as f:
        for p in problems:
            f.write(json.dumps({"problem": p.text, "answer": str(p.answer)}) + "\n")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="write arith problems as JSONL")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=20260500)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    write_jsonl(a.out, test_set(a.n, a.seed))
