// libFuzzer target for the model config reader: arbitrary text through parse_model_config (what
// load_model runs on a checkpoint's "kiln_config"). A malformed config must end in kiln::Error; an
// accepted one must rebuild into a model whose config, written again, parses to the same layers.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "io/layer_config.h"
#include "io/model_config.h"
#include "kiln/error.h"

namespace io = kiln::io;

namespace {
// Builds allocate the weights, so only configs this small are built (the rest stop at the shape walk).
constexpr int64_t kMaxBuiltWeights = 1 << 16;
constexpr int64_t kMaxBuiltInput = 1 << 16;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  io::ModelConfig cfg;
  try {
    cfg = io::parse_model_config(text, "fuzz input");
  } catch (const kiln::Error&) {
    return 0;  // the expected answer to a malformed config
  }
  if (cfg.weight_count > kMaxBuiltWeights || (cfg.input_shape && cfg.input_shape->numel() > kMaxBuiltInput)) return 0;
  for (const auto& in : cfg.graph.inputs)
    if (in.shape().numel() > kMaxBuiltInput) return 0;
  if (!cfg.input_shape && !cfg.layers.empty() && !cfg.layers.front()->declared_input_shape().empty()) std::abort();
  try {
    kiln::Model model = [&]() -> kiln::Model {
      if (cfg.functional) return kiln::Model(cfg.graph.inputs, cfg.graph.outputs, cfg.name);
      std::vector<kiln::LayerRef> refs(cfg.layers.begin(), cfg.layers.end());
      kiln::Sequential seq(refs, cfg.name);
      for (std::size_t i = 0; i < cfg.layers.size(); ++i) seq.layers()[i]->set_name(cfg.layers[i]->name());
      if (cfg.input_shape && !seq.built()) seq.build(*cfg.input_shape);
      return seq;
    }();
    if (cfg.optimizer) {
      std::vector<kiln::LossRef> losses;
      for (const auto& l : cfg.losses) losses.emplace_back(*l);
      model.compile(*cfg.optimizer, losses, cfg.metrics, cfg.loss_weights);
    }
    const io::ModelConfig again = io::parse_model_config(io::model_config_json(model, cfg.epoch), "rewritten config");
    // A functional model lists its layers in the order of their first call.
    if (again.layers.size() != model.layers().size() || (!cfg.functional && again.layers.size() != cfg.layers.size()) ||
        again.input_shape != cfg.input_shape || again.weight_count != cfg.weight_count || again.epoch != cfg.epoch ||
        again.metrics != cfg.metrics || (again.optimizer == nullptr) != (cfg.optimizer == nullptr))
      std::abort();
    for (std::size_t i = 0; i < cfg.layers.size(); ++i)
      if (io::layer_to_json(*again.layers[i]) != io::layer_to_json(*model.layers()[i])) std::abort();
  } catch (const kiln::Error&) {
    std::abort();  // an accepted config must build and round-trip
  }
  return 0;
}
