// The launch lines below are meant to be copied whole.
// clang-format off
/**
 * SECTION:element-qbasicvsr
 *
 * Upscales RGB video x4 in width and height with a BasicVSR network, quantized as QBasicVSR
 * does (int8 integer convolutions, per-layer and per-chunk bit-widths). Frames are processed in
 * chunks of `chunk-size` frames. The forward propagation is causal and runs on from chunk to
 * chunk, so its half of every frame is what one pass over the whole stream gives; the backward
 * propagation of each chunk also sees the `overlap` frames after it. The element holds back
 * chunk-size + overlap frames (reported as latency); every frame comes out with its own
 * timestamps and flags, end-of-stream drains the rest, and a DISCONT buffer, new caps, a segment
 * or a gap end the stream (the forward propagation starts again).
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=in.mp4 ! decodebin ! videoconvert ! qbasicvsr ! videoconvert ! x264enc ! mp4mux ! filesink location=out.mp4
 * gst-launch-1.0 videotestsrc num-buffers=30 ! video/x-raw,width=160,height=90 ! qbasicvsr precision=int8 chunk-size=8 ! videoconvert ! autovideosink
 * gst-launch-1.0 playbin uri=file:///path/in.mp4 video-filter="videoconvert ! qbasicvsr ! videoconvert"
 * ]|
 */
// clang-format on
#include "gstqbasicvsr.h"

#include <gst/video/video.h>

#include <algorithm>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "qbasicvsr/chunker.h"
#include "qbasicvsr/error.h"
#include "qbasicvsr/model_paths.h"
#include "qbasicvsr_config.h"

GST_DEBUG_CATEGORY_STATIC(gst_qbasicvsr_debug);
#define GST_CAT_DEFAULT gst_qbasicvsr_debug

namespace {

constexpr int kScale = 4;
constexpr int kDefaultChunk = qbasicvsr::ChunkerOptions{}.chunk_size;
constexpr int kDefaultOverlap = qbasicvsr::ChunkerOptions{}.overlap;
// The library's defaults (UpscalerOptions): bits 0 is the model's, tile size 0 automatic.
const qbasicvsr::UpscalerOptions kDefaults;
const int kDefaultBits = kDefaults.bits;
const int kDefaultThreads = kDefaults.threads;
const int kDefaultTileSize = kDefaults.tile_rows;
const int kDefaultTileOverlap = kDefaults.tile_overlap;
const int kDefaultMaxMemory = kDefaults.max_memory_mb;
const char* const kDefaultDevice = kDefaults.device.c_str();

enum Prop {
  PROP_0,
  PROP_MODEL,
  PROP_PRECISION,
  PROP_CHUNK_SIZE,
  PROP_OVERLAP,
  PROP_ADAPTIVE,
  PROP_BITS,
  PROP_SCOPE,
  PROP_DEVICE,
  PROP_THREADS,
  PROP_TILE_SIZE,
  PROP_TILE_OVERLAP,
  PROP_MAX_MEMORY,
  PROP_FLOAT_LAYERS,
};

enum PrecisionChoice { PRECISION_AUTO, PRECISION_FP32, PRECISION_FAKE, PRECISION_INT8 };
enum ScopeChoice { SCOPE_AUTO, SCOPE_PARTIAL, SCOPE_FULL };

GType precision_get_type() {
  static GType type = 0;
  static const GEnumValue values[] = {
      {PRECISION_AUTO, "int8 for a quantized model (fake on device cuda), else fp32", "auto"},
      {PRECISION_FP32, "Full precision", "fp32"},
      {PRECISION_FAKE, "Simulated quantization in float", "fake"},
      {PRECISION_INT8, "Integer convolutions (oneDNN)", "int8"},
      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type))
    g_once_init_leave(&type, g_enum_register_static("GstQbasicvsrPrecision", values));
  return type;
}

GType scope_get_type() {
  static GType type = 0;
  static const GEnumValue values[] = {{SCOPE_AUTO, "The model's (partial without one)", "auto"},
                                      {SCOPE_PARTIAL, "Propagation and upsampling convs", "partial"},
                                      {SCOPE_FULL, "Every conv, SPyNet and conv_last included", "full"},
                                      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type)) g_once_init_leave(&type, g_enum_register_static("GstQbasicvsrScope", values));
  return type;
}

// The library's Compute values as a GStreamer enum.
GType float_layers_get_type() {
  static GType type = 0;
  static const GEnumValue values[] = {
      {static_cast<int>(qbasicvsr::Compute::Auto),
       "bf16 where bf16 convolutions are the faster (AMX, or AVX-512 BF16 on AMD), else fp32", "auto"},
      {static_cast<int>(qbasicvsr::Compute::Fp32), "fp32", "fp32"},
      {static_cast<int>(qbasicvsr::Compute::Bf16), "bfloat16 inputs and weights, f32 accumulation", "bf16"},
      {static_cast<int>(qbasicvsr::Compute::Fp16), "float16 (device cuda only)", "fp16"},
      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type))
    g_once_init_leave(&type, g_enum_register_static("GstQbasicvsrFloatLayers", values));
  return type;
}

