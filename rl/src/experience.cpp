#include <troupe/rl/experience.hpp>

#include <sstream>

#include <torch/torch.h>

#include <troupe/common/error.hpp>

namespace troupe::rl {
namespace {

std::string shape_of(const torch::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

const char* layout_name(Layout layout) {
  switch (layout) {
    case Layout::Sample: return "(B, ...)";
    case Layout::Prompt: return "(B, P)";
    case Layout::Sequence: return "(B, T)";
    case Layout::Token: return "(B, T-1)";
    case Layout::Answer: return "(B, A)";
  }
  return "?";
}

/// Length of the second dimension a tensor of `layout` must have (-1: any).
int64_t expected_width(Layout layout, int64_t P, int64_t T) {
  switch (layout) {
    case Layout::Sample: return -1;
    case Layout::Prompt: return P;
    case Layout::Sequence: return T;
    case Layout::Token: return T - 1;
    case Layout::Answer: return T - P;
  }
  return -1;
}

bool is_token_id_tensor(const std::string& name) { return name == "prompts" || name == "sequences"; }

}  // namespace

Experience Experience::from_generation(torch::Tensor prompts, torch::Tensor sequences,
                                       torch::Tensor attention_mask) {
  Experience exp;
  exp.prompts = std::move(prompts);             // (B, P)
  exp.sequences = std::move(sequences);         // (B, T)
  exp.attention_mask = std::move(attention_mask);  // (B, T)
  exp.validate();
  exp.action_mask = exp.attention_mask.narrow(1, 1, exp.sequence_length() - 1);  // (B, T-1)
  return exp;
}

int64_t Experience::batch_size() const {
  if (!sequences.defined()) throw Error("Experience: sequences is not set");
  return sequences.size(0);
}

int64_t Experience::prompt_length() const {
  if (!prompts.defined()) throw Error("Experience: prompts is not set");
  return prompts.size(1);
}

int64_t Experience::sequence_length() const {
  if (!sequences.defined()) throw Error("Experience: sequences is not set");
  return sequences.size(1);
}

int64_t Experience::answer_length() const { return sequence_length() - prompt_length(); }

MinibatchTotals Experience::totals() const {
  if (minibatch_totals) return *minibatch_totals;
  if (!action_mask.defined()) throw Error("Experience: action_mask is not set, so its action tokens cannot be counted");
  MinibatchTotals own;
  own.rows = batch_size();
  own.answer_width = answer_length();
  own.action_tokens = action_mask.narrow(1, start(), own.answer_width).ne(0).sum().item<int64_t>();
  return own;
}

void Experience::validate() const {
  if (!sequences.defined() || sequences.dim() != 2)
    throw Error("Experience: sequences must be a (B, T) tensor" +
                (sequences.defined() ? ", got " + shape_of(sequences) : std::string(", but it is not set")));
  if (!prompts.defined() || prompts.dim() != 2)
    throw Error("Experience: prompts must be a (B, P) tensor" +
                (prompts.defined() ? ", got " + shape_of(prompts) : std::string(", but it is not set")));
  const int64_t B = sequences.size(0), T = sequences.size(1), P = prompts.size(1);
  if (P < 1 || P >= T)
    throw Error("Experience: prompt length " + std::to_string(P) + " must be in [1, T) with T = " +
                std::to_string(T) + " (sequences " + shape_of(sequences) + ")");
  for_each([&](const std::string& name, Layout layout, const torch::Tensor& t) {
    if (!t.defined()) return;
    const int64_t width = expected_width(layout, P, T);
    const bool ok = t.dim() >= 1 && t.size(0) == B &&
                    (width < 0 || (t.dim() == 2 && t.size(1) == width));
    if (!ok) {
      std::string expected = std::string(layout_name(layout)) + " with B = " + std::to_string(B);
      if (width >= 0) expected += " and width " + std::to_string(width);
      throw Error("Experience: " + name + " has shape " + shape_of(t) + ", expected " + expected +
                  " (P = " + std::to_string(P) + ", T = " + std::to_string(T) + ")");
    }
    if (is_token_id_tensor(name) && !c10::isIntegralType(t.scalar_type(), /*includeBool=*/false))
      throw Error("Experience: " + name + " must hold integer token ids, got " +
                  std::string(c10::toString(t.scalar_type())));
  });
}

void Experience::set_extra(const std::string& name, Layout layout, torch::Tensor tensor) {
  extras[name] = {layout, std::move(tensor)};
}

const torch::Tensor& Experience::extra(const std::string& name) const {
  auto it = extras.find(name);
  if (it == extras.end()) {
    std::string known;
    for (const auto& entry : extras) known += (known.empty() ? "" : ", ") + entry.first;
    throw Error("Experience: no extra tensor '" + name + "' (extras: " + (known.empty() ? "none" : known) + ")");
  }
  return it->second.second;
}

Experience Experience::slice(int64_t begin, int64_t end) const {
  const int64_t B = batch_size();
  if (begin < 0 || end > B || begin > end)
    throw Error("Experience::slice: rows [" + std::to_string(begin) + ", " + std::to_string(end) +
                ") out of a batch of " + std::to_string(B));
  Experience out = *this;
  out.minibatch_totals.reset();
  out.for_each([&](const std::string&, Layout, torch::Tensor& t) {
    if (t.defined()) t = t.narrow(0, begin, end - begin);
  });
  return out;
}

Experience Experience::index_select(const torch::Tensor& rows) const {
  TORCH_CHECK(rows.dim() == 1 && c10::isIntegralType(rows.scalar_type(), false),
              "Experience::index_select: rows must be a 1-D integer tensor, got ", rows.sizes(), " ",
              rows.scalar_type());
  Experience out = *this;
  out.minibatch_totals.reset();
  out.for_each([&](const std::string&, Layout, torch::Tensor& t) {
    if (t.defined()) t = t.index_select(0, rows.to(t.device(), torch::kLong));
  });
  return out;
}

std::vector<Experience> Experience::split(int64_t minibatch_size) const {
  if (minibatch_size < 1)
    throw Error("Experience::split: minibatch size must be >= 1, got " + std::to_string(minibatch_size));
  std::vector<Experience> parts;
  const int64_t B = batch_size();
  for (int64_t begin = 0; begin < B; begin += minibatch_size)
    parts.push_back(slice(begin, std::min(B, begin + minibatch_size)));
  return parts;
}

Experience Experience::to(const torch::Device& device) const {
  Experience out = *this;
  out.for_each([&](const std::string&, Layout, torch::Tensor& t) {
    if (t.defined()) t = t.to(device);
  });
  return out;
}

Experience concat(const std::vector<Experience>& parts, int64_t pad_token_id) {
  if (parts.empty()) throw Error("rl::concat: no experiences to concatenate");
  int64_t max_prompt = 0, max_answer = 0;
  for (const auto& part : parts) {
    part.validate();
    max_prompt = std::max(max_prompt, part.prompt_length());
    max_answer = std::max(max_answer, part.answer_length());
  }

  // Collect, per tensor name, the padded tensor of every part.
  std::vector<std::string> names;
  std::vector<std::vector<torch::Tensor>> columns;
  for (size_t i = 0; i < parts.size(); ++i) {
    const int64_t left = max_prompt - parts[i].prompt_length();
    const int64_t right = max_answer - parts[i].answer_length();
    size_t column = 0;
    parts[i].for_each([&](const std::string& name, Layout layout, const torch::Tensor& t) {
      if (i == 0) {
        names.push_back(name);
        columns.emplace_back();
      } else if (column >= names.size() || names[column] != name) {
        throw Error("rl::concat: experience " + std::to_string(i) + " has tensor '" + name +
                    "' where experience 0 has '" + (column < names.size() ? names[column] : "nothing") + "'");
      }
      if (i > 0 && t.defined() != columns[column].front().defined())
        throw Error("rl::concat: '" + name + "' is set in some experiences and not in others (experience " +
                    std::to_string(i) + ")");
      torch::Tensor padded = t;
      if (t.defined()) {
        const double value = is_token_id_tensor(name) ? static_cast<double>(pad_token_id) : 0.0;
        switch (layout) {
          case Layout::Sample: break;
          case Layout::Prompt: padded = torch::constant_pad_nd(t, {left, 0}, value); break;
          case Layout::Sequence:
          case Layout::Token: padded = torch::constant_pad_nd(t, {left, right}, value); break;
          case Layout::Answer: padded = torch::constant_pad_nd(t, {0, right}, value); break;
        }
      }
      columns[column].push_back(padded);
      ++column;
    });
    if (column != names.size())
      throw Error("rl::concat: experience " + std::to_string(i) + " has a different set of extra tensors");
  }

  Experience out = parts.front();
  out.minibatch_totals.reset();
  size_t column = 0;
  out.for_each([&](const std::string&, Layout, torch::Tensor& t) {
    const auto& column_parts = columns[column++];
    t = column_parts.front().defined() ? torch::cat(column_parts, 0) : torch::Tensor();
  });
  // Re-derived so the prompt's first token, now after left padding, stays consistent.
  if (out.attention_mask.defined() && out.action_mask.defined())
    out.action_mask = out.attention_mask.narrow(1, 1, out.sequence_length() - 1);  // (B, T-1)
  out.validate();
  return out;
}

}  // namespace troupe::rl
