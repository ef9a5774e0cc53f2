// Keras 3's files: the .keras archive (config.json, metadata.json, model.weights.h5 in a zip) and
// the .weights.h5 weights file. Model::save, Model::save_weights, Model::load_weights and
// kiln::load_model choose these by the path's extension (src/io/model_io.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/zip_archive.h"
#include "kiln/model.h"

namespace kiln::io::keras {

/// Whether `path` names a .keras archive.
bool is_keras_path(const std::string& path);
/// Whether `path` names a Keras weights file (".weights.h5").
bool is_keras_weights_path(const std::string& path);

/// load_model for a .keras archive: layers, weights, compile settings and optimizer state.
Model load_keras_model(const std::string& path);
/// The same from the archive's bytes (`source` names it in errors; the fuzz target's entry).
Model load_keras_archive(const std::vector<uint8_t>& archive, const std::string& source);
/// The same from the archive's entries (config.json and model.weights.h5 among them).
Model load_keras_entries(const std::vector<ZipEntry>& entries, const std::string& source);
/// Model::save to a .keras archive, atomically.
void save_keras_model(const Model& model, const std::string& path);

/// Model::save_weights to a .weights.h5 file (with the optimizer's variables when compiled), atomically.
void save_keras_weights(const Model& model, const std::string& path);
/// Model::load_weights from a .weights.h5 file: every layer's variables, checked before any is set.
void load_keras_weights(Model& model, const std::string& path);

}  // namespace kiln::io::keras
