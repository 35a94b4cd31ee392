// Embedding the qbasicvsr element in a program: appsrc -> qbasicvsr -> appsink.
// Pushes synthetic RGB frames, pulls the x4 frames back with their timestamps.
//   embed [MODEL]      (default: the installed default model)
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>

#include <cstdio>
#include <string>

#include "gstqbasicvsr.h"

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  // Programs linked with the element register it themselves; with the plugin installed this is
  // not needed.
  gst_qbasicvsr_register_static();
  const int width = 32, height = 24, frames = 6;
  std::string launch =
      "appsrc name=in format=time caps=video/x-raw,format=RGB,width=32,height=24,framerate=25/1 ! "
      "qbasicvsr chunk-size=4 overlap=1 threads=2 name=sr ! appsink name=out sync=false";
  GError* err = nullptr;
  GstElement* pipeline = gst_parse_launch(launch.c_str(), &err);
  if (!pipeline) {
    std::fprintf(stderr, "embed: %s\n", err->message);
    return 1;
  }
  if (argc > 1) {
    GstElement* sr = gst_bin_get_by_name(GST_BIN(pipeline), "sr");
    g_object_set(sr, "model", argv[1], nullptr);
    gst_object_unref(sr);
  }
  GstElement* in = gst_bin_get_by_name(GST_BIN(pipeline), "in");
  GstElement* out = gst_bin_get_by_name(GST_BIN(pipeline), "out");
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    std::fprintf(stderr, "embed: the pipeline did not start (is the model readable?)\n");
    return 1;
  }
  for (int i = 0; i < frames; ++i) {
    GstBuffer* b = gst_buffer_new_allocate(nullptr, GST_ROUND_UP_4(width * 3) * height, nullptr);
    gst_buffer_memset(b, 0, static_cast<guint8>(40 * i), gst_buffer_get_size(b));
    GST_BUFFER_PTS(b) = gst_util_uint64_scale(i, GST_SECOND, 25);
    GST_BUFFER_DURATION(b) = gst_util_uint64_scale(1, GST_SECOND, 25);
    gst_app_src_push_buffer(GST_APP_SRC(in), b);  // takes the buffer
  }
  gst_app_src_end_of_stream(GST_APP_SRC(in));
  int pulled = 0;
  while (GstSample* s = gst_app_sink_pull_sample(GST_APP_SINK(out))) {
    const GstStructure* st = gst_caps_get_structure(gst_sample_get_caps(s), 0);
    int w = 0, h = 0;
    gst_structure_get_int(st, "width", &w);
    gst_structure_get_int(st, "height", &h);
    std::printf("frame %d: %dx%d at %" GST_TIME_FORMAT "\n", pulled++, w, h,
                GST_TIME_ARGS(GST_BUFFER_PTS(gst_sample_get_buffer(s))));
    gst_sample_unref(s);
  }
  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* error = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  if (error) {
    GError* e = nullptr;
    gst_message_parse_error(error, &e, nullptr);
    std::fprintf(stderr, "embed: %s\n", e->message);
    g_error_free(e);
    gst_message_unref(error);
  }
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(in);
  gst_object_unref(out);
  gst_object_unref(pipeline);
  std::printf("%d frames in, %d frames out\n", frames, pulled);
  return pulled == frames && !error ? 0 : 1;
}
