#include "jpeg_decode.h"

#include <algorithm>
#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE

#include <jpeglib.h>

namespace omni::image {
namespace {

struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void Fail(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings (level -1) abort too: libjpeg would carry on over corrupt or missing data, libvips
// decides per warning, and the general path reproduces that decision.
void Message(j_common_ptr cinfo, int level) {
  if (level < 0) Fail(cinfo);
}

}  // namespace

// Everything that libjpeg's longjmp may skip lives here, outside the frames that call setjmp.
struct JpegRows::State {
  jpeg_decompress_struct cinfo{};
  ErrorManager err{};
  bool created = false;
  ~State() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
};

JpegRows::JpegRows() : state_(std::make_unique<State>()) {
  state_->cinfo.err = jpeg_std_error(&state_->err.pub);
  state_->err.pub.error_exit = Fail;
  state_->err.pub.emit_message = Message;
}

JpegRows::~JpegRows() = default;

bool JpegRows::Start(const uint8_t* data, size_t size, int64_t max_pixels, std::vector<uint8_t>& rgb, JpegRgb& out) {
  State& d = *state_;
  const char* refuse = nullptr;
  if (setjmp(d.err.jump)) {
    why_ = d.err.message;
    return false;
  }
  jpeg_create_decompress(&d.cinfo);
  d.created = true;
  jpeg_mem_src(&d.cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&d.cinfo, TRUE);
  const J_COLOR_SPACE space = d.cinfo.jpeg_color_space;
  if (!(d.cinfo.num_components == 3 && (space == JCS_YCbCr || space == JCS_RGB)) &&
      !(d.cinfo.num_components == 1 && space == JCS_GRAYSCALE)) {
    refuse = "not a YCbCr, RGB or greyscale JPEG";
  } else if (static_cast<int64_t>(d.cinfo.image_width) * d.cinfo.image_height > max_pixels) {
    refuse = "over the pixel limit";
  }
  if (refuse) {
    why_ = refuse;
    return false;
  }
  d.cinfo.out_color_space = JCS_RGB;
  d.cinfo.dct_method = JDCT_ISLOW;
  d.cinfo.do_fancy_upsampling = TRUE;
  jpeg_start_decompress(&d.cinfo);
  out.width = static_cast<int>(d.cinfo.output_width);
  out.height = static_cast<int>(d.cinfo.output_height);
  stride_ = static_cast<size_t>(out.width) * 3;
  rgb.resize(stride_ * out.height);  // std::bad_alloc reaches the caller
  rgb_ = rgb.data();
  return true;
}

void JpegRows::Ensure(int rows) {
  State& d = *state_;
  if (setjmp(d.err.jump)) {
    why_ = d.err.message;
    throw JpegDeclined{};
  }
  const JDIMENSION want = std::min<JDIMENSION>(static_cast<JDIMENSION>(rows), d.cinfo.output_height);
  while (d.cinfo.output_scanline < want) {
    JSAMPROW out[16];
    const JDIMENSION first = d.cinfo.output_scanline;
    const JDIMENSION n = std::min<JDIMENSION>(16, d.cinfo.output_height - first);
    for (JDIMENSION r = 0; r < n; ++r) out[r] = rgb_ + (first + r) * stride_;
    jpeg_read_scanlines(&d.cinfo, out, n);
  }
}

bool JpegRows::Finish() {
  try {
    Ensure(static_cast<int>(state_->cinfo.output_height));
  } catch (const JpegDeclined&) {
    return false;
  }
  State& d = *state_;
  if (setjmp(d.err.jump)) {
    why_ = d.err.message;
    return false;
  }
  jpeg_finish_decompress(&d.cinfo);
  return true;
}

bool DecodeJpegRgb(const uint8_t* data, size_t size, int64_t max_pixels, std::vector<uint8_t>& rgb, JpegRgb& out,
                   std::string& why) {
  JpegRows rows;
  const bool ok = rows.Start(data, size, max_pixels, rgb, out) && rows.Finish();
  if (!ok) why = rows.why();
  return ok;
}

void OrientRgb(const uint8_t* src, int width, int height, int orientation, uint8_t* dst) {
  const bool swap = orientation >= 5 && orientation <= 8;
  const int out_w = swap ? height : width, out_h = swap ? width : height;
  for (int y = 0; y < out_h; ++y) {
    uint8_t* row = dst + static_cast<size_t>(y) * out_w * 3;
    for (int x = 0; x < out_w; ++x) {
      int sx, sy;  // the source pixel shown at (x, y) once upright
      switch (orientation) {
        case 2: sx = width - 1 - x; sy = y; break;                 // mirrored
        case 3: sx = width - 1 - x; sy = height - 1 - y; break;    // rotated 180
        case 4: sx = x; sy = height - 1 - y; break;                // flipped
        case 5: sx = y; sy = x; break;                             // transposed
        case 6: sx = y; sy = height - 1 - x; break;                // needs 90 clockwise
        case 7: sx = width - 1 - y; sy = height - 1 - x; break;    // transversed
        case 8: sx = width - 1 - y; sy = x; break;                 // needs 90 anticlockwise
        default: sx = x; sy = y; break;
      }
      const uint8_t* p = src + (static_cast<size_t>(sy) * width + sx) * 3;
      row[3 * x] = p[0];
      row[3 * x + 1] = p[1];
      row[3 * x + 2] = p[2];
    }
  }
}

}  // namespace omni::image
