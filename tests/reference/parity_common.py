"""Helpers shared by the engine-vs-transformers parity tests (test_parity_*.py).

The engine is driven through its real programs (flashtts-mkmodel, flashtts-probe,
flashtts generate / score), never imported: what is compared is what a user runs.
The reference is Hugging Face transformers on the CPU in float64, with weights
taken exactly as stored (bf16 folders are upcast, as the engine upcasts at load).

Environment (set by CTest, see tests/CMakeLists.txt):
  FLASHTTS_BIN       the CMake build folder holding flashtts and flashtts-* programs
  FLASHTTS_TESTDATA  ../shared/testdata (not needed by the parity tests)

Exit codes follow tests/reference/run_ref.sh: 0 pass, 1 fail, 77 skipped.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

torch.set_num_threads(2)
warnings.filterwarnings("ignore")

# Engine float32 vs reference float64, over whole logit / hidden vectors:
# max|engine - ref| / max|ref|. A correct f32 forward pass of these small
# models lands near 1e-6; a wrong rotation, mask or bias lands at 1e-1.
REL_TOL = 1e-4
# PRM step probabilities, absolute.
PROB_TOL = 1e-5


def bin_dir() -> Path:
    b = os.environ.get("FLASHTTS_BIN")
    if not b:
        print("SKIPPED: FLASHTTS_BIN is not set (run through ctest)")
        sys.exit(77)
    return Path(b)


def program(name: str) -> Path:
    p = bin_dir() / name
    if not p.exists():
        print(f"FAILED: {p} is not built (ninja {name})")
        sys.exit(1)
    return p


def run(cmd, stdin=None, timeout=60) -> str:
    """Runs a program; raises with its stderr when it fails. These models take
    well under a second, so a timeout means a hang (subprocess.TimeoutExpired
    ends the whole script, see Report)."""
    r = subprocess.run([str(c) for c in cmd], input=stdin, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(str(c) for c in cmd)} exited {r.returncode}: {r.stderr.strip()[:2000]}")
    return r.stdout


_SCRATCH = tempfile.TemporaryDirectory(prefix="flashtts-parity-")  # removed at exit


def scratch(tag: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=_SCRATCH.name))


# ---------------------------------------------------------------------------
# Making models

def mkmodel(out: Path, **flags) -> Path:
    """flashtts-mkmodel --out OUT --key value ...; True flags become --key."""
    cmd = [program("flashtts-mkmodel"), "--out", out]
    for k, v in flags.items():
        k = "--" + k.replace("_", "-")
        if v is True:
            cmd.append(k)
        elif v is not False and v is not None:
            cmd += [k, v]
    run(cmd)
    return out


def perturb_(model: torch.nn.Module, seed: int, scale: float = 0.1) -> None:
    """Moves norms (HF init: 1) and biases (HF init: 0) off their init values,
    so that a missing norm weight or bias in the engine shows up."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + scale * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(scale * torch.randn(p.shape, generator=g))


def hf_causal_from_folder(folder: Path) -> torch.nn.Module:
    """Loads a causal LM folder with transformers (f32, bf16 upcast exactly),
    then float64. Fails when transformers finds missing or unexpected tensors."""
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(
        folder, torch_dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    if bad:
        raise RuntimeError(f"transformers loaded {folder} with problems: {bad}")
    return model.double().eval()


def hf_base_from_folder(folder: Path):
    """The Qwen2Model (no head) of a PRM folder, float64, from its "model.*"
    tensors, plus every stored tensor (float64) for applying the head by hand."""
    from transformers import Qwen2Config, Qwen2Model

    cfg = Qwen2Config.from_pretrained(folder)
    cfg._attn_implementation = "eager"
    tensors = {}
    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    for f in files:
        tensors.update(load_file(str(folder / f)))
    tensors = {k: v.to(torch.float64) for k, v in tensors.items()}
    base = Qwen2Model(cfg).double().eval()
    sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    missing, unexpected = base.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"{folder}: base model tensors missing {missing}, unexpected {unexpected}")
    return base, tensors


@torch.no_grad()
def hf_logits(model, ids) -> np.ndarray:
    """(len(ids), vocab) float64 logits of one sequence, no cache."""
    out = model(torch.tensor([list(ids)]), use_cache=False)
    return out.logits[0].numpy()


@torch.no_grad()
def hf_hidden(base, ids) -> np.ndarray:
    """(len(ids), hidden) final-normed hidden states of one sequence."""
    return base(torch.tensor([list(ids)]), use_cache=False).last_hidden_state[0].numpy()


# ---------------------------------------------------------------------------
# Driving the engine

def probe(folder: Path, ops, block_size=16, kv_mb=16, extra=()) -> dict:
    cmd = [program("flashtts-probe"), "--model", folder, "--block-size", block_size, "--kv-mb", kv_mb,
           "--threads", 2, *extra]
    return json.loads(run(cmd, stdin=json.dumps({"ops": ops})))


def generate_cli(folder: Path, prompt: str, max_tokens: int) -> dict:
    out = run([program("flashtts"), "generate", "--model", folder, "--prompt", prompt, "--max-tokens", max_tokens,
               "--temperature", 0, "--json", "--threads", 2])
    return json.loads(out)