// Properties, guarded by the object lock; they take effect at the next start.
struct Settings {
  std::string model;
  PrecisionChoice precision = PRECISION_AUTO;
  int chunk_size = kDefaultChunk;
  int overlap = kDefaultOverlap;
  bool adaptive = true;
  int bits = kDefaultBits;
  ScopeChoice scope = SCOPE_AUTO;
  std::string device = kDefaultDevice;
  int threads = kDefaultThreads;
  int tile_size = kDefaultTileSize;
  int tile_overlap = kDefaultTileOverlap;
  int max_memory = kDefaultMaxMemory;
  qbasicvsr::Compute float_layers = kDefaults.float_layers;
  // A model the program loaded already, and the resolved path it came from.
  std::shared_ptr<const qbasicvsr::Model> loaded;
  std::string loaded_path;
};

// Streaming state: created in start(), dropped in stop(); used from the streaming thread.
struct State {
  std::unique_ptr<qbasicvsr::Upscaler> upscaler;
  std::unique_ptr<qbasicvsr::Chunker> chunker;
  GstVideoInfo in_info{};
  GstVideoInfo out_info{};
  bool have_caps = false;
  uint64_t next_tag = 0;
  std::map<uint64_t, GstBuffer*> inputs;  // held input buffers, by tag: timestamps, flags, alpha
  // What downstream answered to the outputs pushed since the chunker was last called; after a
  // failure the rest of the chunk's frames are dropped.
  GstFlowReturn flow = GST_FLOW_OK;

  ~State() {
    for (auto& kv : inputs) gst_buffer_unref(kv.second);
  }
  void drop() {
    for (auto& kv : inputs) gst_buffer_unref(kv.second);
    inputs.clear();
    if (chunker) chunker->flush();
  }
};

}  // namespace

struct _GstQbasicvsr {
  GstBaseTransform parent;
  Settings* settings;  // GObject structs run no constructors: C++ state lives behind pointers
  State* state;
};

#define gst_qbasicvsr_parent_class parent_class
G_DEFINE_TYPE(GstQbasicvsr, gst_qbasicvsr, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE(qbasicvsr, "qbasicvsr", GST_RANK_NONE, GST_TYPE_QBASICVSR);

namespace {

GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS(
        "video/x-raw, format = (string) { RGB, BGR, RGBx, BGRx, xRGB, xBGR, RGBA, BGRA }, "
        "width = (int) [ 1, 16384 ], height = (int) [ 1, 16384 ], framerate = (fraction) [ 0, MAX ]"));
GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS(
        "video/x-raw, format = (string) { RGB, BGR, RGBx, BGRx, xRGB, xBGR, RGBA, BGRA }, "
        "width = (int) [ 4, 65536 ], height = (int) [ 4, 65536 ], framerate = (fraction) [ 0, MAX ]"));

GstQbasicvsr* self_of(gpointer p) { return GST_QBASICVSR(p); }

// Maps a width or height value across the element: x4 downstream, /4 upstream (only exact
// multiples). Returns false when nothing maps.
bool scale_value(const GValue* in, GValue* out, bool up) {
  auto map_int = [&](int v, int* r) {
    if (up) {
      if (v > G_MAXINT / kScale) return false;
      *r = v * kScale;
      return true;
    }
    if (v % kScale != 0) return false;
    *r = v / kScale;
    return true;
  };
  if (G_VALUE_HOLDS_INT(in)) {
    int r = 0;
    if (!map_int(g_value_get_int(in), &r)) return false;
    g_value_init(out, G_TYPE_INT);
    g_value_set_int(out, r);
    return true;
  }
  if (GST_VALUE_HOLDS_INT_RANGE(in)) {
    const int lo = gst_value_get_int_range_min(in), hi = gst_value_get_int_range_max(in);
    const int a = up ? std::min(lo, G_MAXINT / kScale) * kScale : (lo + kScale - 1) / kScale;
    const int b = up ? std::min(hi, G_MAXINT / kScale) * kScale : hi / kScale;
    if (a > b) return false;
    if (a == b) {
      g_value_init(out, G_TYPE_INT);
      g_value_set_int(out, a);
    } else {
      g_value_init(out, GST_TYPE_INT_RANGE);
      gst_value_set_int_range_step(out, a, b, up ? kScale : 1);
    }
    return true;
  }
  if (GST_VALUE_HOLDS_LIST(in)) {
    g_value_init(out, GST_TYPE_LIST);
    for (guint i = 0; i < gst_value_list_get_size(in); ++i) {
      GValue item = G_VALUE_INIT;
      if (scale_value(gst_value_list_get_value(in, i), &item, up))
        gst_value_list_append_and_take_value(out, &item);
    }
    if (gst_value_list_get_size(out) == 0) {
      g_value_unset(out);
      return false;
    }
    return true;
  }
  return false;
}

