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
