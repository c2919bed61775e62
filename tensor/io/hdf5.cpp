#include "tensor/io/hdf5.h"

#include "tensor/error.h"

#if SCALPEL_HAVE_HDF5

#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "tensor/atomic_file.h"

namespace scalpel {

namespace {

constexpr std::string_view kSignature = "\x89HDF\r\n\x1a\n";
constexpr int64_t kMaxElements = int64_t{1} << 31;
// A compressed dataset may be smaller than its data, but not by more than this.
constexpr int64_t kMaxCompression = 1024;
// Attributes bigger than this are not strings anyone wrote on purpose.
constexpr size_t kMaxAttributeBytes = size_t{256} << 20;

// libhdf5 prints its error stack to stderr by default; scalpel reports one Error instead.
void silence_hdf5_errors() {
  static const bool silenced = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)silenced;
}

// The innermost message on libhdf5's error stack (where the failure started), then clears it.
std::string hdf5_error() {
  std::string message;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned, const H5E_error2_t* e, void* data) -> herr_t {
        auto& out = *static_cast<std::string*>(data);
        if (out.empty() && e->desc != nullptr) out = e->desc;
        return 0;
      },
      &message);
  H5Eclear2(H5E_DEFAULT);
  return message.empty() ? "libhdf5 error" : message;
}

// An HDF5 identifier closed when it goes out of scope.
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

}  // namespace

bool hdf5_supported() { return true; }

Hdf5File::Hdf5File(int64_t id, std::string source) : id_(id), source_(std::move(source)) {}

Hdf5File::Hdf5File(const std::string& path) : source_(path) {
  silence_hdf5_errors();
  // Through open_regular_file first: a FIFO or a directory gets the usual message, and the
  // signature check gives "not an HDF5 file" rather than libhdf5's wording.
  std::string why;
  const int fd = open_regular_file(path, why);
  SCALPEL_CHECK(fd >= 0, "cannot read {}: {}", path, why);
  std::string head(kSignature.size(), '\0');
  const ssize_t got = ::read(fd, head.data(), head.size());
  ::close(fd);
  SCALPEL_CHECK(got == static_cast<ssize_t>(head.size()) && head == kSignature,
                "{}: not an HDF5 file (no HDF5 signature)", path);
  id_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id_ < 0) fail("{}: unreadable HDF5 file ({})", path, hdf5_error());
}

