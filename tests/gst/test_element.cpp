// The qbasicvsr element's contract, through GstHarness: caps, sizes, frames out == frames in,
// timestamps, EOS drain, flush, restart, latency, errors, chunk messages.
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "gstqbasicvsr.h"
#include "qbasicvsr/model_file.h"
#include "qbasicvsr/upscaler.h"
#include "test_util.h"

using namespace qbasicvsr;

namespace {

constexpr int kChunk = 4;
constexpr int kOverlap = 2;

// A tiny random model, written once per test run.
const std::string& model_path() {
  static const std::string path = [] {
    char dir[] = "/tmp/qbasicvsr-element-XXXXXX";
    const std::string d = mkdtemp(dir);
    const std::string p = d + "/tiny.safetensors";
    save_model(p, random_model(test::tiny_arch(), 3));
    return p;
  }();
  return path;
}

std::string caps_string(const char* format, int w, int h, const char* extra = "") {
  return std::string("video/x-raw,format=") + format + ",width=" + std::to_string(w) +
         ",height=" + std::to_string(h) + ",framerate=25/1" + extra;
}

GstHarness* make_harness(const std::string& caps, const char* props = "") {
  GstHarness* h = gst_harness_new_parse(("qbasicvsr model=" + model_path() +
                                         " threads=2 chunk-size=" + std::to_string(kChunk) +
                                         " overlap=" + std::to_string(kOverlap) + " " + props)
                                            .c_str());
  gst_harness_set_src_caps_str(h, caps.c_str());
  return h;
}

// A frame of the harness's input size, with timestamps of frame i at 25 fps.
GstBuffer* frame(GstHarness* h, int i) {
  GstVideoInfo info;
  GstCaps* caps = gst_pad_get_current_caps(h->srcpad);
  gst_video_info_from_caps(&info, caps);
  gst_caps_unref(caps);
  GstBuffer* b = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(&info), nullptr);
  GstMapInfo map;
  gst_buffer_map(b, &map, GST_MAP_WRITE);
  for (gsize k = 0; k < map.size; ++k) map.data[k] = static_cast<guint8>(k * 7 + i * 13);
  gst_buffer_unmap(b, &map);
  GST_BUFFER_PTS(b) = i * GST_SECOND / 25;
  GST_BUFFER_DTS(b) = i * GST_SECOND / 25 + 1;
  GST_BUFFER_DURATION(b) = GST_SECOND / 25;
  if (i % 3) GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_DELTA_UNIT);
  // Real sources and decoders mark the first buffer of a stream.
  if (i == 0) GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_DISCONT);
  return b;
}

std::vector<GstBuffer*> pull_all(GstHarness* h) {
  std::vector<GstBuffer*> out;
  while (GstBuffer* b = gst_harness_try_pull(h)) out.push_back(b);
  return out;
}

void unref_all(std::vector<GstBuffer*>& v) {
  for (GstBuffer* b : v) gst_buffer_unref(b);
  v.clear();
}

class ElementTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    gst_init(nullptr, nullptr);
    ASSERT_TRUE(gst_qbasicvsr_register_static());
  }
};

}  // namespace

TEST_F(ElementTest, NegotiatesEveryFormatAtFourTimesTheSize) {
  for (const char* format : {"RGB", "BGR", "RGBx", "BGRx", "xRGB", "xBGR", "RGBA", "BGRA"}) {
    GstHarness* h =
        make_harness(caps_string(format, 7, 5, ",pixel-aspect-ratio=16/15,interlace-mode=progressive"));
    ASSERT_EQ(gst_harness_push(h, frame(h, 0)), GST_FLOW_OK) << format;
    ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
    auto out = pull_all(h);
    ASSERT_EQ(out.size(), 1u) << format;
    GstCaps* caps = gst_pad_get_current_caps(h->sinkpad);
    GstVideoInfo info;
    ASSERT_TRUE(gst_video_info_from_caps(&info, caps));
    EXPECT_STREQ(gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(&info)), format);
    EXPECT_EQ(GST_VIDEO_INFO_WIDTH(&info), 28);
    EXPECT_EQ(GST_VIDEO_INFO_HEIGHT(&info), 20);
    EXPECT_EQ(GST_VIDEO_INFO_FPS_N(&info), 25);
    EXPECT_EQ(GST_VIDEO_INFO_PAR_N(&info), 16);
    EXPECT_EQ(GST_VIDEO_INFO_PAR_D(&info), 15);
    EXPECT_EQ(gst_buffer_get_size(out[0]), GST_VIDEO_INFO_SIZE(&info));
    if (GST_VIDEO_INFO_HAS_ALPHA(&info) || GST_VIDEO_INFO_N_COMPONENTS(&info) == 3) {
      // Alpha follows the input's (pixel (0,0) of frame 0); x bytes of x formats are opaque.
      GstVideoFrame vf;
      ASSERT_TRUE(gst_video_frame_map(&vf, &info, out[0], GST_MAP_READ));
      if (GST_VIDEO_INFO_HAS_ALPHA(&info)) {
        const int a = GST_VIDEO_FRAME_COMP_POFFSET(&vf, 3);
        EXPECT_EQ(static_cast<const guint8*>(GST_VIDEO_FRAME_PLANE_DATA(&vf, 0))[a], a * 7 % 256) << format;
      }
      gst_video_frame_unmap(&vf);
    }
    gst_caps_unref(caps);
    unref_all(out);
    gst_harness_teardown(h);
  }
}

