// .keras archives and .weights.h5 files: the zip and JSON side, and the order of a load (config
// translated and checked, model built, weights read and checked, then compile and optimizer state).
#include "io/keras_format/keras_file.h"

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "io/atomic_file.h"
#include "io/file_read.h"
#include "io/keras_format/keras_config.h"
#include "io/keras_format/keras_h5.h"
#include "io/keras_format/keras_weights.h"
#include "io/model_config.h"
#include "io/model_io.h"
#include "io/zip_archive.h"
#include "kiln/error.h"
#include "kiln/random.h"

#ifndef KILN_VERSION
#define KILN_VERSION "unknown"
#endif

namespace kiln::io::keras {

using nlohmann::json;

namespace {

constexpr const char* kConfigEntry = "config.json";
constexpr const char* kMetadataEntry = "metadata.json";
constexpr const char* kWeightsEntry = "model.weights.h5";

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// `name` is a view, not a const std::string&: a string built from a literal at the call would be a
// temporary that the returned reference seems (to GCC 13) to outlive.
const ZipEntry& entry(const std::vector<ZipEntry>& entries, std::string_view name, const std::string& source) {
  for (const auto& e : entries)
    if (e.name == name) return e;
  std::string names;
  for (const auto& e : entries) names += (names.empty() ? "" : ", ") + e.name.substr(0, 80);
  if (name == kWeightsEntry)
    for (const auto& e : entries)
      if (e.name == "model.weights.json")
        throw Error("load_model", source + " holds sharded weights (model.weights.json); expected one " +
                                      kWeightsEntry + " (sharded .keras files are not read)");
  throw Error("load_model", source + " has no entry '" + std::string(name) + "'; expected " + kConfigEntry + ", " +
                                kMetadataEntry + " and " + kWeightsEntry + " as Keras 3 writes them (it holds " +
                                (names.empty() ? "nothing" : names) + ")");
}

std::string today() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
#ifdef _WIN32
  gmtime_s(&tm, &now);
#else
  gmtime_r(&now, &tm);
#endif
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d@%H:%M:%S", &tm);
  return text;
}

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

}  // namespace

bool is_keras_path(const std::string& path) { return ends_with(path, ".keras"); }

bool is_keras_weights_path(const std::string& path) { return ends_with(path, ".weights.h5"); }

Model load_keras_archive(const std::vector<uint8_t>& archive, const std::string& source) {
  return load_keras_entries(read_zip_bytes("load_model", archive), source);
}

Model load_keras_entries(const std::vector<ZipEntry>& entries, const std::string& source) {
  const ZipEntry& config_entry = entry(entries, kConfigEntry, source);
  const ZipEntry& weights_entry = entry(entries, kWeightsEntry, source);
  const json keras = json::parse(config_entry.bytes.begin(), config_entry.bytes.end(), nullptr, false);
  if (keras.is_discarded())
    throw Error("load_model", source + ": " + kConfigEntry + " is not valid JSON; expected Keras' model config");
  const std::string kiln_text = kiln_config_from_keras(keras, source).dump();
  ModelConfig cfg = parse_model_config(kiln_text, source + ": " + kConfigEntry);
  const H5Reader h5(weights_entry.bytes, "load_model", source + ": " + kWeightsEntry);
  // Every weight is at least a float16 of the weights file: a config asking for more is refused
  // before its weights are allocated.
  if (static_cast<uint64_t>(cfg.weight_count) > weights_entry.bytes.size() / 2)
    throw Error("load_model", source + ": the config describes " + std::to_string(cfg.weight_count) + " weights but " +
                                  kWeightsEntry + " is " + std::to_string(weights_entry.bytes.size()) +
                                  " bytes; expected every weight in it");
  Model model = build_model(cfg, source);
  read_layer_weights(model, h5, "load_model");
  if (cfg.optimizer) {
    std::vector<LossRef> losses;
    for (const auto& l : cfg.losses) losses.emplace_back(*l);
    model.compile(*cfg.optimizer, losses, cfg.metrics, cfg.loss_weights);
    read_optimizer_state(model, h5, "load_model");
  }
  model.generator() = global_generator().split();
  return model;
}

Model load_keras_model(const std::string& path) {
  return load_keras_archive(read_regular_file(path, "load_model", "a .keras archive"), path);
}

void save_keras_model(const Model& model, const std::string& path) {
  if (!model.built())
    throw Error("save",
                "the model is not built, so it has no weights to save; expected build(input_shape), fit() "
                "or an input_shape on layer 0 before save");
  const json config = keras_config_from_model(model);
  const json metadata = {{"keras_version", kKerasVersion}, {"kiln_version", KILN_VERSION}, {"date_saved", today()}};
  // Keras writes its three entries stored, metadata first.
  write_zip("save", path,
            {{kMetadataEntry, bytes_of(metadata.dump())},
             {kConfigEntry, bytes_of(config.dump())},
             {kWeightsEntry, weights_h5(model, true)}});
}

void save_keras_weights(const Model& model, const std::string& path) {
  if (!model.built())
    throw Error("save_weights",
                "the model is not built, so it has no weights; expected build(input_shape) or fit() "
                "before save_weights");
  const std::vector<uint8_t> bytes = weights_h5(model, true);
  write_file_atomically(path, bytes);
}

void load_keras_weights(Model& model, const std::string& path) {
  if (!model.built())
    throw Error("load_weights", path +
                                    ": the model is not built; expected a first layer with input_shape, or "
                                    "build(input_shape), before loading weights");
  const H5Reader h5(read_regular_file(path, "load_weights", "a Keras .weights.h5 file"), "load_weights", path);
  read_layer_weights(model, h5, "load_weights");
}

}  // namespace kiln::io::keras
