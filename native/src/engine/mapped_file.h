// A read-only private memory map of a whole file (checkpoint shards). Pages are read in by the
// kernel on first touch and shared with the page cache; nothing is copied.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace omni::engine {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws EngineError (checkpoint_missing / checkpoint_io)
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

// Anonymous, 2 MiB-aligned memory for weights copied out of a mapping (ThinkerModel's
// weights = copy): the kernel is asked for transparent huge pages (madvise MADV_HUGEPAGE; ignored
// where unsupported), so streaming the weights takes one TLB entry per 2 MiB instead of per 4 KiB
// and the hardware prefetcher does not stop at every 4 KiB page boundary. Pages are faulted in by
// the first write (the copy).
class AnonymousBuffer {
 public:
  explicit AnonymousBuffer(uint64_t bytes);  // throws EngineError checkpoint_io when mmap fails
  ~AnonymousBuffer();
  AnonymousBuffer(const AnonymousBuffer&) = delete;
  AnonymousBuffer& operator=(const AnonymousBuffer&) = delete;

  uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  // Bytes of this buffer backed by huge pages now (/proc/self/smaps AnonHugePages of its mapping;
  // 0 where the file is unreadable).
  uint64_t HugePageBytes() const;

 private:
  uint8_t* map_ = nullptr;  // the whole mapping (size rounded up + alignment slack)
  uint64_t map_size_ = 0;
  uint8_t* data_ = nullptr;  // 2 MiB-aligned start
  uint64_t size_ = 0;
};

// Bytes the kernel reports as available for new allocations (/proc/meminfo MemAvailable), 0 if unknown.
uint64_t AvailableMemoryBytes();

}  // namespace omni::engine