TEST_F(ElementTest, OddSizesComeOutAtFourTimesTheSize) {
  for (auto [w, hgt] : std::vector<std::pair<int, int>>{{1, 1}, {7, 5}, {177, 99}}) {
    GstHarness* h = make_harness(caps_string("RGB", w, hgt));
    ASSERT_EQ(gst_harness_push(h, frame(h, 0)), GST_FLOW_OK);
    ASSERT_EQ(gst_harness_push(h, frame(h, 1)), GST_FLOW_OK);
    gst_harness_push_event(h, gst_event_new_eos());
    auto out = pull_all(h);
    ASSERT_EQ(out.size(), 2u);
    const gsize stride = GST_ROUND_UP_4(static_cast<gsize>(4 * w) * 3);
    EXPECT_EQ(gst_buffer_get_size(out[0]), stride * 4 * hgt) << w << "x" << hgt;
    unref_all(out);
    gst_harness_teardown(h);
  }
}

TEST_F(ElementTest, FramesOutEqualFramesInWithTheirTimestamps) {
  for (int n : {1, kChunk - 1, kChunk, kChunk + 1, 3 * kChunk + 2}) {
    GstHarness* h = make_harness(caps_string("RGB", 6, 4));
    std::vector<GstBuffer*> out;
    for (int i = 0; i < n; ++i) {
      ASSERT_EQ(gst_harness_push(h, frame(h, i)), GST_FLOW_OK);
      auto got = pull_all(h);
      out.insert(out.end(), got.begin(), got.end());
      // A chunk goes out as soon as its lookahead is in, and not before: frames are held, not
      // run one by one (DISCONT only on the first buffer, as real sources send it).
      const int expected = i + 1 < kChunk + kOverlap ? 0 : (i + 1 - kOverlap) / kChunk * kChunk;
      EXPECT_EQ(static_cast<int>(out.size()), expected) << n << " frames, after frame " << i;
    }
    ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
    auto rest = pull_all(h);
    out.insert(out.end(), rest.begin(), rest.end());
    ASSERT_EQ(out.size(), static_cast<std::size_t>(n)) << n;
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(GST_BUFFER_PTS(out[i]), static_cast<GstClockTime>(i * GST_SECOND / 25));
      EXPECT_EQ(GST_BUFFER_DTS(out[i]), static_cast<GstClockTime>(i * GST_SECOND / 25 + 1));
      EXPECT_EQ(GST_BUFFER_DURATION(out[i]), static_cast<GstClockTime>(GST_SECOND / 25));
      EXPECT_EQ(GST_BUFFER_FLAG_IS_SET(out[i], GST_BUFFER_FLAG_DELTA_UNIT), i % 3 != 0);
    }
    // The EOS event comes after the last frame.
    GstEvent* ev = nullptr;
    bool eos = false;
    while ((ev = gst_harness_try_pull_event(h))) {
      eos |= GST_EVENT_TYPE(ev) == GST_EVENT_EOS;
      gst_event_unref(ev);
    }
    EXPECT_TRUE(eos);
    unref_all(out);
    gst_harness_teardown(h);
  }
}

TEST_F(ElementTest, EosDrainsWhatIsHeld) {
  GstHarness* h = make_harness(caps_string("RGB", 5, 3));
  for (int i = 0; i < kChunk; ++i) ASSERT_EQ(gst_harness_push(h, frame(h, i)), GST_FLOW_OK);
  EXPECT_EQ(gst_harness_buffers_in_queue(h), 0u);  // a chunk waits for its right context
  gst_harness_push_event(h, gst_event_new_eos());
  EXPECT_EQ(gst_harness_buffers_in_queue(h), static_cast<guint>(kChunk));
  gst_harness_teardown(h);
}

