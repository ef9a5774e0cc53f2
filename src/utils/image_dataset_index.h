// Listing the image files of a folder tree as Keras' dataset_utils.index_directory does: which
// files, in which order, with which labels, and numpy's seeded shuffle of that list.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::utils {

/// The files found and their labels, in Keras' order (class by class, then by folder path and
/// file name).
struct FileIndex {
  std::vector<std::string> paths;        ///< directory joined with each file's relative path
  std::vector<int32_t> labels;           ///< one per path; empty without labels
  std::vector<std::string> class_names;  ///< sub-folder names, or the sorted explicit labels as text
};

/// How labels are given: inferred from sub-folders, explicit (one per file), or none.
enum class LabelSource { kInferred, kExplicit, kNone };

/// Indexes `directory`: with kInferred, the files under each class sub-folder (all sub-folders not
/// starting with '.', sorted, or `class_names` in its order); otherwise every file of the tree,
/// labelled by `explicit_labels` (kExplicit) or not at all. Files are those whose lower-case name
/// ends in .bmp, .gif, .jpeg, .jpg or .png (Keras' list). Throws kiln::Error naming the directory,
/// a class name without a folder, or a label count that differs from the file count.
FileIndex index_directory(const std::string& directory, LabelSource source, const std::vector<int32_t>& explicit_labels,
                          const std::vector<std::string>& class_names, bool follow_links);

/// The order numpy's RandomState(seed).shuffle gives a list of `n` items: element k of the result is
/// the index of the item that lands at position k (MT19937 seeded as numpy's legacy seeding, Fisher-
/// Yates from the end with numpy's masked rejection sampling).
std::vector<int64_t> numpy_shuffle_order(int64_t n, uint32_t seed);

}  // namespace kiln::utils
