#include <troupe/engine/checkpoint.hpp>

#include <unistd.h>

#include <optional>
#include <set>

#include <nlohmann/json.hpp>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>
#include "write_progress.hpp"
#include <troupe/engine/zero3.hpp>
#include "base_model.hpp"
#include <troupe/models/chat_format.hpp>
#include <troupe/models/peft_adapter.hpp>
#include <troupe/models/pretrained.hpp>

namespace fs = std::filesystem;

namespace troupe::engine {

namespace {

const char* const kTokenizerFiles[] = {"tokenizer.json",        "vocab.json",  "merges.txt",
                                       "tokenizer.model",       "tokenizer_config.json",
                                       "special_tokens_map.json"};

/// Builds a directory under a temporary name beside `dir`, then swaps it into place:
/// the old one is moved aside first and removed only after the new one is in place.
void write_directory_atomically(const fs::path& dir, const std::function<void(const fs::path&)>& fill) {
  const auto parent = dir.parent_path().empty() ? fs::path(".") : dir.parent_path();
  fs::create_directories(parent);
  const auto tmp = parent / (dir.filename().string() + ".tmp." + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    fill(tmp);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  const auto old = parent / (dir.filename().string() + ".old." + std::to_string(::getpid()));
  std::error_code ec;
  if (fs::exists(dir)) {
    fs::rename(dir, old, ec);
    if (ec) throw Error(dir.string() + ": cannot move the previous checkpoint aside: " + ec.message());
  }
  fs::rename(tmp, dir, ec);
  if (ec) {
    if (fs::exists(old)) fs::rename(old, dir);
    throw Error(dir.string() + ": cannot rename the new checkpoint into place: " + ec.message());
  }
  fs::remove_all(old, ec);
}

/// A ZeRO stage 3 rank's trained weights are its master chunks (what its optimizer
/// steps); the frozen chunks come from the model it was started from.
void write_zero3_chunks(const Zero3Partition& zero3, const fs::path& file) {
  torch::serialize::OutputArchive archive;
  const auto& masters = zero3.master_chunks();
  for (size_t group = 0; group < masters.size(); ++group)
    for (size_t i = 0; i < masters[group].size(); ++i)
      archive.write("group" + std::to_string(group) + "." + std::to_string(i), masters[group][i].detach());
  archive.save_to(file.string());
}

/// Puts the chunks back, then the kept-whole parameters read them (an all-gather: every
/// rank of the group loads at once).
void read_zero3_chunks(Zero3Partition& zero3, const fs::path& file) {
  torch::serialize::InputArchive archive;
  archive.load_from(file.string());
  {
    torch::NoGradGuard no_grad;
    const auto& masters = zero3.master_chunks();
    for (size_t group = 0; group < masters.size(); ++group)
      for (size_t i = 0; i < masters[group].size(); ++i) {
        const auto key = "group" + std::to_string(group) + "." + std::to_string(i);
        torch::Tensor saved;
        if (!archive.try_read(key, saved) || saved.sizes() != masters[group][i].sizes())
          throw Error(file.string() + ": chunk " + key + " missing or of another size (another model or rank count?)");
        masters[group][i].copy_(saved);
      }
  }
  zero3.gather_kept_parameters();
}

torch::Tensor cpu_rng_state() { return at::detail::getDefaultCPUGenerator().get_state(); }

/// The base an adapter checkpoint of `model` stands on: the directory it was loaded
/// from, when some of its parameters are frozen (LoRA with --only_optimize_lora). None:
/// every parameter trains, or the model was built in code (nothing to point at).
std::optional<BaseModelFingerprint> frozen_base_of(models::CausalLMImpl& model) {
  if (model.name_or_path().empty()) return std::nullopt;
  bool frozen = false;
  for (const auto& p : model.parameters()) frozen = frozen || !p.requires_grad();
  if (!frozen) return std::nullopt;
  return fingerprint_base_model(model.name_or_path());
}

/// A frozen parameter the base's files hold (a tied LM head through the embedding): an
/// adapter checkpoint leaves it out, resume loads it from the base.
bool given_by_base(const std::string& name, const torch::Tensor& param, const std::set<std::string>& base_tensors,
                   bool tied) {
  if (param.requires_grad()) return false;
  return base_tensors.count(name) || (tied && name == "lm_head.weight");
}

}  // namespace

void copy_tokenizer_files(const fs::path& from, const fs::path& to) {
  if (from.empty()) return;
  for (const char* name : kTokenizerFiles)
    if (fs::exists(from / name)) fs::copy_file(from / name, to / name, fs::copy_options::overwrite_existing);
}

void save_model_dir(models::CausalLMImpl& model, const fs::path& tokenizer_dir, const fs::path& dir) {
  write_directory_atomically(dir, [&](const fs::path& tmp) {
    WriteProgress progress("saving " + dir.string(), tmp);
    models::save_pretrained(model, tmp);
    copy_tokenizer_files(tokenizer_dir, tmp);
    // The prompt format troupe trains in, for transformers' apply_chat_template and for
    // `troupe chat` / `troupe serve`.
    if (!tokenizer_dir.empty()) models::write_chat_template(tmp, models::ChatFormat::Troupe);
    if (models::peft_exportable(model)) models::save_peft_adapter(model, tmp / models::kPeftAdapterDir);
  });
}

void save_training_checkpoint(TrainEngine& engine, const fs::path& tokenizer_dir, const fs::path& dir,
                              const TrainingPosition& position, const nlohmann::json& extra) {
  auto& model = *engine.model();
  const auto* zero3 = engine.zero3();
  const auto base = zero3 ? std::nullopt : frozen_base_of(model);
  const bool tied = model.config().tie_word_embeddings;
  write_directory_atomically(dir, [&](const fs::path& tmp) {
    WriteProgress progress("saving checkpoint " + dir.string(), tmp);
    if (zero3) {  // this rank's part only: no whole model to write
      fs::create_directories(tmp / "training_state");
      write_zero3_chunks(*zero3, tmp / "training_state" / "parameters.pt");
    } else if (!base) {  // an adapter checkpoint has no model of its own: the base is on disk already
      models::save_pretrained(model, tmp);
      copy_tokenizer_files(tokenizer_dir, tmp);
      if (!tokenizer_dir.empty()) models::write_chat_template(tmp, models::ChatFormat::Troupe);
    }
    const auto state_dir = tmp / "training_state";
    fs::create_directories(state_dir);
    if (!zero3) {
      torch::serialize::OutputArchive archive;
      for (const auto& item : model.named_parameters())
        if (!base || !given_by_base(item.key(), item.value(), base->tensor_names, tied))
          archive.write(item.key(), item.value().detach());
      archive.save_to((state_dir / "parameters.pt").string());
    }
    torch::save(engine.optimizer(), (state_dir / "optimizer.pt").string());
    {
      torch::serialize::OutputArchive archive;
      archive.write("cpu", cpu_rng_state());
      archive.save_to((state_dir / "rng.pt").string());
    }
    nlohmann::json state{{"global_step", engine.global_step()},
                         {"micro_steps", engine.micro_steps()},
                         {"epoch", position.epoch},
                         {"batch", position.batch},
                         {"extra", extra}};
    if (base) state["base_model"] = base_model_json(*base);
    if (zero3) state["zero3_chunks"] = true;
    write_file_atomically(state_dir / "state.json", state.dump(2) + "\n");
  });
}

bool has_training_checkpoint(const fs::path& dir) { return fs::exists(dir / "training_state" / "state.json"); }

TrainingPosition load_training_checkpoint(TrainEngine& engine, const fs::path& dir, nlohmann::json* extra) {
  const auto state_dir = dir / "training_state";
  if (!has_training_checkpoint(dir)) throw Error(dir.string() + ": no training checkpoint (training_state/state.json missing)");
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(read_file(state_dir / "state.json"));
  } catch (const nlohmann::json::exception& e) {
    throw Error((state_dir / "state.json").string() + ": " + e.what());
  }
  auto& model = *engine.model();
  if (engine.zero3()) {
    if (!state.value("zero3_chunks", false))
      throw Error((state_dir / "state.json").string() + ": a whole-model checkpoint, and this engine runs ZeRO stage 3");
    read_zero3_chunks(*engine.zero3(), state_dir / "parameters.pt");
  } else if (state.value("zero3_chunks", false)) {
    throw Error((state_dir / "state.json").string() + ": a ZeRO stage 3 rank's chunks, and this engine is not partitioned");
  }
  // An adapter checkpoint: the frozen base first, from the directory it names, once its
  // files are the ones trained on; parameters.pt then holds the rest.
  std::set<std::string> base_tensors;
  if (state.contains("base_model")) {
    const auto base = base_model_from_json(state["base_model"], (state_dir / "state.json").string());
    base_tensors = verify_base_model(base, dir.string());
    models::load_weights(model, models::map_checkpoint(base.dir), base.dir.string());
  }
  const bool tied = model.config().tie_word_embeddings;
  if (!engine.zero3()) {
    torch::serialize::InputArchive archive;
    archive.load_from((state_dir / "parameters.pt").string());
    torch::NoGradGuard no_grad;
    for (auto& item : model.named_parameters()) {
      torch::Tensor saved;
      if (!archive.try_read(item.key(), saved)) {
        if (given_by_base(item.key(), item.value(), base_tensors, tied)) continue;
        throw Error((state_dir / "parameters.pt").string() + ": parameter " + item.key() + " missing" +
                    (item.value().requires_grad() && !base_tensors.empty() ? " (it trains now; was it frozen when saved?)" : ""));
      }
      if (saved.sizes() != item.value().sizes())
        throw Error((state_dir / "parameters.pt").string() + ": parameter " + item.key() + " has another shape");
      item.value().copy_(saved);
    }
  }
  torch::load(engine.optimizer(), (state_dir / "optimizer.pt").string());
  {
    torch::serialize::InputArchive archive;
    archive.load_from((state_dir / "rng.pt").string());
    torch::Tensor rng;
    archive.read("cpu", rng);
    auto generator = at::detail::getDefaultCPUGenerator();  // a handle to the global generator
    generator.set_state(rng);
  }
  try {
    engine.set_progress(state.at("global_step").get<int64_t>(), state.at("micro_steps").get<int64_t>());
    if (extra) *extra = state.value("extra", nlohmann::json::object());
    return {state.at("epoch").get<int64_t>(), state.at("batch").get<int64_t>()};
  } catch (const nlohmann::json::exception& e) {
    throw Error((state_dir / "state.json").string() + ": " + e.what());
  }
}

}  // namespace troupe::engine
