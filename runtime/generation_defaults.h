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
// Config built in code has none, so there the folder's values win. The
// HTTP gateway's plain OpenAI requests are generates that send only the
// fields their body has, so the generate line holds for them too;
// `flashtts generate --model DIR` follows it with its flags as the request.
//
// Thread contract: apply_generation_defaults() is called once by the thread
// that starts the actors (Supervisor::start), before any actor copies the
// defaults; apply_sampling_defaults() is a pure function.
#pragma once

#include <string>

#include "gpu/generation_config.h"
#include "messages/requests.h"
#include "runtime/config.h"
#include "runtime/base/status.h"

namespace flashtts {

// Applies the policy folder's generation_config.json to c->defaults.
// Returns one sentence for the log saying what changed ("" when nothing
// did); an error, naming the file and key, when the file is malformed.
Expected<std::string> apply_generation_defaults(Config* c);

// Writes each sampling key `d` has over the generate defaults *g: what a
// generate that sets none of them samples with.
void apply_sampling_defaults(const SamplingDefaults& d, msg::GenerateParams* g);

}  // namespace flashtts
