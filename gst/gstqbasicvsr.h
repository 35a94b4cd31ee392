// The qbasicvsr element: x4 video super-resolution with a (quantized) BasicVSR network.
// A thin adapter over qbasicvsr::Chunker; no LibTorch header is reachable from here.
#pragma once

#include <gst/base/gstbasetransform.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_QBASICVSR (gst_qbasicvsr_get_type())
G_DECLARE_FINAL_TYPE(GstQbasicvsr, gst_qbasicvsr, GST, QBASICVSR, GstBaseTransform)

GST_ELEMENT_REGISTER_DECLARE(qbasicvsr);

// Registers the element with the running program (no plugin file needed), for programs that
// embed it; safe to call more than once.
gboolean gst_qbasicvsr_register_static(void);

G_END_DECLS

#ifdef __cplusplus
#include <memory>
#include <string>

#include "qbasicvsr/model_file.h"

// For programs that link the element and have loaded the model themselves (qbasicvsr-upscale):
// the element starts on `model` instead of reading the file again, for as long as its "model"
// property resolves to `path` (the file as qbasicvsr::resolve_model() names it; another model
// reads its file as usual). The element keeps `model` alive. Ignored for another element type.
void gst_qbasicvsr_use_loaded_model(GstElement* element, const std::string& path,
                                    std::shared_ptr<const qbasicvsr::Model> model);
#endif
