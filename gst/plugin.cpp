// The qbasicvsr plugin: registers its one element.
#include "gstqbasicvsr.h"
#include "qbasicvsr_config.h"

#ifndef PACKAGE
#define PACKAGE "qbasicvsr"
#endif

static gboolean plugin_init(GstPlugin* plugin) { return GST_ELEMENT_REGISTER(qbasicvsr, plugin); }

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, qbasicvsr,
                  "x4 video super-resolution with a quantized BasicVSR network", plugin_init,
                  QBASICVSR_VERSION, "Apache 2.0", "qbasicvsr", "https://github.com/qbasicvsr/qbasicvsr")