GstCaps* transform_caps(GstBaseTransform* trans, GstPadDirection direction, GstCaps* caps, GstCaps* filter) {
  const bool up = direction == GST_PAD_SINK;
  GstCaps* result = gst_caps_new_empty();
  for (guint i = 0; i < gst_caps_get_size(caps); ++i) {
    GstStructure* s = gst_structure_copy(gst_caps_get_structure(caps, i));
    bool ok = true;
    for (const char* field : {"width", "height"}) {
      const GValue* v = gst_structure_get_value(s, field);
      if (!v) continue;
      GValue out = G_VALUE_INIT;
      if (!scale_value(v, &out, up)) {
        ok = false;
        break;
      }
      gst_structure_take_value(s, field, &out);
    }
    if (ok)
      result =
          gst_caps_merge_structure_full(result, s, gst_caps_features_copy(gst_caps_get_features(caps, i)));
    else
      gst_structure_free(s);
  }
  if (filter) {
    GstCaps* t = gst_caps_intersect_full(filter, result, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref(result);
    result = t;
  }
  GST_DEBUG_OBJECT(trans, "transformed %" GST_PTR_FORMAT " into %" GST_PTR_FORMAT, caps, result);
  return result;
}

// 8-bit RGB of a mapped frame, whatever the packed RGB-family layout.
qbasicvsr::Image frame_to_image(const GstVideoFrame& f) {
  qbasicvsr::Image img;
  img.width = GST_VIDEO_FRAME_WIDTH(&f);
  img.height = GST_VIDEO_FRAME_HEIGHT(&f);
  img.rgb.resize(static_cast<std::size_t>(img.width) * img.height * 3);
  const int stride = GST_VIDEO_FRAME_PLANE_STRIDE(&f, 0), ps = GST_VIDEO_FRAME_COMP_PSTRIDE(&f, 0);
  for (int c = 0; c < 3; ++c) {
    const auto* base = static_cast<const uint8_t*>(GST_VIDEO_FRAME_COMP_DATA(&f, c));
    for (int y = 0; y < img.height; ++y) {
      const uint8_t* row = base + static_cast<std::ptrdiff_t>(y) * stride;
      uint8_t* dst = img.rgb.data() + static_cast<std::size_t>(y) * img.width * 3 + c;
      for (int x = 0; x < img.width; ++x) dst[3 * x] = row[x * ps];
    }
  }
  return img;
}

// Writes RGB into a mapped output frame; alpha (if any) is the input's, enlarged by pixel
// repetition, or opaque for x formats.
void image_to_frame(const qbasicvsr::Image& img, GstVideoFrame* f, const GstVideoFrame* in) {
  const int stride = GST_VIDEO_FRAME_PLANE_STRIDE(f, 0), ps = GST_VIDEO_FRAME_COMP_PSTRIDE(f, 0);
  for (int c = 0; c < 3; ++c) {
    auto* base = static_cast<uint8_t*>(GST_VIDEO_FRAME_COMP_DATA(f, c));
    for (int y = 0; y < img.height; ++y) {
      uint8_t* row = base + static_cast<std::ptrdiff_t>(y) * stride;
      const uint8_t* src = img.rgb.data() + static_cast<std::size_t>(y) * img.width * 3 + c;
      for (int x = 0; x < img.width; ++x) row[x * ps] = src[3 * x];
    }
  }
  const int padding_byte = ps == 4 ? 3 : -1;  // the x or A byte of 4-byte formats
  if (padding_byte < 0) return;
  const bool alpha = GST_VIDEO_INFO_HAS_ALPHA(&f->info);
  auto* out_base = static_cast<uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(f, 0));
  // Offset of the byte that is neither R, G nor B.
  int offsets[4] = {0, 0, 0, 0};
  for (int c = 0; c < 3; ++c) offsets[GST_VIDEO_FRAME_COMP_POFFSET(f, c)] = 1;
  int pad = 0;
  while (pad < 4 && offsets[pad]) ++pad;
  const int in_stride = in ? GST_VIDEO_FRAME_PLANE_STRIDE(in, 0) : 0;
  const auto* in_alpha =
      alpha && in ? static_cast<const uint8_t*>(GST_VIDEO_FRAME_COMP_DATA(in, 3)) : nullptr;
  const int in_ps = in ? GST_VIDEO_FRAME_COMP_PSTRIDE(in, 0) : 0;
  for (int y = 0; y < img.height; ++y) {
    uint8_t* row = out_base + static_cast<std::ptrdiff_t>(y) * stride + pad;
    const uint8_t* arow = in_alpha ? in_alpha + static_cast<std::ptrdiff_t>(y / kScale) * in_stride : nullptr;
    for (int x = 0; x < img.width; ++x) row[x * ps] = arow ? arow[(x / kScale) * in_ps] : 255;
  }
}

