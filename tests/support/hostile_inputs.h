#pragma once
// Inputs an attacker or a careless user hands to scalpel, for the tests that it refuses them:
//
//   png_declaring(20000, 20000)   a ~70-byte PNG whose header declares that size (a
//                                 decompression bomb's header, without the bomb's body)
//   FifoTrap trap(path, 5s);      a named pipe at `path`; a reader that opened it anyway would
//                                 wait for a writer forever, so after the grace time the trap
//                                 opens the write end and closes it: the reader sees end of
//                                 file and the test fails instead of hanging
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>

namespace scalpel::test {

inline uint32_t png_crc32(const std::string& bytes) {
  uint32_t crc = 0xffffffffu;
  for (unsigned char byte : bytes) {
    crc ^= byte;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return crc ^ 0xffffffffu;
}

// A PNG chunk: length, type, data, CRC of type + data (all big-endian).
inline std::string png_chunk(const std::string& type, const std::string& data) {
  auto be32 = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                       static_cast<char>(v)};
  };
  return be32(static_cast<uint32_t>(data.size())) + type + data + be32(png_crc32(type + data));
}

// An 8-bit grayscale PNG declaring width x height, with one IDAT of a few zero bytes (far too
// few for that size: only a decoder that trusts the header before checking it allocates it
// all). Grayscale, because stb itself refuses more than 2^30 bytes of decoded pixels.
inline std::string png_declaring(uint32_t width, uint32_t height) {
  auto be32 = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                       static_cast<char>(v)};
  };
  const std::string ihdr = be32(width) + be32(height) + std::string{8, 0, 0, 0, 0};  // 8 bit, gray
  const std::string zlib_of_zeros("\x78\x9c\x63\x60\x00\x00\x00\x02\x00\x01", 10);  // deflate of 2 zero bytes
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) + png_chunk("IDAT", zlib_of_zeros) +
         png_chunk("IEND", "");
}

class FifoTrap {
 public:
  FifoTrap(std::string path, std::chrono::milliseconds grace) : path_(std::move(path)) {
    if (::mkfifo(path_.c_str(), 0600) != 0) throw std::runtime_error("FifoTrap: cannot create " + path_);
    releaser_ = std::thread([this, grace] {
      const auto release_at = std::chrono::steady_clock::now() + grace;
      while (!done_) {
        if (std::chrono::steady_clock::now() >= release_at) {
          // Fails (ENXIO) while no reader has it open; frees one blocked in open() otherwise.
          const int fd = ::open(path_.c_str(), O_WRONLY | O_NONBLOCK);
          if (fd >= 0) {
            released_ = true;
            ::close(fd);
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
  }
  ~FifoTrap() {
    done_ = true;
    releaser_.join();
    ::unlink(path_.c_str());
  }
  FifoTrap(const FifoTrap&) = delete;
  FifoTrap& operator=(const FifoTrap&) = delete;

  const std::string& path() const { return path_; }
  // True when a reader had opened the FIFO and had to be freed.
  bool released_a_reader() const { return released_; }

 private:
  std::string path_;
  std::atomic<bool> done_{false}, released_{false};
  std::thread releaser_;
};

}  // namespace scalpel::test
