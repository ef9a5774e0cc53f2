// HDF5 file images in memory through libhdf5's C API (core driver, no backing store). libhdf5 is
// not thread-safe in Debian's serial build, so every call runs under one mutex; its automatic error
// printing is turned off and each status is checked here instead.
#include "io/keras_format/keras_h5.h"

#include "kiln/error.h"

#if KILN_WITH_HDF5
#include <hdf5.h>

#include <atomic>
#include <cstring>
#include <mutex>
#endif

namespace kiln::io::keras {

#if KILN_WITH_HDF5

namespace {

std::recursive_mutex& hdf5_mutex() {
  static std::recursive_mutex m;
  return m;
}

// Silences libhdf5's error printing once; kiln reports the failing call itself.
void quiet() {
  static const bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

// A unique name for a file image: the core driver tells open files apart by name.
std::string image_name() {
  static std::atomic<uint64_t> counter{0};
  return "kiln-keras-" + std::to_string(counter++) + ".h5";
}

// Closes an HDF5 identifier with the matching call at scope exit.
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

// Whether every component of `path` exists (H5Lexists on a path with a missing parent fails).
bool path_exists(hid_t file, const std::string& path) {
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t slash = path.find('/', start);
    const std::string prefix = path.substr(0, slash);
    if (!prefix.empty() && H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (!prefix.empty() && slash != std::string::npos) {
      // The prefix must be a group for the next component to be looked up in it.
      H5O_info_t info;
      if (H5Oget_info_by_name(file, prefix.c_str(), &info, H5P_DEFAULT) < 0 || info.type != H5O_TYPE_GROUP)
        return false;
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return true;
}

herr_t collect_name(hid_t, const char* name, const H5L_info_t*, void* data) {
  auto* names = static_cast<std::vector<std::string>*>(data);
  if (names->size() >= 1000000) return 1;  // stop: no Keras file has this many members
  names->emplace_back(name);
  return 0;
}

}  // namespace

H5Reader::H5Reader(const std::vector<uint8_t>& image, std::string op, std::string source)
    : op_(std::move(op)), source_(std::move(source)) {
  std::lock_guard lock(hdf5_mutex());
  quiet();
  if (image.size() < 8)
    throw Error(op_, source_ + " is " + std::to_string(image.size()) + " bytes; expected an HDF5 file");
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  if (!fapl.ok() || H5Pset_fapl_core(fapl.get(), 1 << 16, 0) < 0 ||
      H5Pset_file_image(fapl.get(), const_cast<uint8_t*>(image.data()), image.size()) < 0)
    throw Error(op_, source_ + ": libhdf5 could not set up an in-memory file (H5Pset_file_image failed)");
  file_ = H5Fopen(image_name().c_str(), H5F_ACC_RDONLY, fapl.get());
  if (file_ < 0)
    throw Error(op_, source_ + " is not a readable HDF5 file (H5Fopen failed); expected Keras' weights file");
}

H5Reader::~H5Reader() {
  std::lock_guard lock(hdf5_mutex());
  if (file_ >= 0) H5Fclose(file_);
}

std::string H5Reader::where(const std::string& path) const { return source_ + ": dataset '" + path + "'"; }

bool H5Reader::has(const std::string& path) const {
  std::lock_guard lock(hdf5_mutex());
  return path_exists(file_, path);
}

bool H5Reader::is_group(const std::string& path) const {
  std::lock_guard lock(hdf5_mutex());
  if (!path_exists(file_, path)) return false;
  H5O_info_t info;
  return H5Oget_info_by_name(file_, path.c_str(), &info, H5P_DEFAULT) >= 0 && info.type == H5O_TYPE_GROUP;
}

std::vector<std::string> H5Reader::children(const std::string& path) const {
  std::lock_guard lock(hdf5_mutex());
  std::vector<std::string> names;
  if (!path_exists(file_, path)) return names;
  Handle group(H5Gopen2(file_, path.c_str(), H5P_DEFAULT), H5Gclose);
  if (!group.ok()) throw Error(op_, source_ + ": '" + path + "' is not a group (H5Gopen2 failed); expected a group");
  hsize_t index = 0;
  if (H5Literate(group.get(), H5_INDEX_NAME, H5_ITER_INC, &index, collect_name, &names) < 0)
    throw Error(op_, source_ + ": the members of group '" + path + "' cannot be listed (H5Literate failed)");
  return names;
}

std::string H5Reader::string_attribute(const std::string& path, const std::string& name) const {
  std::lock_guard lock(hdf5_mutex());
  if (!path_exists(file_, path) || H5Aexists_by_name(file_, path.c_str(), name.c_str(), H5P_DEFAULT) <= 0) return "";
  Handle attr(H5Aopen_by_name(file_, path.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.ok()) return "";
  Handle type(H5Aget_type(attr.get()), H5Tclose);
  Handle space(H5Aget_space(attr.get()), H5Sclose);
  if (!type.ok() || !space.ok() || H5Tget_class(type.get()) != H5T_STRING ||
      H5Sget_simple_extent_type(space.get()) != H5S_SCALAR)
    return "";
  if (H5Tis_variable_str(type.get()) > 0) {
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    if (!mem.ok() || H5Tset_size(mem.get(), H5T_VARIABLE) < 0 || H5Tset_cset(mem.get(), H5Tget_cset(type.get())) < 0)
      return "";
    char* value = nullptr;
    if (H5Aread(attr.get(), mem.get(), &value) < 0 || value == nullptr) return "";
    std::string out(value, strnlen(value, 4096));
    H5free_memory(value);
    return out;
  }
  const std::size_t size = H5Tget_size(type.get());
  if (size == 0 || size > 4096) return "";
  std::string out(size, '\0');
  if (H5Aread(attr.get(), type.get(), out.data()) < 0) return "";
  return out.substr(0, out.find('\0'));
}

H5DatasetInfo H5Reader::info(const std::string& path) const {
  std::lock_guard lock(hdf5_mutex());
  if (!path_exists(file_, path))
    throw Error(op_, where(path) + " is missing; expected one for every variable of the model");
  Handle ds(H5Dopen2(file_, path.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) throw Error(op_, where(path) + " is not a dataset (H5Dopen2 failed); expected a variable's values");
  Handle space(H5Dget_space(ds.get()), H5Sclose);
  Handle type(H5Dget_type(ds.get()), H5Tclose);
  if (!space.ok() || !type.ok()) throw Error(op_, where(path) + ": H5Dget_space/H5Dget_type failed");
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0 || rank > 32) throw Error(op_, where(path) + " has an unreadable shape (H5Sget_simple_extent_ndims)");
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  if (rank > 0 && H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0)
    throw Error(op_, where(path) + " has an unreadable shape (H5Sget_simple_extent_dims)");
  H5DatasetInfo out;
  for (hsize_t d : dims) out.dims.push_back(d > static_cast<hsize_t>(INT64_MAX) ? -1 : static_cast<int64_t>(d));
  const H5T_class_t cls = H5Tget_class(type.get());
  out.floating = cls == H5T_FLOAT;
  out.integer = cls == H5T_INTEGER;
  out.type_bytes = H5Tget_size(type.get());
  return out;
}

std::vector<float> H5Reader::read_floats(const std::string& path, const Shape& expected) const {
  const H5DatasetInfo i = info(path);
  if (i.dims != expected.dims())
    throw Error(op_, where(path) + " has shape " + Shape(i.dims).str() + "; expected " + expected.str() +
                         " as the model's variable");
  if (!i.floating)
    throw Error(op_, where(path) + " holds " + (i.integer ? "integers" : "a non-numeric type") +
                         "; expected float32 (float16 and float64 are converted; bfloat16 is not read)");
  if (i.type_bytes != 2 && i.type_bytes != 4 && i.type_bytes != 8)
    throw Error(op_, where(path) + " holds " + std::to_string(i.type_bytes) +
                         "-byte floats; expected float16, float32 or float64");
  std::lock_guard lock(hdf5_mutex());
  Handle ds(H5Dopen2(file_, path.c_str(), H5P_DEFAULT), H5Dclose);
  std::vector<float> values(static_cast<std::size_t>(expected.numel()));
  if (!ds.ok() || H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0)
    throw Error(op_, where(path) + " cannot be read (H5Dread failed: truncated or corrupt file?)");
  return values;
}

int64_t H5Reader::read_integer_scalar(const std::string& path) const {
  const H5DatasetInfo i = info(path);
  if (!i.dims.empty() || !i.integer)
    throw Error(op_, where(path) + " is " + (i.integer ? "an integer array " + Shape(i.dims).str() : "not an integer") +
                         "; expected an integer scalar (the optimizer's iterations)");
  std::lock_guard lock(hdf5_mutex());
  Handle ds(H5Dopen2(file_, path.c_str(), H5P_DEFAULT), H5Dclose);
  int64_t value = 0;
  if (!ds.ok() || H5Dread(ds.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value) < 0)
    throw Error(op_, where(path) + " cannot be read (H5Dread failed: truncated or corrupt file?)");
  return value;
}

H5Writer::H5Writer(std::string op) : op_(std::move(op)) {
  std::lock_guard lock(hdf5_mutex());
  quiet();
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  if (!fapl.ok() || H5Pset_fapl_core(fapl.get(), 1 << 20, 0) < 0)
    throw Error(op_, "libhdf5 could not set up an in-memory file (H5Pset_fapl_core failed)");
  file_ = H5Fcreate(image_name().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
  if (file_ < 0) throw Error(op_, "libhdf5 could not create an in-memory file (H5Fcreate failed)");
}

H5Writer::~H5Writer() {
  std::lock_guard lock(hdf5_mutex());
  if (file_ >= 0) H5Fclose(file_);
}

void H5Writer::group(const std::string& path, const std::map<std::string, std::string>& attributes) {
  std::lock_guard lock(hdf5_mutex());
  Handle g(H5Gcreate2(file_, path.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  if (!g.ok()) throw Error(op_, "group '" + path + "' cannot be created (H5Gcreate2 failed)");
  for (const auto& [name, value] : attributes) {
    // Variable-length UTF-8 strings, as h5py writes a Python str attribute.
    Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    if (!type.ok() || !space.ok() || H5Tset_size(type.get(), H5T_VARIABLE) < 0 ||
        H5Tset_cset(type.get(), H5T_CSET_UTF8) < 0)
      throw Error(op_, "attribute '" + name + "' of '" + path + "': H5Tcopy/H5Screate failed");
    Handle attr(H5Acreate2(g.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    const char* text = value.c_str();
    if (!attr.ok() || H5Awrite(attr.get(), type.get(), static_cast<const void*>(&text)) < 0)
      throw Error(op_, "attribute '" + name + "' of '" + path + "' cannot be written (H5Acreate2/H5Awrite failed)");
  }
}

void H5Writer::floats(const std::string& path, const std::vector<int64_t>& dims, const float* values) {
  std::lock_guard lock(hdf5_mutex());
  std::vector<hsize_t> extents(dims.begin(), dims.end());
  Handle space(dims.empty() ? H5Screate(H5S_SCALAR)
                            : H5Screate_simple(static_cast<int>(extents.size()), extents.data(), nullptr),
               H5Sclose);
  if (!space.ok()) throw Error(op_, "dataset '" + path + "': H5Screate failed");
  Handle ds(H5Dcreate2(file_, path.c_str(), H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
            H5Dclose);
  if (!ds.ok() || H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0)
    throw Error(op_, "dataset '" + path + "' cannot be written (H5Dcreate2/H5Dwrite failed)");
}

void H5Writer::integer_scalar(const std::string& path, int64_t value) {
  std::lock_guard lock(hdf5_mutex());
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle ds(H5Dcreate2(file_, path.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
            H5Dclose);
  if (!space.ok() || !ds.ok() || H5Dwrite(ds.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value) < 0)
    throw Error(op_, "dataset '" + path + "' cannot be written (H5Dcreate2/H5Dwrite failed)");
}

std::vector<uint8_t> H5Writer::finish() {
  std::lock_guard lock(hdf5_mutex());
  if (H5Fflush(file_, H5F_SCOPE_GLOBAL) < 0) throw Error(op_, "the HDF5 file cannot be flushed (H5Fflush failed)");
  const ssize_t size = H5Fget_file_image(file_, nullptr, 0);
  if (size <= 0) throw Error(op_, "the HDF5 file image cannot be taken (H5Fget_file_image failed)");
  std::vector<uint8_t> bytes(static_cast<std::size_t>(size));
  if (H5Fget_file_image(file_, bytes.data(), bytes.size()) != size)
    throw Error(op_, "the HDF5 file image cannot be copied (H5Fget_file_image failed)");
  H5Fclose(file_);
  file_ = -1;
  return bytes;
}

#else  // !KILN_WITH_HDF5

namespace {
[[noreturn]] void no_hdf5(const std::string& op) {
  throw Error(op, "kiln was built without libhdf5; rebuild with libhdf5-dev installed");
}
}  // namespace

H5Reader::H5Reader(const std::vector<uint8_t>&, std::string op, std::string source)
    : op_(std::move(op)), source_(std::move(source)) {
  no_hdf5(op_);
}
H5Reader::~H5Reader() = default;
bool H5Reader::has(const std::string&) const { no_hdf5(op_); }
bool H5Reader::is_group(const std::string&) const { no_hdf5(op_); }
std::vector<std::string> H5Reader::children(const std::string&) const { no_hdf5(op_); }
std::string H5Reader::string_attribute(const std::string&, const std::string&) const { no_hdf5(op_); }
H5DatasetInfo H5Reader::info(const std::string&) const { no_hdf5(op_); }
std::vector<float> H5Reader::read_floats(const std::string&, const Shape&) const { no_hdf5(op_); }
int64_t H5Reader::read_integer_scalar(const std::string&) const { no_hdf5(op_); }
std::string H5Reader::where(const std::string& path) const { return source_ + ": dataset '" + path + "'"; }
H5Writer::H5Writer(std::string op) : op_(std::move(op)) { no_hdf5(op_); }
H5Writer::~H5Writer() = default;
void H5Writer::group(const std::string&, const std::map<std::string, std::string>&) { no_hdf5(op_); }
void H5Writer::floats(const std::string&, const std::vector<int64_t>&, const float*) { no_hdf5(op_); }
void H5Writer::integer_scalar(const std::string&, int64_t) { no_hdf5(op_); }
std::vector<uint8_t> H5Writer::finish() { no_hdf5(op_); }

#endif

}  // namespace kiln::io::keras