Hdf5File Hdf5File::from_bytes(std::string_view bytes, const std::string& source) {
  silence_hdf5_errors();
  SCALPEL_CHECK(bytes.starts_with(kSignature), "{}: not an HDF5 file (no HDF5 signature)", source);
  const Handle access(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  // The "core" driver keeps the file in memory; no backing store, nothing written to disk.
  if (!access.valid() || H5Pset_fapl_core(access.get(), 1 << 20, false) < 0 ||
      H5Pset_file_image(access.get(), const_cast<char*>(bytes.data()), bytes.size()) < 0) {
    fail("{}: cannot set up an in-memory HDF5 file ({})", source, hdf5_error());
  }
  const hid_t id = H5Fopen(source.c_str(), H5F_ACC_RDONLY, access.get());
  if (id < 0) fail("{}: unreadable HDF5 file ({})", source, hdf5_error());
  return Hdf5File(id, source);
}

Hdf5File::Hdf5File(Hdf5File&& other) noexcept
    : id_(std::exchange(other.id_, -1)), source_(std::move(other.source_)) {}

Hdf5File& Hdf5File::operator=(Hdf5File&& other) noexcept {
  if (this != &other) {
    if (id_ >= 0) H5Fclose(id_);
    id_ = std::exchange(other.id_, -1);
    source_ = std::move(other.source_);
  }
  return *this;
}

Hdf5File::~Hdf5File() {
  if (id_ >= 0) H5Fclose(id_);
}

namespace {

// The type of object `path` (H5I_GROUP, H5I_DATASET, ...) or H5I_BADID when there is none.
H5I_type_t object_type(hid_t file, const std::string& path) {
  // H5Oopen fails on an absent path (or an absent group on the way) without side effects.
  const Handle object(H5Oopen(file, path.c_str(), H5P_DEFAULT), H5Oclose);
  if (!object.valid()) {
    H5Eclear2(H5E_DEFAULT);
    return H5I_BADID;
  }
  return H5Iget_type(object.get());
}

}  // namespace

bool Hdf5File::is_group(const std::string& path) const { return object_type(id_, path) == H5I_GROUP; }

bool Hdf5File::is_dataset(const std::string& path) const {
  return object_type(id_, path) == H5I_DATASET;
}

std::vector<std::string> Hdf5File::members(const std::string& path) const {
  SCALPEL_CHECK(is_group(path), "{}: no group {}", source_, path);
  const Handle group(H5Gopen2(id_, path.c_str(), H5P_DEFAULT), H5Gclose);
  H5G_info_t info;
  if (!group.valid() || H5Gget_info(group.get(), &info) < 0) {
    fail("{}: {}: cannot list the group ({})", source_, path, hdf5_error());
  }
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t size =
        H5Lget_name_by_idx(group.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (size < 0) fail("{}: {}: cannot list the group ({})", source_, path, hdf5_error());
    std::string name(static_cast<size_t>(size) + 1, '\0');
    H5Lget_name_by_idx(group.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(),
                       H5P_DEFAULT);
    name.resize(static_cast<size_t>(size));
    names.push_back(std::move(name));
  }
  return names;
}

bool Hdf5File::has_attribute(const std::string& path, const std::string& name) const {
  const htri_t exists = H5Aexists_by_name(id_, path.c_str(), name.c_str(), H5P_DEFAULT);
  if (exists < 0) {
    H5Eclear2(H5E_DEFAULT);
    return false;
  }
  return exists > 0;
}

std::vector<std::string> Hdf5File::string_list_attribute(const std::string& path,
                                                         const std::string& name) const {
  SCALPEL_CHECK(has_attribute(path, name), "{}: {} has no attribute '{}'", source_, path, name);
  const Handle attribute(H5Aopen_by_name(id_, path.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT),
                         H5Aclose);
  const auto bad = [&](const std::string& what) {
    fail("{}: {}: attribute '{}': {}", source_, path, name, what);
  };
  if (!attribute.valid()) bad(hdf5_error());
  const Handle type(H5Aget_type(attribute.get()), H5Tclose);
  const Handle space(H5Aget_space(attribute.get()), H5Sclose);
  if (!type.valid() || !space.valid()) bad(hdf5_error());
  const hssize_t count = H5Sget_simple_extent_npoints(space.get());
  if (count < 0) bad(hdf5_error());
  const size_t n = static_cast<size_t>(count);
  // Keras writes an empty list as numpy's np.asarray([]), a float64 array of zero elements.
  if (n == 0) return {};
  if (H5Tget_class(type.get()) != H5T_STRING) bad("not a string");

  std::vector<std::string> values;
  values.reserve(n);
  const H5T_cset_t cset = H5Tget_cset(type.get());
  if (H5Tis_variable_str(type.get()) > 0) {
    const Handle memory_type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(memory_type.get(), H5T_VARIABLE);
    H5Tset_cset(memory_type.get(), cset);
    std::vector<char*> strings(n, nullptr);
    if (H5Aread(attribute.get(), memory_type.get(), strings.data()) < 0) bad(hdf5_error());
    for (const char* s : strings) values.emplace_back(s != nullptr ? s : "");
    H5Dvlen_reclaim(memory_type.get(), space.get(), H5P_DEFAULT, strings.data());
  } else {
    const size_t size = H5Tget_size(type.get());
    if (size == 0 || n > kMaxAttributeBytes / size) bad(fmt::format("{} strings of {} bytes is too large", n, size));
    const Handle memory_type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(memory_type.get(), size);
    H5Tset_strpad(memory_type.get(), H5T_STR_NULLPAD);
    H5Tset_cset(memory_type.get(), cset);
    std::string buffer(n * size, '\0');
    if (H5Aread(attribute.get(), memory_type.get(), buffer.data()) < 0) bad(hdf5_error());
    for (size_t i = 0; i < n; ++i) {
      const char* s = buffer.data() + i * size;
      values.emplace_back(s, strnlen(s, size));
    }
  }
  return values;
}

std::string Hdf5File::string_attribute(const std::string& path, const std::string& name) const {
  std::vector<std::string> values = string_list_attribute(path, name);
  SCALPEL_CHECK(values.size() == 1, "{}: {}: attribute '{}' holds {} strings, expected one", source_,
                path, name, values.size());
  return std::move(values[0]);
}

std::vector<int64_t> Hdf5File::dataset_shape(const std::string& path) const {
  SCALPEL_CHECK(is_dataset(path), "{}: no dataset {}", source_, path);
  const Handle dataset(H5Dopen2(id_, path.c_str(), H5P_DEFAULT), H5Dclose);
  const Handle space(dataset.valid() ? H5Dget_space(dataset.get()) : -1, H5Sclose);
  const int rank = space.valid() ? H5Sget_simple_extent_ndims(space.get()) : -1;
  if (rank < 0) fail("{}: {}: unreadable dataset ({})", source_, path, hdf5_error());
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

Tensor Hdf5File::read_tensor(const std::string& path) const {
  const std::vector<int64_t> shape = dataset_shape(path);
  const Handle dataset(H5Dopen2(id_, path.c_str(), H5P_DEFAULT), H5Dclose);
  const Handle type(H5Dget_type(dataset.get()), H5Tclose);
  const Handle create(H5Dget_create_plist(dataset.get()), H5Pclose);
  if (!type.valid() || !create.valid()) fail("{}: {}: unreadable dataset ({})", source_, path, hdf5_error());
  SCALPEL_CHECK(H5Tget_class(type.get()) == H5T_FLOAT, "{}: {}: not a floating-point dataset", source_,
                path);

  int64_t count = 1;
  for (const int64_t d : shape) {
    SCALPEL_CHECK(d <= kMaxElements && count <= kMaxElements / std::max<int64_t>(d, 1),
                  "{}: {}: absurd dataset size {}", source_, path, fmt::join(shape, "x"));
    count *= d;
  }
  hsize_t file_size = 0;
  H5Fget_filesize(id_, &file_size);
  const int64_t stored_bytes = count * static_cast<int64_t>(H5Tget_size(type.get()));
  const int64_t limit = static_cast<int64_t>(file_size) * (H5Pget_nfilters(create.get()) > 0 ? kMaxCompression : 1);
  SCALPEL_CHECK(stored_bytes <= limit, "{}: {}: dataset of {} ({} bytes) is larger than the file ({} bytes)",
                source_, path, fmt::join(shape, "x"), stored_bytes, file_size);

  Tensor out = Tensor::empty(Shape(shape.begin(), shape.end()));
  if (count > 0 && H5Dread(dataset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                           out.data<float>()) < 0) {
    fail("{}: {}: cannot read the dataset ({})", source_, path, hdf5_error());
  }
  return out;
}

}  // namespace scalpel

#else  // built without libhdf5

namespace scalpel {

namespace {
[[noreturn]] void no_hdf5(const std::string& source) {
  fail("{}: this scalpel was built without HDF5 (install libhdf5-dev and rebuild) and cannot read .h5 files",
       source);
}
}  // namespace

bool hdf5_supported() { return false; }

Hdf5File::Hdf5File(int64_t id, std::string source) : id_(id), source_(std::move(source)) {}
Hdf5File::Hdf5File(const std::string& path) : source_(path) { no_hdf5(path); }
Hdf5File Hdf5File::from_bytes(std::string_view, const std::string& source) { no_hdf5(source); }
Hdf5File::Hdf5File(Hdf5File&& other) noexcept = default;
Hdf5File& Hdf5File::operator=(Hdf5File&& other) noexcept = default;
Hdf5File::~Hdf5File() = default;
bool Hdf5File::is_group(const std::string&) const { no_hdf5(source_); }
bool Hdf5File::is_dataset(const std::string&) const { no_hdf5(source_); }
std::vector<std::string> Hdf5File::members(const std::string&) const { no_hdf5(source_); }
bool Hdf5File::has_attribute(const std::string&, const std::string&) const { no_hdf5(source_); }
std::string Hdf5File::string_attribute(const std::string&, const std::string&) const { no_hdf5(source_); }
std::vector<std::string> Hdf5File::string_list_attribute(const std::string&, const std::string&) const {
  no_hdf5(source_);
}
std::vector<int64_t> Hdf5File::dataset_shape(const std::string&) const { no_hdf5(source_); }
Tensor Hdf5File::read_tensor(const std::string&) const { no_hdf5(source_); }

}  // namespace scalpel

#endif
