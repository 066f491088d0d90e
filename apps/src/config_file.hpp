#pragma once
/// `--config FILE` for any subcommand: the file's settings become flags placed before
/// the command line's own, and a flag given on the command line wins over the file.
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace troupe::apps {

/// Replaces `--config FILE` in `args` (argv without argv[0]) by the file's settings as
/// `--KEY VALUE` arguments of the subcommand `args[0]`. FILE is a JSON object
/// ({"learning_rate": 1e-4, "data_path": ["a", "b"], "enable_ema": true}) or lines of
/// `KEY = VALUE` (# starts a comment). Throws troupe::Error naming the file and line
/// for a malformed entry or a key that is not a flag of the subcommand.
std::vector<std::string> expand_config_file(const CLI::App& app, std::vector<std::string> args);

}  // namespace troupe::apps