void post_chunk_message(GstQbasicvsr* self, const qbasicvsr::ChunkReport& r) {
  const auto& c = r.clip.complexity;
  GstStructure* s = gst_structure_new(
      "qbasicvsr-chunk", "frames", G_TYPE_UINT, static_cast<guint>(r.frames), "context", G_TYPE_UINT,
      static_cast<guint>(r.context), "carried", G_TYPE_BOOLEAN, r.carried, "C_V", G_TYPE_DOUBLE, c.C_V, "S",
      G_TYPE_DOUBLE, c.mean_S, "T_mag", G_TYPE_DOUBLE, c.mean_T_mag, "T_cons", G_TYPE_DOUBLE, c.mean_T_cons,
      "b_V", G_TYPE_INT, r.clip.b_V, "mean-bits", G_TYPE_DOUBLE, r.clip.mean_bits, "ms", G_TYPE_DOUBLE,
      r.clip.ms, "tiles", G_TYPE_INT, r.clip.tiles, nullptr);
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), s));
}

// The output callback of the chunker: wraps an upscaled frame into a buffer that carries its
// input's timestamps and flags and pushes it at once, so that a chunk's 4x frames are not all held
// (10 frames of 5120x2880 are 440 MB).
void push_output(GstQbasicvsr* self, uint64_t tag, qbasicvsr::Image&& img) {
  State& st = *self->state;
  const auto it = st.inputs.find(tag);
  GstBuffer* in = it == st.inputs.end() ? nullptr : it->second;
  GstBuffer* out = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(&st.out_info), nullptr);
  GstVideoFrame of, inf;
  if (gst_video_frame_map(&of, &st.out_info, out, GST_MAP_WRITE)) {
    // The input is read again only for its alpha.
    const bool in_mapped = in && GST_VIDEO_INFO_HAS_ALPHA(&st.in_info) &&
                           gst_video_frame_map(&inf, &st.in_info, in, GST_MAP_READ);
    image_to_frame(img, &of, in_mapped ? &inf : nullptr);
    if (in_mapped) gst_video_frame_unmap(&inf);
    gst_video_frame_unmap(&of);
  }
  if (in) {
    gst_buffer_copy_into(
        out, in, static_cast<GstBufferCopyFlags>(GST_BUFFER_COPY_FLAGS | GST_BUFFER_COPY_TIMESTAMPS), 0, -1);
    gst_buffer_unref(in);
    st.inputs.erase(it);
  }
  img = qbasicvsr::Image();  // freed before downstream works on the buffer
  if (st.flow == GST_FLOW_OK)
    st.flow = gst_pad_push(GST_BASE_TRANSFORM_SRC_PAD(self), out);
  else
    gst_buffer_unref(out);
}

// Runs the error-prone work and turns exceptions into element errors.
template <typename F>
bool guarded(GstQbasicvsr* self, F&& f) {
  try {
    f();
    return true;
  } catch (const std::bad_alloc&) {
    GST_ELEMENT_ERROR(self, RESOURCE, NO_SPACE_LEFT, ("out of memory"),
                      ("lower max-memory, tile-size or chunk-size"));
  } catch (const std::exception& e) {
    GST_ELEMENT_ERROR(self, STREAM, FAILED, ("%s", e.what()), (nullptr));
  }
  return false;
}

// Runs f (a call into the chunker, which pushes what it finishes) and returns what downstream
// answered, or GST_FLOW_ERROR after an element error.
template <typename F>
GstFlowReturn run_chunker(GstQbasicvsr* self, F&& f) {
  self->state->flow = GST_FLOW_OK;
  if (!guarded(self, f)) return GST_FLOW_ERROR;
  return self->state->flow;
}

// Runs what is still queued (end of stream, discontinuity, new caps or segment) and pushes it.
GstFlowReturn drain_and_push(GstQbasicvsr* self) {
  State* st = self->state;
  if (!st || !st->chunker) return GST_FLOW_OK;
  return run_chunker(self, [&] {
    st->chunker->drain([&](uint64_t tag, qbasicvsr::Image&& img) { push_output(self, tag, std::move(img)); });
  });
}