TEST_F(ElementTest, FlushDropsWhatIsHeld) {
  GstHarness* h = make_harness(caps_string("RGB", 5, 3));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(gst_harness_push(h, frame(h, i)), GST_FLOW_OK);
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_start()));
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_stop(TRUE)));
  GstSegment seg;
  gst_segment_init(&seg, GST_FORMAT_TIME);
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_segment(&seg)));
  ASSERT_EQ(gst_harness_push(h, frame(h, 10)), GST_FLOW_OK);
  gst_harness_push_event(h, gst_event_new_eos());
  auto out = pull_all(h);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(GST_BUFFER_PTS(out[0]), static_cast<GstClockTime>(10 * GST_SECOND / 25));
  unref_all(out);
  gst_harness_teardown(h);
}

TEST_F(ElementTest, DiscontAndCapsChangeEndTheChunk) {
  GstHarness* h = make_harness(caps_string("RGB", 5, 3));
  for (int i = 0; i < 2; ++i) ASSERT_EQ(gst_harness_push(h, frame(h, i)), GST_FLOW_OK);
  GstBuffer* d = frame(h, 2);
  GST_BUFFER_FLAG_SET(d, GST_BUFFER_FLAG_DISCONT);
  ASSERT_EQ(gst_harness_push(h, d), GST_FLOW_OK);
  EXPECT_EQ(gst_harness_buffers_in_queue(h), 2u);  // the two frames before the discontinuity
  gst_harness_set_src_caps_str(h, caps_string("RGB", 6, 2).c_str());
  EXPECT_EQ(gst_harness_buffers_in_queue(h), 3u);  // the new caps drained the third
  ASSERT_EQ(gst_harness_push(h, frame(h, 3)), GST_FLOW_OK);
  gst_harness_push_event(h, gst_event_new_eos());
  auto out = pull_all(h);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(gst_buffer_get_size(out[2]), static_cast<gsize>(GST_ROUND_UP_4(20 * 3) * 12));
  EXPECT_EQ(gst_buffer_get_size(out[3]), static_cast<gsize>(GST_ROUND_UP_4(24 * 3) * 8));
  unref_all(out);
  gst_harness_teardown(h);
}

TEST_F(ElementTest, OnlyARealDiscontinuityRestartsTheForwardBranch) {
  GstHarness* h = make_harness(caps_string("RGB", 5, 3));
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);
  // Two chunks of one stream, then a DISCONT buffer (a seek, lost data) and another chunk.
  for (int i = 0; i < 2 * kChunk + kOverlap; ++i) ASSERT_EQ(gst_harness_push(h, frame(h, i)), GST_FLOW_OK);
  GstBuffer* d = frame(h, 100);
  GST_BUFFER_FLAG_SET(d, GST_BUFFER_FLAG_DISCONT);
  ASSERT_EQ(gst_harness_push(h, d), GST_FLOW_OK);
  for (int i = 101; i < 101 + kChunk + kOverlap; ++i)
    ASSERT_EQ(gst_harness_push(h, frame(h, i)), GST_FLOW_OK);
  std::vector<std::pair<guint, bool>> chunks;
  while (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) {
    const GstStructure* s = gst_message_get_structure(m);
    guint n = 0;
    gboolean carried = FALSE;
    if (gst_structure_get_uint(s, "frames", &n) && gst_structure_get_boolean(s, "carried", &carried))
      chunks.emplace_back(n, carried);
    gst_message_unref(m);
  }
  // The discontinuity drained the stream's last kOverlap frames without lookahead.
  const std::vector<std::pair<guint, bool>> expected{
      {kChunk, false}, {kChunk, true}, {kOverlap, true}, {kChunk, false}};
  EXPECT_EQ(chunks, expected);
  gst_element_set_bus(h->element, nullptr);
  gst_object_unref(bus);
  gst_harness_teardown(h);
}

