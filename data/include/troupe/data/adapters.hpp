#pragma once
/// Dataset adapters: one per public dataset schema, turning a JSON row into a Sample,
/// and a registry of them by schema name (the Hugging Face dataset name).
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include <troupe/common/error.hpp>
#include <troupe/data/sample.hpp>

namespace troupe::data {

/// A per-sample problem (missing or wrongly typed field, malformed JSON row). The
/// reader adds the file and line; `--skip_bad_samples` turns these into counts.
class SampleError : public Error {
 public:
  explicit SampleError(const std::string& what) : Error(what) {}
};

/// Turns one JSON object into a Sample; std::nullopt skips the row. Throws
/// SampleError naming the field and what was expected.
using Adapter = std::function<std::optional<Sample>(const nlohmann::json& row)>;

/// The adapter for `schema` (e.g. "Dahoas/rm-static"); throws troupe::Error listing
/// the known schemas when there is none.
const Adapter& find_adapter(const std::string& schema);

/// Adds (or replaces) an adapter, so an application can bring its own schema.
void register_adapter(const std::string& schema, Adapter adapter);

/// Every registered schema name, sorted.
std::vector<std::string> known_schemas();

/// The conversation format of REFERENCE.md: "\n\nHuman: " + question + "\n\nAssistant:".
std::string format_prompt(const std::string& question);

/// Removes web-citation markers such as "[1]", "[2, 3]" or "[1][4]" (with the space
/// before them), as webgpt answers carry them.
std::string strip_citations(const std::string& text);

}  // namespace troupe::data