gboolean start(GstBaseTransform* trans) {
  GstQbasicvsr* self = self_of(trans);
  Settings s;
  GST_OBJECT_LOCK(self);
  s = *self->settings;
  GST_OBJECT_UNLOCK(self);
  auto st = std::make_unique<State>();
  std::string path;
  try {
    path = qbasicvsr::resolve_model(s.model);
    const bool reuse = s.loaded && path == s.loaded_path;
    const auto model =
        reuse ? s.loaded : std::make_shared<const qbasicvsr::Model>(qbasicvsr::load_model(path));
    if (reuse) GST_DEBUG_OBJECT(self, "model %s: the one the program loaded", path.c_str());
    qbasicvsr::UpscalerOptions o;
    switch (s.precision) {
      case PRECISION_AUTO:
        o.precision = qbasicvsr::default_precision(*model, s.device);
        break;
      case PRECISION_FP32:
        o.precision = qbasicvsr::Precision::FP32;
        break;
      case PRECISION_FAKE:
        o.precision = qbasicvsr::Precision::Fake;
        break;
      case PRECISION_INT8:
        o.precision = qbasicvsr::Precision::Int8;
        break;
    }
    o.bits = s.bits;
    if (s.scope != SCOPE_AUTO)
      o.scope = s.scope == SCOPE_FULL ? qbasicvsr::Scope::Full : qbasicvsr::Scope::Partial;
    o.adaptive = s.adaptive;
    o.threads = s.threads;
    o.device = s.device;
    o.tile_rows = s.tile_size;
    o.tile_overlap = s.tile_overlap;
    o.max_memory_mb = s.max_memory;
    o.float_layers = s.float_layers;
    st->upscaler = std::make_unique<qbasicvsr::Upscaler>(*model, o);
    st->chunker = std::make_unique<qbasicvsr::Chunker>(*st->upscaler,
                                                       qbasicvsr::ChunkerOptions{s.chunk_size, s.overlap});
    st->chunker->on_report([self](const qbasicvsr::ChunkReport& r) { post_chunk_message(self, r); });
  } catch (const std::exception& e) {
    GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("cannot start qbasicvsr: %s", e.what()),
                      ("model \"%s\"", s.model.c_str()));
    return FALSE;
  }
  GST_INFO_OBJECT(
      self,
      "model %s (%s), precision %s, bits %d (0: model's), chunk-size %d, overlap %d, adaptive %d, "
      "device %s, threads %d, tile-size %d, tile-overlap %d, max-memory %d MB",
      path.c_str(), st->upscaler->architecture().summary().c_str(),
      qbasicvsr::precision_name(st->upscaler->options().precision), s.bits, s.chunk_size, s.overlap,
      s.adaptive, s.device.c_str(), s.threads, s.tile_size, s.tile_overlap, s.max_memory);
  delete self->state;
  self->state = st.release();
  return TRUE;
}

gboolean stop(GstBaseTransform* trans) {
  GstQbasicvsr* self = self_of(trans);
  delete self->state;
  self->state = nullptr;
  return TRUE;
}

gboolean set_caps(GstBaseTransform* trans, GstCaps* incaps, GstCaps* outcaps) {
  GstQbasicvsr* self = self_of(trans);
  State* st = self->state;
  if (!st) return FALSE;
  GstVideoInfo in, out;
  if (!gst_video_info_from_caps(&in, incaps) || !gst_video_info_from_caps(&out, outcaps)) {
    GST_ERROR_OBJECT(self, "unusable caps %" GST_PTR_FORMAT " -> %" GST_PTR_FORMAT, incaps, outcaps);
    return FALSE;
  }
  if (GST_VIDEO_INFO_WIDTH(&out) != kScale * GST_VIDEO_INFO_WIDTH(&in) ||
      GST_VIDEO_INFO_HEIGHT(&out) != kScale * GST_VIDEO_INFO_HEIGHT(&in) ||
      GST_VIDEO_INFO_FORMAT(&out) != GST_VIDEO_INFO_FORMAT(&in)) {
    GST_ERROR_OBJECT(self, "output caps must be the input format at 4x the size");
    return FALSE;
  }
  st->in_info = in;
  st->out_info = out;
  st->have_caps = true;
  return TRUE;
}

