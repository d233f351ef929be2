// Recycles large float buffers handed to JavaScript as external ArrayBuffers. A fresh multi-MB
// allocation is mmap'd and page-faulted in on every call (on virtual machines that alone costs
// more than computing 60 s of log-mel); buffers come back here when V8 collects their ArrayBuffer
// and are reused by the next request of a similar size. The cache is bounded.
#pragma once
#include <cstddef>
#include <memory>

namespace omni {

struct PooledFloats {
  float* data;
  size_t capacity;  // floats
};

// A buffer of at least `count` floats (contents undefined).
PooledFloats AcquireFloats(size_t count);
// Give a buffer back (from any thread); freed outright when the cache is full.
void ReleaseFloats(PooledFloats buffer);

}  // namespace omni
