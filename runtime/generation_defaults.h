// The policy model's own sampling recommendation (its generation_config.json,
// gpu/generation_config.h) made the default of requests that do not set
// temperature, top_p or top_k. Precedence, key by key:
//
//   solve:    the request > a [search] key the configuration file sets >
//             generation_config.json > the built-in [search] default
//   generate: the request > generation_config.json > the built-in default
//             (greedy: temperature 0, top_p 1, top_k 0)
//
// "Sets" means the key is written in the file (Config::search_keys); a
// Config built in code has none, so there the folder's values win.
//
// Thread contract: called once by the thread that starts the actors
// (Supervisor::start), before any actor copies the defaults.
#pragma once

#include <string>

#include "runtime/config.h"
#include "runtime/base/status.h"

namespace flashtts {

// Applies the policy folder's generation_config.json to c->defaults.
// Returns one sentence for the log saying what changed ("" when nothing
// did); an error, naming the file and key, when the file is malformed.
Expected<std::string> apply_generation_defaults(Config* c);

}  // namespace flashtts
