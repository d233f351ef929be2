// JPEG -> 8-bit RGB with libjpeg-turbo, for the image path's fast lane: a baseline or progressive
// YCbCr / greyscale JPEG is decoded on the same libuv thread that resizes and patchifies it, into
// a buffer that thread reuses, so a 1080p photo costs no JavaScript allocation and no second hop.
//
// Same decoder settings as libvips' JPEG loader (sharp) and Pillow (the reference): the accurate
// integer IDCT and "fancy" (triangular) chroma upsampling, libjpeg's defaults. Any error *or
// warning* (corrupt data, a truncated file) makes the decode give up: the caller then takes the
// general path (sharp), whose judgement on damaged files the gateway keeps.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <memory>
#include <vector>

#include "image_resize.h"

namespace omni::image {

struct JpegRgb {
  int width = 0;
  int height = 0;
};

// Thrown by JpegRows::Ensure when the decoder gives up mid-image.
struct JpegDeclined {};

// A JPEG decoded into `rgb` (sized width * height * 3 by Start) a few rows at a time, as a
// RowSource for the resize: rows are decoded just before the resize reads them, while they are
// still in cache.
class JpegRows : public RowSource {
 public:
  JpegRows();
  ~JpegRows() override;
  JpegRows(const JpegRows&) = delete;
  JpegRows& operator=(const JpegRows&) = delete;

  // Reads the header and starts decoding. False, with the reason in why(), on any libjpeg error or
  // warning, on a frame that is not 3-component YCbCr/RGB or greyscale, or over `max_pixels`.
  bool Start(const uint8_t* data, size_t size, int64_t max_pixels, std::vector<uint8_t>& rgb, JpegRgb& out);
  // RowSource: decodes up to row `rows`; throws JpegDeclined on an error or warning.
  void Ensure(int rows) override;
  // Decodes what is left and reads the end of the file; false on an error or warning.
  bool Finish();
  const std::string& why() const { return why_; }

 private:
  struct State;
  std::unique_ptr<State> state_;
  uint8_t* rgb_ = nullptr;
  size_t stride_ = 0;
  std::string why_;
};

// The whole image at once: JpegRows' Start, then Finish.
bool DecodeJpegRgb(const uint8_t* data, size_t size, int64_t max_pixels, std::vector<uint8_t>& rgb, JpegRgb& out,
                   std::string& why);

// Applies an EXIF orientation (1-8, as TIFF defines it) to width x height RGB; `dst` receives the
// upright image (height x width for 5-8).
void OrientRgb(const uint8_t* src, int width, int height, int orientation, uint8_t* dst);

}  // namespace omni::image
