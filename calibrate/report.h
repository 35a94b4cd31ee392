// The calibrate program's reports of a CalibrationReport: --report (JSON) and --plot (SVG).
#pragma once

#include <string>

#include "qbasicvsr/calibration.h"

namespace qbasicvsr {

// JSON of a report (--report).
std::string report_json(const CalibrationReport& report);
// An SVG picture: per-layer s_space, s_temp and bits, and the loss curve (--plot).
std::string report_svg(const CalibrationReport& report);

}  // namespace qbasicvsr
