#include "tensor/io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tensor/atomic_file.h"
#include "tensor/error.h"

namespace scalpel {

MappedFile::MappedFile(const std::string& path) {
  std::string why;
  const int fd = open_regular_file(path, why);
  SCALPEL_CHECK(fd >= 0, "cannot read {}: {}", path, why);
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int err = errno;
    ::close(fd);
    fail("cannot read {}: {}", path, std::strerror(err));
  }
  size_ = static_cast<size_t>(info.st_size);
  if (size_ > 0) {
    data_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (data_ == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      fail("cannot map {}: {}", path, std::strerror(err));
    }
  }
  ::close(fd);  // the mapping stays valid
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

}  // namespace scalpel