// The base class hands every input buffer here: frames are held until their chunk runs, and the
// chunk's outputs are pushed from here as they are finished. Its own submit_input_buffer() runs first, for
// renegotiation after a RECONFIGURE (and QoS, off by default); its `is_discont` is not used: it
// stays TRUE until the base class itself pushes an output, which an element that holds frames
// back rarely does, so it says nothing about the stream. Only the buffer's DISCONT flag does.
GstFlowReturn submit_input_buffer(GstBaseTransform* trans, gboolean is_discont, GstBuffer* input) {
  GstQbasicvsr* self = self_of(trans);
  GstFlowReturn ret = GST_BASE_TRANSFORM_CLASS(parent_class)->submit_input_buffer(trans, is_discont, input);
  if (ret != GST_FLOW_OK || !trans->queued_buf)
    return ret == GST_BASE_TRANSFORM_FLOW_DROPPED ? GST_FLOW_OK : ret;
  GstBuffer* buf = trans->queued_buf;
  trans->queued_buf = nullptr;
  State* st = self->state;
  if (!st || !st->have_caps) {
    gst_buffer_unref(buf);
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("no caps before the first buffer"), (nullptr));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  // A real discontinuity (the first buffer after a seek, lost data) ends the chunk and the
  // stream: what is held goes out, and the forward branch starts afresh.
  if (GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DISCONT)) {
    ret = drain_and_push(self);
    if (ret != GST_FLOW_OK) {
      gst_buffer_unref(buf);
      return ret;
    }
  }
  GstVideoFrame frame;
  if (!gst_video_frame_map(&frame, &st->in_info, buf, GST_MAP_READ)) {
    gst_buffer_unref(buf);
    GST_ELEMENT_ERROR(self, STREAM, FORMAT, ("input buffer is smaller than its caps say"), (nullptr));
    return GST_FLOW_ERROR;
  }
  qbasicvsr::Image img = frame_to_image(frame);
  gst_video_frame_unmap(&frame);
  const uint64_t tag = st->next_tag++;
  st->inputs[tag] = buf;
  return run_chunker(self, [&] {
    st->chunker->push(std::move(img), tag,
                      [&](uint64_t t, qbasicvsr::Image&& out) { push_output(self, t, std::move(out)); });
  });
}

// Outputs are pushed as the chunker finishes them (push_output), so the base class has none.
GstFlowReturn generate_output(GstBaseTransform*, GstBuffer** outbuf) {
  *outbuf = nullptr;
  return GST_FLOW_OK;
}

gboolean sink_event(GstBaseTransform* trans, GstEvent* event) {
  GstQbasicvsr* self = self_of(trans);
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_EOS:
    case GST_EVENT_GAP:
    case GST_EVENT_SEGMENT:
    case GST_EVENT_CAPS:
      // Frames of the old stream, segment or format go out before the event.
      if (drain_and_push(self) == GST_FLOW_ERROR) {
        gst_event_unref(event);
        return FALSE;
      }
      break;
    case GST_EVENT_FLUSH_STOP:
      if (self->state) self->state->drop();
      break;
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS(parent_class)->sink_event(trans, event);
}

gboolean query(GstBaseTransform* trans, GstPadDirection direction, GstQuery* q) {
  GstQbasicvsr* self = self_of(trans);
  if (direction == GST_PAD_SRC && GST_QUERY_TYPE(q) == GST_QUERY_LATENCY) {
    if (!gst_pad_peer_query(GST_BASE_TRANSFORM_SINK_PAD(trans), q)) return FALSE;
    gboolean live;
    GstClockTime min, max;
    gst_query_parse_latency(q, &live, &min, &max);
    int frames;
    GST_OBJECT_LOCK(self);
    frames = self->settings->chunk_size + self->settings->overlap;
    GST_OBJECT_UNLOCK(self);
    const State* st = self->state;
    const int fps_n = st && st->have_caps ? GST_VIDEO_INFO_FPS_N(&st->in_info) : 0;
    const int fps_d = st && st->have_caps ? GST_VIDEO_INFO_FPS_D(&st->in_info) : 1;
    if (fps_n > 0 && fps_d > 0) {
      const GstClockTime ours =
          gst_util_uint64_scale(static_cast<guint64>(frames) * GST_SECOND, fps_d, fps_n);
      min += ours;
      if (GST_CLOCK_TIME_IS_VALID(max)) max += ours;
    } else {
      // Unknown or variable frame rate: how long the held frames last is unknown.
      max = GST_CLOCK_TIME_NONE;
    }
    GST_DEBUG_OBJECT(self, "latency: live %d, min %" GST_TIME_FORMAT ", max %" GST_TIME_FORMAT, live,
                     GST_TIME_ARGS(min), GST_TIME_ARGS(max));
    gst_query_set_latency(q, live, min, max);
    return TRUE;
  }
  return GST_BASE_TRANSFORM_CLASS(parent_class)->query(trans, direction, q);
}

