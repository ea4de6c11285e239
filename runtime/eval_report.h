// What `flashtts eval` writes: the JSONL line of one problem, the summary of
// one N, the markdown table over all N, and the SVG plot of accuracy and
// latency against N (hand-written SVG, no dependencies).
//
// Thread contract: pure functions; any thread.
#pragma once

#include <span>
#include <string>

#include "runtime/eval_metrics.h"

namespace flashtts::eval {

// One JSON object, no newline: index, id, n, gold, the three predicted
// answers and their correctness, pass, stats (or error).
std::string outcome_json(const Outcome& o);

// A few lines for people: accuracies, pass@N, latency, tokens, goodput.
std::string summary_text(const Summary& s);

// One row per N: accuracies in %, pass@N, failures, latency, tokens, goodput.
std::string markdown_table(std::span<const Summary> rows);

// Two panels: accuracy (naive, weighted, majority, pass@N) and mean latency
// against N on a log2 axis, with ticks and a legend. Every series is one
// <polyline data-method="..."> (naive, weighted, majority, pass, latency).
// REQUIRES: !rows.empty(), every n >= 1.
std::string svg_plot(std::span<const Summary> rows, const std::string& title);

}  // namespace flashtts::eval
