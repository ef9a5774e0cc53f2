// Keras' index_directory over std::filesystem: os.walk's traversal (a symbolic link to a folder is
// listed but not entered unless follow_links), its roots sorted by path and each root's files by
// name, and numpy's legacy shuffle so that a seed splits the files as it does in Keras.
#include "utils/image_dataset_index.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <system_error>

#include "kiln/error.h"

namespace kiln::utils {

namespace fs = std::filesystem;

namespace {

constexpr const char* kOp = "image_dataset_from_directory";

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// Python's os.path.join for two parts.
std::string join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a.back() == '/' ? a : a + "/";
  return a.back() == '/' ? a + b : a + "/" + b;
}

bool is_listed_image(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* ext : {".bmp", ".gif", ".jpeg", ".jpg", ".png"}) {
    const std::string e = ext;
    if (lower.size() >= e.size() && lower.compare(lower.size() - e.size(), e.size(), e) == 0) return true;
  }
  return false;
}

std::string list_of(const std::vector<std::string>& names) {
  std::string s = "[";
  for (std::size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + quoted(names[i]);
  return s + "]";
}

// os.walk of `dir` (its path text `root`): appends (root, sorted image names) for every folder
// visited. `ancestors` holds the canonical folders being walked, so a link loop is an error rather
// than endless recursion.
void walk(const fs::path& dir, const std::string& root, bool follow_links, std::set<fs::path>& ancestors,
          std::map<std::string, std::vector<std::string>>& roots) {
  std::error_code ec;
  const fs::path canonical = fs::canonical(dir, ec);
  if (!ec && !ancestors.insert(canonical).second)
    throw Error(kOp, "folder " + quoted(root) + " is a symbolic link to a folder that contains it (a loop); " +
                         "expected a tree (remove the link or set follow_links=false)");
  std::vector<std::string>& files = roots[root];
  std::vector<std::string> subdirs;
  fs::directory_iterator it(dir, ec);
  if (ec) throw Error(kOp, "cannot list folder " + quoted(root) + ": " + ec.message() + "; expected a readable folder");
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec)
      throw Error(kOp, "cannot list folder " + quoted(root) + ": " + ec.message() + "; expected a readable folder");
    const std::string name = it->path().filename().string();
    std::error_code dir_ec;
    if (it->is_directory(dir_ec)) {
      std::error_code link_ec;
      if (follow_links || !it->is_symlink(link_ec)) subdirs.push_back(name);
    } else if (is_listed_image(name)) {
      files.push_back(name);
    }
  }
  std::sort(files.begin(), files.end());
  for (const std::string& name : subdirs) walk(dir / name, join(root, name), follow_links, ancestors, roots);
  if (!ec) ancestors.erase(canonical);
}

}  // namespace

FileIndex index_directory(const std::string& directory, LabelSource source, const std::vector<int32_t>& explicit_labels,
                          const std::vector<std::string>& class_names, bool follow_links) {
  std::error_code ec;
  if (!fs::exists(directory, ec))
    throw Error(kOp, "directory " + quoted(directory) + " does not exist; expected a folder of images");
  if (!fs::is_directory(directory, ec))
    throw Error(kOp, quoted(directory) + " is not a directory; expected a folder of images");

  // The class folders ("" stands for the directory itself when labels are not inferred).
  std::vector<std::string> subdirs;
  if (source == LabelSource::kInferred) {
    std::vector<std::string> found;
    for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      std::error_code dir_ec;
      if (it->is_directory(dir_ec) && !name.starts_with(".")) found.push_back(name);
    }
    if (ec) throw Error(kOp, "cannot list directory " + quoted(directory) + ": " + ec.message());
    std::sort(found.begin(), found.end());
    if (class_names.empty()) {
      subdirs = found;
    } else {
      for (const std::string& name : class_names) {
        if (!std::binary_search(found.begin(), found.end(), name))
          throw Error(kOp, "class_names has " + quoted(name) + ", which is not a sub-folder of " + quoted(directory) +
                               "; expected names among " + list_of(found));
        if (std::count(class_names.begin(), class_names.end(), name) > 1)
          throw Error(kOp, "class_names has " + quoted(name) + " twice; expected each class once");
      }
      subdirs = class_names;
    }
  } else {
    subdirs = {""};
  }

  FileIndex index;
  for (std::size_t k = 0; k < subdirs.size(); ++k) {
    const std::string top = join(directory, subdirs[k]);
    std::map<std::string, std::vector<std::string>> roots;  // sorted by root path, as Keras sorts os.walk
    std::set<fs::path> ancestors;
    walk(fs::path(top), top, follow_links, ancestors, roots);
    for (const auto& [root, files] : roots)
      for (const std::string& name : files) {
        index.paths.push_back(join(root, name));
        if (source == LabelSource::kInferred) index.labels.push_back(static_cast<int32_t>(k));
      }
  }

  if (source == LabelSource::kInferred) {
    index.class_names = subdirs;
  } else if (source == LabelSource::kExplicit) {
    if (explicit_labels.size() != index.paths.size())
      throw Error(kOp, "labels has " + std::to_string(explicit_labels.size()) + " entries but " + quoted(directory) +
                           " holds " + std::to_string(index.paths.size()) +
                           " image files; expected one label per file");
    std::set<int32_t> distinct;
    for (int32_t label : explicit_labels) {
      if (label < 0) throw Error(kOp, "labels has " + std::to_string(label) + "; expected class indices >= 0");
      distinct.insert(label);
    }
    index.labels = explicit_labels;
    for (int32_t label : distinct) index.class_names.push_back(std::to_string(label));
  }
  return index;
}

std::vector<int64_t> numpy_shuffle_order(int64_t n, uint32_t seed) {
  // std::mt19937's seeding is MT19937's init_genrand, which numpy's RandomState uses for an integer
  // seed; numpy's random_interval draws 32-bit words masked to the bit width of `max` until one is
  // <= max.
  std::mt19937 engine(seed);
  std::vector<int64_t> order(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  for (int64_t i = n - 1; i >= 1; --i) {
    auto max = static_cast<uint64_t>(i);
    uint64_t mask = max;
    for (int shift : {1, 2, 4, 8, 16, 32}) mask |= mask >> shift;
    uint64_t j = 0;
    do {
      j = static_cast<uint64_t>(engine()) & mask;
    } while (j > max);
    std::swap(order[i], order[j]);
  }
  return order;
}

}  // namespace kiln::utils
