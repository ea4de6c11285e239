// What `flashtts ask` and `flashtts run` share: the solve options, waiting
// for the reply with progress on stderr, and printing the result.
//
// Thread contract: the main thread only.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>

#include "messages/msgpack_io.h"
#include "runtime/client.h"

namespace flashtts::cli {

struct SolveFlags {
  std::string problem;
  std::optional<std::string> strategy, aggregation, selection;
  std::optional<int32_t> n, beam_width, max_steps, max_tokens_per_step, top_k;
  std::optional<double> temperature, top_p;
  std::optional<uint64_t> seed;
  bool all = false;      // return every completion
  bool json = false;     // print the whole result as JSON
  bool quiet = false;    // no progress line
  double timeout_s = 600;
  // `ask` leaves the problem optional: it also has `ask ping` and `ask stats`.
  void add(CLI::App* sub, bool problem_required = true);
  msg::MapWriter fields() const;  // the solve request's fields (stream on)
};

// Sends the solve and waits for its final frame; `idle` runs between polls
// (run: watch the in-process actors) and may return an error to give up.
// After --timeout the request is cancelled on the server (Client::give_up).
// Prints progress to stderr unless quiet.
Expected<ServerFrame> solve_and_wait(Client& client, const SolveFlags& f,
                                     const std::function<std::optional<std::string>()>& idle = nullptr);

// Prints the answer, the chosen steps with their scores and the time (with
// --all every completion after them), or the whole result as JSON.
void print_solve_result(const ServerFrame& result, const SolveFlags& f, double seconds);

// A msgpack map as indented JSON.
std::string to_json_text(const msg::MapReader& r);

}  // namespace flashtts::cli
