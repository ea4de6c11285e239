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

// One row per run: accuracies in %, pass@N, failures, latency, tokens,
// goodput; with a strategy column first when the rows are labelled.
std::string markdown_table(std::span<const Summary> rows);

// Two panels against N on a log2 axis, with ticks and a legend. Rows of one
// label: accuracy (naive, weighted, majority, pass@N) and mean latency, each
// series one <polyline data-method="...">. Rows of several labels (several
// strategies): per label one <polyline data-strategy="..."> of weighted-vote
// accuracy and one of latency; a lone "greedy" row is drawn as a dashed level.
// REQUIRES: !rows.empty(), every n >= 1.
std::string svg_plot(std::span<const Summary> rows, const std::string& title);

}  // namespace flashtts::eval
