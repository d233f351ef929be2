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

}  // namespace omni::engine
