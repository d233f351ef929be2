// Recycles large float buffers handed to JavaScript as external ArrayBuffers (log-mel features,
// image patches). A fresh multi-MB allocation is mmap'd and page-faulted in on every call (on
// virtual machines that alone costs more than computing 60 s of log-mel or resizing a 1080p
// image); buffers come back here when V8 collects their ArrayBuffer and are reused by the next
// request of a similar size. The cache is bounded (128 MB, 64 buffers; buffers over 64 MB are not
// kept): enough for a 1080p image or a few video steps in flight, small enough that a streamed
// 5 minute video stays within its memory budget.
#pragma once
#include <napi.h>

#include <cstddef>

namespace omni {

struct PooledFloats {
  float* data;
  size_t capacity;  // floats
};

// A buffer of at least `count` floats (contents undefined).
PooledFloats AcquireFloats(size_t count);
// Give a buffer back (from any thread); freed outright when the cache is full.
void ReleaseFloats(PooledFloats buffer);

// Hands `buffer` (its first `count` floats) to JavaScript without copying, as an ArrayBuffer that
// returns it to the pool when collected (V8 counts its size towards the next collection).
Napi::ArrayBuffer ToArrayBuffer(Napi::Env env, PooledFloats buffer, size_t count);

// The owner of an ArrayBuffer made by ToArrayBuffer is done with it: detaches it (it and every view
// of it become empty), which takes its bytes off V8's external-memory count at once and hands the
// buffer back to the pool as soon as nothing else holds it (the same path a collection takes).
// False, and nothing changes, for any other ArrayBuffer or one already recycled.
bool Recycle(Napi::ArrayBuffer buffer);

// Process-wide: makes glibc keep and reuse freed multi-MB blocks instead of returning them to the
// kernel (see buffer_pool.cc). Called once when the image bindings load; a no-op elsewhere.
void TuneAllocator();

}  // namespace omni