void set_property(GObject* object, guint id, const GValue* value, GParamSpec* pspec) {
  GstQbasicvsr* self = self_of(object);
  GST_OBJECT_LOCK(self);
  if (GST_STATE(self) > GST_STATE_READY) {
    GST_OBJECT_UNLOCK(self);
    GST_WARNING_OBJECT(self, "property %s can only change in the NULL or READY state", pspec->name);
    return;
  }
  Settings& s = *self->settings;
  switch (id) {
    case PROP_MODEL:
      s.model = g_value_get_string(value) ? g_value_get_string(value) : "";
      break;
    case PROP_PRECISION:
      s.precision = static_cast<PrecisionChoice>(g_value_get_enum(value));
      break;
    case PROP_CHUNK_SIZE:
      s.chunk_size = g_value_get_int(value);
      break;
    case PROP_OVERLAP:
      s.overlap = g_value_get_int(value);
      break;
    case PROP_ADAPTIVE:
      s.adaptive = g_value_get_boolean(value);
      break;
    case PROP_BITS:
      s.bits = g_value_get_int(value);
      break;
    case PROP_SCOPE:
      s.scope = static_cast<ScopeChoice>(g_value_get_enum(value));
      break;
    case PROP_DEVICE:
      s.device = g_value_get_string(value) ? g_value_get_string(value) : kDefaultDevice;
      break;
    case PROP_THREADS:
      s.threads = g_value_get_int(value);
      break;
    case PROP_TILE_SIZE:
      s.tile_size = g_value_get_int(value);
      break;
    case PROP_TILE_OVERLAP:
      s.tile_overlap = g_value_get_int(value);
      break;
    case PROP_MAX_MEMORY:
      s.max_memory = g_value_get_int(value);
      break;
    case PROP_FLOAT_LAYERS:
      s.float_layers = static_cast<qbasicvsr::Compute>(g_value_get_enum(value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK(self);
}

void get_property(GObject* object, guint id, GValue* value, GParamSpec* pspec) {
  GstQbasicvsr* self = self_of(object);
  GST_OBJECT_LOCK(self);
  const Settings& s = *self->settings;
  switch (id) {
    case PROP_MODEL:
      g_value_set_string(value, s.model.c_str());
      break;
    case PROP_PRECISION:
      g_value_set_enum(value, s.precision);
      break;
    case PROP_CHUNK_SIZE:
      g_value_set_int(value, s.chunk_size);
      break;
    case PROP_OVERLAP:
      g_value_set_int(value, s.overlap);
      break;
    case PROP_ADAPTIVE:
      g_value_set_boolean(value, s.adaptive);
      break;
    case PROP_BITS:
      g_value_set_int(value, s.bits);
      break;
    case PROP_SCOPE:
      g_value_set_enum(value, s.scope);
      break;
    case PROP_DEVICE:
      g_value_set_string(value, s.device.c_str());
      break;
    case PROP_THREADS:
      g_value_set_int(value, s.threads);
      break;
    case PROP_TILE_SIZE:
      g_value_set_int(value, s.tile_size);
      break;
    case PROP_TILE_OVERLAP:
      g_value_set_int(value, s.tile_overlap);
      break;
    case PROP_MAX_MEMORY:
      g_value_set_int(value, s.max_memory);
      break;
    case PROP_FLOAT_LAYERS:
      g_value_set_enum(value, static_cast<int>(s.float_layers));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK(self);
}

void finalize(GObject* object) {
  GstQbasicvsr* self = self_of(object);
  delete self->state;
  delete self->settings;
  G_OBJECT_CLASS(parent_class)->finalize(object);
}

constexpr GParamFlags kReadyFlags =
    static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);

}  // namespace

static void gst_qbasicvsr_class_init(GstQbasicvsrClass* klass) {
  GObjectClass* gobject = G_OBJECT_CLASS(klass);
  GstElementClass* element = GST_ELEMENT_CLASS(klass);
  GstBaseTransformClass* trans = GST_BASE_TRANSFORM_CLASS(klass);
  gobject->set_property = set_property;
  gobject->get_property = get_property;
  gobject->finalize = finalize;

  g_object_class_install_property(
      gobject, PROP_MODEL,
      g_param_spec_string("model", "Model",
                          "Model file, or the name of an installed model; empty: the default model", "",
                          kReadyFlags));
  g_object_class_install_property(
      gobject, PROP_PRECISION,
      g_param_spec_enum(
          "precision", "Precision",
          "Execution precision; auto is int8 for a quantized model (fake on device cuda), else fp32",
          precision_get_type(), PRECISION_AUTO, kReadyFlags));
  g_object_class_install_property(
      gobject, PROP_CHUNK_SIZE,
      g_param_spec_int("chunk-size", "Chunk size", "Frames output per network pass", 1, 1000, kDefaultChunk,
                       kReadyFlags));
  g_object_class_install_property(
      gobject, PROP_OVERLAP,
      g_param_spec_int(
          "overlap", "Overlap",
          "Context frames on each side of a chunk (bidirectional propagation across chunk borders)", 0, 1000,
          kDefaultOverlap, kReadyFlags));
  g_object_class_install_property(
      gobject, PROP_ADAPTIVE,
      g_param_spec_boolean(
          "adaptive", "Adaptive bits",
          "FG-VBA: raise or lower the bit-width per chunk from its complexity (quantized models)", TRUE,
          kReadyFlags));
  g_object_class_install_property(
      gobject, PROP_BITS,
      g_param_spec_int("bits", "Bits",
                       "Base bit-width of fake/int8 execution, 2..8; 0: the model's (8 without one)", 0, 8,
                       kDefaultBits, kReadyFlags));
  g_object_class_install_property(
      gobject, PROP_SCOPE,
      g_param_spec_enum("scope", "Scope",
                        "Which convolutions are quantized, for models without quantization settings",
                        scope_get_type(), SCOPE_AUTO, kReadyFlags));
  g_object_class_install_property(
      gobject, PROP_DEVICE,
      g_param_spec_string("device", "Device", "Compute device: cpu (cuda in CUDA builds)", kDefaultDevice,
                          kReadyFlags));
  g_object_class_install_property(gobject, PROP_THREADS,
                                  g_param_spec_int("threads", "Threads", "Compute threads; 0: one per core",
                                                   0, 1024, kDefaultThreads, kReadyFlags));
  g_object_class_install_property(
      gobject, PROP_TILE_SIZE,
      g_param_spec_int("tile-size", "Tile size",
                       "Input rows per spatial tile (full-width bands); 0: chosen from max-memory", 0, 16384,
                       kDefaultTileSize, kReadyFlags));
  g_object_class_install_property(
      gobject, PROP_TILE_OVERLAP,
      g_param_spec_int("tile-overlap", "Tile overlap",
                       "Input rows of context on each side of a tile, blended across", 0, 1024,
                       kDefaultTileOverlap, kReadyFlags));
  g_object_class_install_property(
      gobject, PROP_MAX_MEMORY,
      g_param_spec_int("max-memory", "Memory budget",
                       "Memory budget in MB that picks the tile size; 0: no tiling", 0, 1 << 20,
                       kDefaultMaxMemory, kReadyFlags));
  g_object_class_install_property(
      gobject, PROP_FLOAT_LAYERS,
      g_param_spec_enum(
          "float-layers", "Float layers",
          "Arithmetic of the layers int8 execution leaves in float (SPyNet and conv_last in the "
          "partial scope); fp32 and fake precision compute in fp32 on the CPU. On device cuda: "
          "every convolution's arithmetic (auto: fp32)",
          float_layers_get_type(), static_cast<int>(kDefaults.float_layers), kReadyFlags));

  gst_element_class_set_static_metadata(
      element, "BasicVSR x4 super-resolution", "Filter/Effect/Converter/Video/Scaler",
      "Upscales RGB video x4 with a quantized BasicVSR network (QBasicVSR): bidirectional propagation over "
      "chunks of frames with context, int8 integer convolutions, per-chunk adaptive bit-widths. "
      "Example: gst-launch-1.0 filesrc location=in.mp4 ! decodebin ! videoconvert ! qbasicvsr ! videoconvert "
      "! x264enc ! mp4mux ! filesink location=out.mp4",
      "qbasicvsr developers");
  gst_element_class_add_static_pad_template(element, &sink_template);
  gst_element_class_add_static_pad_template(element, &src_template);

  trans->start = start;
  trans->stop = stop;
  trans->set_caps = set_caps;
  trans->transform_caps = transform_caps;
  trans->submit_input_buffer = submit_input_buffer;
  trans->generate_output = generate_output;
  trans->sink_event = sink_event;
  trans->query = query;
  trans->passthrough_on_same_caps = FALSE;

  gst_type_mark_as_plugin_api(precision_get_type(), static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(scope_get_type(), static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(float_layers_get_type(), static_cast<GstPluginAPIFlags>(0));
  GST_DEBUG_CATEGORY_INIT(gst_qbasicvsr_debug, "qbasicvsr", 0, "BasicVSR x4 super-resolution");
}

static void gst_qbasicvsr_init(GstQbasicvsr* self) {
  self->settings = new Settings();
  self->state = nullptr;
}

static gboolean register_static_plugin(GstPlugin* plugin) { return GST_ELEMENT_REGISTER(qbasicvsr, plugin); }

void gst_qbasicvsr_use_loaded_model(GstElement* element, const std::string& path,
                                    std::shared_ptr<const qbasicvsr::Model> model) {
  if (!GST_IS_QBASICVSR(element)) return;
  GstQbasicvsr* self = GST_QBASICVSR(element);
  GST_OBJECT_LOCK(self);
  self->settings->loaded = std::move(model);
  self->settings->loaded_path = path;
  GST_OBJECT_UNLOCK(self);
}

gboolean gst_qbasicvsr_register_static(void) {
  static std::once_flag once;
  static gboolean ok = FALSE;
  std::call_once(once, [] {
    ok = gst_plugin_register_static(GST_VERSION_MAJOR, GST_VERSION_MINOR, "qbasicvsr",
                                    "x4 video super-resolution with a quantized BasicVSR network",
                                    register_static_plugin, QBASICVSR_VERSION, "Apache 2.0", "qbasicvsr",
                                    "qbasicvsr", "https://github.com/qbasicvsr/qbasicvsr");
  });
  return ok;
}
