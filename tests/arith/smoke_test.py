"""Smoke test of the arith trainers: a few training steps of a tiny policy
and PRM (no retraining of the shipped models). Asserts the folders load with
transformers and, when build/flashtts exists, with flashtts (generate, score).
Run: .venv-ref/bin/python tests/arith/smoke_test.py [--flashtts build/flashtts]"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TOOLS = os.path.join(ROOT, "tools", "arith")


def run(args):
    r = subprocess.run([sys.executable] + args, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flashtts", default=os.path.join(ROOT, "build", "flashtts"))
    a = ap.parse_args()
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        pol, prm = os.path.join(d, "policy"), os.path.join(d, "prm")
        tiny = ["--hidden", "32", "--layers", "1", "--heads", "2", "--kv-heads", "1", "--inter", "64"]
        run([os.path.join(TOOLS, "train_policy.py"), "--out", pol, "--steps", "3", "--batch", "4", "--eval", "4",
             "--threads", "1"] + tiny)
        s = json.load(open(os.path.join(pol, "train_summary.json")))
        assert s["steps"] == 3 and 0.0 <= s["greedy_accuracy"] <= 1.0, s
        out = run([os.path.join(TOOLS, "coverage.py"), "--policy", pol, "--n", "3", "--k", "4", "--threads", "1",
                   "--results"])
        assert out.count(" greedy ") == 2 and "step@4" in out and "pass@4" in out and " results: " in out, out
        run([os.path.join(TOOLS, "train_prm.py"), "--policy", pol, "--out", prm, "--samples", "4",
             "--sample-batch", "4", "--max-new", "24", "--synthetic", "40", "--steps", "3", "--batch", "4",
             "--threads", "1"] + tiny)
        s = json.load(open(os.path.join(prm, "train_summary.json")))
        assert s["train_steps"] == 3 and s["solutions"] > 0, s
        cfg = json.load(open(os.path.join(prm, "config.json")))
        assert cfg["architectures"] == ["Qwen2ForProcessRewardModel"], cfg
        # The fresh-data modes: sibling pairs over the policy's body plus a new
        # layer with the next-token loss, and the packed local-arithmetic curriculum.
        prm2 = os.path.join(d, "prm-pairs")
        stream = ["--policy", pol, "--samples", "4", "--sample-batch", "4", "--max-new", "24", "--steps", "3",
                  "--batch", "4", "--threads", "1", "--token-labels", "0", "--stream"]
        run([os.path.join(TOOLS, "train_prm.py"), "--out", prm2, "--pairs", "--extra-layers", "1", "--lm-weight",
             "1", "--save-every", "2"] + stream)
        s = json.load(open(os.path.join(prm2, "train_summary.json")))
        assert s["mode"] == "pairs" and 0.0 <= s["val_step_accuracy"]["policy_pairs"] <= 1.0, s
        assert json.load(open(os.path.join(prm2, "config.json")))["num_hidden_layers"] == 2
        run([os.path.join(TOOLS, "train_prm.py"), "--out", os.path.join(d, "prm-local"), "--local", "4"] + stream)
        s = json.load(open(os.path.join(d, "prm-local", "train_summary.json")))
        assert s["mode"] == "local" and "local" in s["val_step_accuracy"], s
        # The verifier circuit over a body of the shipped shape (its minimum), trained as the
        # shipped body's last runs were: long problems, results weighted, more subtractions.
        body = os.path.join(d, "body")
        run([os.path.join(TOOLS, "train_policy.py"), "--out", body, "--steps", "2", "--batch", "4", "--eval", "2",
             "--threads", "1", "--hidden", "128", "--layers", "1", "--heads", "4", "--kv-heads", "2", "--inter", "256",
             "--min-ops", "4", "--op-weights", "1", "1.5", "1", "--result-weight", "4"])
        run([os.path.join(TOOLS, "prm_circuit.py"), "--body", body, "--policy", body, "--out", os.path.join(d, "prm-c"),
             "--samples-file", os.path.join(d, "samples.jsonl"), "--samples", "12", "--fit", "6", "--pairs", "4",
             "--threads", "1"])
        s = json.load(open(os.path.join(d, "prm-c", "train_summary.json")))
        assert s["kind"] == "circuit" and s["layers"] == 3 and 0.0 <= s["policy_pairs"] <= 1.0, s
        out = run([os.path.join(TOOLS, "prm_heldout.py"), os.path.join(d, "prm-c"), "--samples-file",
                   os.path.join(d, "samples.jsonl"), "--samples", "12", "--skip", "6", "--rows", "6",
                   "--threads", "1"])
        h = json.loads(out)
        assert h["tags"] == h["right"] + h["wrong"] > 0 and 0.0 <= h["accuracy"] <= 1.0 and h["log_loss"] >= 0, h
        if os.path.exists(a.flashtts):
            out = subprocess.run([a.flashtts, "score", "--prm", os.path.join(d, "prm-c"), "--problem",
                                  "Let a = 5. Let b = a * 3. What is b?", "--solution", "b = a * 3 = 5 * 3 = 15",
                                  "--json", "--threads", "1"], capture_output=True, text=True, check=True).stdout
            assert len(json.loads(out)["step_scores"]) == 1
            out = subprocess.run([a.flashtts, "generate", "--model", pol, "--chat", "--prompt",
                                  "Let a = 5. Let b = a * 3. What is b?", "--temperature", "0", "--max-tokens", "8",
                                  "--json", "--threads", "1"], capture_output=True, text=True, check=True).stdout
            assert len(json.loads(out)["token_ids"]) >= 1
            out = subprocess.run([a.flashtts, "score", "--prm", prm, "--problem", "Let a = 5. Let b = a * 3. What is b?",
                                  "--solution", "b = a * 3 = 5 * 3 = 15\n\nThe answer is \\boxed{15}.", "--json",
                                  "--threads", "1"], capture_output=True, text=True, check=True).stdout
            sc = json.loads(out)["step_scores"]
            assert len(sc) == 2 and all(0.0 <= x <= 1.0 for x in sc), sc
            out = subprocess.run([a.flashtts, "score", "--prm", prm2, "--problem", "Let a = 5. Let b = a * 3. What is b?",
                                  "--solution", "b = a * 3 = 5 * 3 = 15", "--json", "--threads", "1"],
                                 capture_output=True, text=True, check=True).stdout
            assert len(json.loads(out)["step_scores"]) == 1
    print(f"arith smoke test ok in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