TEST_F(ElementTest, RestartsAfterStop) {
  GstHarness* h = make_harness(caps_string("RGB", 5, 3));
  ASSERT_EQ(gst_harness_push(h, frame(h, 0)), GST_FLOW_OK);
  // Back to NULL with a frame held (PLAYING -> NULL mid-chunk), then play again.
  ASSERT_EQ(gst_element_set_state(h->element, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  gst_harness_play(h);
  gst_harness_set_src_caps_str(h, caps_string("RGB", 5, 3).c_str());
  for (int i = 0; i < 2; ++i) ASSERT_EQ(gst_harness_push(h, frame(h, i)), GST_FLOW_OK);
  gst_harness_push_event(h, gst_event_new_eos());
  EXPECT_EQ(gst_harness_buffers_in_queue(h), 2u);
  gst_harness_teardown(h);
}

TEST_F(ElementTest, LatencyIsUpstreamsPlusTheHeldFrames) {
  GstHarness* h = make_harness(caps_string("RGB", 5, 3));
  gst_harness_set_upstream_latency(h, 10 * GST_MSECOND);
  ASSERT_EQ(gst_harness_push(h, frame(h, 0)), GST_FLOW_OK);
  // (chunk + overlap) frames at 25 fps.
  EXPECT_EQ(gst_harness_query_latency(h), 10 * GST_MSECOND + (kChunk + kOverlap) * GST_SECOND / 25);
  gst_harness_teardown(h);
  // An odd rate: 30000/1001 fps.
  h = make_harness("video/x-raw,format=RGB,width=5,height=3,framerate=30000/1001");
  gst_harness_set_upstream_latency(h, 0);
  ASSERT_EQ(gst_harness_push(h, frame(h, 0)), GST_FLOW_OK);
  EXPECT_EQ(gst_harness_query_latency(h), gst_util_uint64_scale(6 * GST_SECOND, 1001, 30000));
  gst_harness_teardown(h);
  // Unknown rate: the minimum cannot grow, the maximum is unbounded.
  h = make_harness("video/x-raw,format=RGB,width=5,height=3,framerate=0/1");
  gst_harness_set_upstream_latency(h, 5 * GST_MSECOND);
  ASSERT_EQ(gst_harness_push(h, frame(h, 0)), GST_FLOW_OK);
  GstQuery* q = gst_query_new_latency();
  ASSERT_TRUE(gst_pad_peer_query(h->sinkpad, q));
  gboolean live;
  GstClockTime min, max;
  gst_query_parse_latency(q, &live, &min, &max);
  EXPECT_EQ(min, 5 * GST_MSECOND);
  EXPECT_FALSE(GST_CLOCK_TIME_IS_VALID(max));
  gst_query_unref(q);
  gst_harness_teardown(h);
}

TEST_F(ElementTest, PostsOneMessagePerChunk) {
  GstHarness* h = make_harness(caps_string("RGB", 5, 3));
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);
  for (int i = 0; i < kChunk + 3; ++i) ASSERT_EQ(gst_harness_push(h, frame(h, i)), GST_FLOW_OK);
  gst_harness_push_event(h, gst_event_new_eos());
  std::vector<guint> frames;
  while (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) {
    const GstStructure* s = gst_message_get_structure(m);
    if (gst_structure_has_name(s, "qbasicvsr-chunk")) {
      guint n = 0;
      double cv = -1, ms = -1;
      gst_structure_get_uint(s, "frames", &n);
      gst_structure_get_double(s, "C_V", &cv);
      gst_structure_get_double(s, "ms", &ms);
      EXPECT_GE(cv, 0.0);
      EXPECT_GT(ms, 0.0);
      EXPECT_TRUE(gst_structure_has_field(s, "b_V") && gst_structure_has_field(s, "mean-bits") &&
                  gst_structure_has_field(s, "T_mag") && gst_structure_has_field(s, "T_cons") &&
                  gst_structure_has_field(s, "S"));
      frames.push_back(n);
    }
    gst_message_unref(m);
  }
  EXPECT_EQ(frames, (std::vector<guint>{kChunk, 3}));
  gst_element_set_bus(h->element, nullptr);
  gst_object_unref(bus);
  gst_harness_teardown(h);
}

TEST_F(ElementTest, BadModelIsAnElementError) {
  for (const char* model : {"/nonexistent/model.safetensors", "/etc/hostname"}) {
    GstElement* e = gst_element_factory_make("qbasicvsr", nullptr);
    g_object_set(e, "model", model, nullptr);
    GstBus* bus = gst_bus_new();
    gst_element_set_bus(e, bus);
    EXPECT_EQ(gst_element_set_state(e, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
    GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
    ASSERT_NE(m, nullptr) << model;
    GError* err = nullptr;
    gst_message_parse_error(m, &err, nullptr);
    EXPECT_NE(std::string(err->message).find("cannot start qbasicvsr"), std::string::npos) << err->message;
    g_error_free(err);
    gst_message_unref(m);
    gst_element_set_state(e, GST_STATE_NULL);
    gst_element_set_bus(e, nullptr);
    gst_object_unref(bus);
    gst_object_unref(e);
  }
}

namespace {

// The bytes of every output frame of `frames` frames through an element made of `props`, given
// the model `loaded` as the program's (for the file `loaded_path`) when there is one.
std::vector<std::string> run_element(const std::string& props, int frames,
                                     const std::string& loaded_path = "",
                                     std::shared_ptr<const Model> loaded = nullptr) {
  GstHarness* h = make_harness(caps_string("RGB", 6, 4), props.c_str());
  if (loaded) {
    GstElement* e = gst_harness_find_element(h, "qbasicvsr");
    EXPECT_EQ(gst_element_set_state(h->element, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
    gst_qbasicvsr_use_loaded_model(e, loaded_path, loaded);
    gst_object_unref(e);
    gst_harness_play(h);
    gst_harness_set_src_caps_str(h, caps_string("RGB", 6, 4).c_str());
  }
  for (int i = 0; i < frames; ++i) EXPECT_EQ(gst_harness_push(h, frame(h, i)), GST_FLOW_OK);
  gst_harness_push_event(h, gst_event_new_eos());
  std::vector<std::string> out;
  for (GstBuffer* b : pull_all(h)) {
    GstMapInfo map;
    gst_buffer_map(b, &map, GST_MAP_READ);
    out.emplace_back(reinterpret_cast<const char*>(map.data), map.size);
    gst_buffer_unmap(b, &map);
    gst_buffer_unref(b);
  }
  gst_harness_teardown(h);
  return out;
}

}  // namespace

TEST_F(ElementTest, StartsOnTheModelTheProgramLoaded) {
  // make_harness names model_path(); the program's model is another one (seed 99), also in a file.
  const auto other = std::make_shared<const Model>(random_model(test::tiny_arch(), 99));
  const std::string other_path = model_path() + ".other.safetensors";
  save_model(other_path, *other);
  const auto from_file = run_element("", 6);
  const auto other_from_file = run_element("model=" + other_path, 6);
  ASSERT_EQ(from_file.size(), 6u);
  ASSERT_NE(from_file, other_from_file);
  // Given for the file the property names: the element runs the program's model, not the file.
  EXPECT_EQ(run_element("", 6, model_path(), other), other_from_file);
  // Given for another file: the property's own file is read as usual.
  EXPECT_EQ(run_element("", 6, other_path, other), from_file);
  std::remove(other_path.c_str());
}

TEST_F(ElementTest, PropertiesHaveDefaultsAndChangeOnlyWhenStopped) {
  GstElement* e = gst_element_factory_make("qbasicvsr", nullptr);
  gint chunk = 0, overlap = 0, bits = -1, mem = 0;
  gboolean adaptive = FALSE;
  g_object_get(e, "chunk-size", &chunk, "overlap", &overlap, "bits", &bits, "adaptive", &adaptive,
               "max-memory", &mem, nullptr);
  EXPECT_EQ(chunk, 10);
  EXPECT_EQ(overlap, 8);
  EXPECT_EQ(bits, 0);
  EXPECT_TRUE(adaptive);
  EXPECT_EQ(mem, 4096);
  for (const char* p : {"model", "precision", "chunk-size", "overlap", "adaptive", "bits", "scope", "device",
                        "threads", "tile-size", "tile-overlap", "max-memory", "float-layers"}) {
    GParamSpec* spec = g_object_class_find_property(G_OBJECT_GET_CLASS(e), p);
    ASSERT_NE(spec, nullptr) << p;
    EXPECT_NE(std::string(g_param_spec_get_blurb(spec)), "") << p;
    EXPECT_TRUE(spec->flags & GST_PARAM_MUTABLE_READY) << p;
  }
  // float-layers: the library's default, and its nicks as gst-launch sets them.
  gint float_layers = -1;
  g_object_get(e, "float-layers", &float_layers, nullptr);
  EXPECT_EQ(float_layers, static_cast<int>(qbasicvsr::UpscalerOptions().float_layers));
  for (const auto& [nick, value] :
       {std::pair<const char*, qbasicvsr::Compute>{"bf16", qbasicvsr::Compute::Bf16},
        {"fp32", qbasicvsr::Compute::Fp32},
        {"auto", qbasicvsr::Compute::Auto}}) {
    gst_util_set_object_arg(G_OBJECT(e), "float-layers", nick);
    g_object_get(e, "float-layers", &float_layers, nullptr);
    EXPECT_EQ(float_layers, static_cast<int>(value)) << nick;
  }
  gst_object_unref(e);
}