def rows(item) -> np.ndarray:
    return np.asarray(item["values"], dtype=np.float64)


# ---------------------------------------------------------------------------
# Comparing and reporting

def rel_err(got: np.ndarray, ref: np.ndarray):
    """(max abs error, max abs error / max |ref|) over whole arrays."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        raise AssertionError(f"shape {got.shape} != reference shape {ref.shape}")
    abs_err = float(np.max(np.abs(got - ref))) if got.size else 0.0
    scale = float(np.max(np.abs(ref))) if ref.size else 1.0
    return abs_err, abs_err / max(scale, 1e-30)


def check_close(what: str, got, ref, positions=None, tol=REL_TOL) -> float:
    """Raises naming the worst position when rel error > tol; returns the rel error."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    a, r = rel_err(got, ref)
    if not (r <= tol):  # also catches NaN
        per_row = np.max(np.abs(got - ref).reshape(got.shape[0], -1), axis=1) if got.ndim > 1 else np.abs(got - ref)
        worst = int(np.argmax(per_row))
        pos = positions[worst] if positions is not None else worst
        raise AssertionError(f"{what}: max abs err {a:.3g}, rel {r:.3g} > {tol:g}; worst at position {pos} "
                             f"(row err {per_row[worst]:.3g}); first bad rows at positions "
                             f"{[positions[i] if positions is not None else i for i in np.nonzero(per_row > tol * np.max(np.abs(ref)))[0][:8].tolist()]}")
    return r


def check_greedy(what: str, model, prompt_ids, gen_ids, stop_ids=()) -> str:
    """The engine's greedy continuation gen_ids must be what HF's argmax loop
    produces: teacher-forcing prompt + gen_ids through HF, every generated id
    must be the argmax at its step (the same tokens then follow by induction)."""
    ids = list(prompt_ids) + list(gen_ids)
    logits = hf_logits(model, ids[:-1] if gen_ids else ids)
    steps = logits[len(prompt_ids) - 1:]
    for k, tok in enumerate(gen_ids):
        want = int(np.argmax(steps[k]))
        if tok != want:
            gap = steps[k][want] - steps[k][tok]
            raise AssertionError(f"{what}: greedy token {k} is {tok}, transformers' argmax is {want} "
                                 f"(logit gap {gap:.3g}); engine tokens {list(gen_ids)}")
        if tok in stop_ids and k != len(gen_ids) - 1:
            raise AssertionError(f"{what}: generation went on past stop id {tok} at step {k}")
    margin = min(float(np.sort(s)[-1] - np.sort(s)[-2]) for s in steps[:len(gen_ids)]) if gen_ids else 0.0
    return f"{what} {len(gen_ids)} tokens equal (min top-2 gap {margin:.2g})"


class Report:
    """Runs named cases, prints one line each and a final tally."""

    def __init__(self, title: str):
        self.title, self.passed, self.failed, self.t0 = title, 0, 0, time.time()

    def case(self, name: str, fn, *args, **kwargs):
        t = time.time()
        try:
            summary = fn(*args, **kwargs)
        except subprocess.TimeoutExpired as e:
            self.failed += 1
            print(f"FAIL {name}: {e.cmd[0]} hung (killed after {e.timeout:g}s); not running the other cases",
                  flush=True)
            self.finish()
        except Exception as e:  # noqa: BLE001 — every failure becomes one line
            self.failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}  [{time.time() - t:.1f}s]", flush=True)
            return None
        self.passed += 1
        print(f"ok   {name}: {summary}  [{time.time() - t:.1f}s]", flush=True)
        return summary

    def finish(self):
        print(f"{self.title}: {self.passed} passed, {self.failed} failed in {time.time() - self.t0:.0f}s")
        sys.exit(1 if self.failed else 0)


# ---------------------------------------------------------------------------
# Engine scripts checked against a reference, op by op

def run_script(folder: Path, ops, ref_rows, tol=REL_TOL, **probe_kw):
    """Runs a probe script and checks every returned row against
    ref_rows(tokens) -> (len(tokens), width) float64 array for the sequence's
    tokens at that moment (a mirror of the engine's sequences is kept here:
    run appends, fork copies, truncate cuts, release drops).
    Returns (max rel error, the probe output)."""
    out = probe(folder, ops, **probe_kw)
    mirror, cache, worst = {}, {}, 0.0
    for i, (op, res) in enumerate(zip(ops, out["results"])):
        kind = op["op"]
        if kind == "fork":
            mirror[op["child"]] = list(mirror[op["parent"]])
        elif kind == "truncate":
            mirror[op["seq"]] = mirror[op["seq"]][:op["keep"]]
        elif kind == "release":
            mirror.pop(op["seq"], None)
        elif kind == "run":
            if res.get("starved"):
                raise AssertionError(f"op {i}: sequences starved of KV blocks: {res['starved']}")
            for it, got in zip(op["items"], res["items"]):
                toks = mirror.setdefault(it["seq"], [])
                toks += it.get("tokens", [])
                if not got["positions"]:
                    continue
                key = tuple(toks)
                if key not in cache:
                    cache[key] = ref_rows(list(toks))
                pos = got["positions"]
                worst = max(worst, check_close(f"op {i} seq {it['seq']}", rows(got), cache[key][pos], pos, tol))
    return worst, out
