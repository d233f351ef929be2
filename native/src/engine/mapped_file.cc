#include "mapped_file.h"

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "thinker.h"

#if defined(_WIN32)
#error "the engine maps checkpoints with POSIX mmap; Windows is not supported yet"
#endif
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace omni::engine {

MappedFile::MappedFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    throw EngineError(err == ENOENT ? "checkpoint_missing" : "checkpoint_io",
                      "cannot open checkpoint file " + path + ": " + std::strerror(err));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw EngineError("checkpoint_io", "cannot stat checkpoint file " + path + ": " + std::strerror(err));
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw EngineError("checkpoint_io", "cannot map checkpoint file " + path + ": " + std::strerror(err));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

namespace {
constexpr uint64_t kHugePage = 2ull << 20;
}

AnonymousBuffer::AnonymousBuffer(uint64_t bytes) : size_(bytes) {
  if (bytes == 0) return;
  const uint64_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  map_size_ = rounded + kHugePage;  // slack to align the start
  void* p = ::mmap(nullptr, map_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    throw EngineError("checkpoint_io", "cannot allocate " + std::to_string(bytes) + " bytes for the weights: " + std::strerror(err));
  }
  map_ = static_cast<uint8_t*>(p);
  const uintptr_t base = reinterpret_cast<uintptr_t>(map_);
  const uintptr_t aligned = (base + kHugePage - 1) / kHugePage * kHugePage;
  // Give back the slack on both sides, so that the mapping is exactly the aligned range.
  if (aligned > base) ::munmap(map_, aligned - base);
  const uintptr_t end = aligned + rounded, map_end = base + map_size_;
  if (map_end > end) ::munmap(reinterpret_cast<void*>(end), map_end - end);
  map_ = data_ = reinterpret_cast<uint8_t*>(aligned);
  map_size_ = rounded;
#if defined(MADV_HUGEPAGE)
  ::madvise(map_, map_size_, MADV_HUGEPAGE);  // best effort: fails harmlessly without THP
#endif
}

AnonymousBuffer::~AnonymousBuffer() {
  if (map_) ::munmap(map_, map_size_);
}

uint64_t AnonymousBuffer::HugePageBytes() const {
  if (!map_) return 0;
  FILE* f = std::fopen("/proc/self/smaps", "r");
  if (!f) return 0;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(map_), hi = lo + map_size_;
  uint64_t total = 0;
  bool inside = false;
  char line[512];
  while (std::fgets(line, sizeof line, f)) {
    uintptr_t a, b;
    if (std::sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &a, &b) == 2) {
      inside = a >= lo && b <= hi;  // the kernel may have split the mapping into several areas
      continue;
    }
    unsigned long long kb;
    if (inside && std::sscanf(line, "AnonHugePages: %llu kB", &kb) == 1) total += kb * 1024ull;
  }
  std::fclose(f);
  return total;
}

uint64_t AvailableMemoryBytes() {
  FILE* f = std::fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char line[256];
  unsigned long long kb = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
  std::fclose(f);
  return kb * 1024ull;
}

}  // namespace omni::engine
