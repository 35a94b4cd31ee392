// Helpers shared by the unit tests.
#pragma once

#include <functional>
#include <string>

#include "qbasicvsr/architecture.h"
#include "qbasicvsr/error.h"

namespace qbasicvsr::test {

// The message of the Error that f() throws, or "" if it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A tiny architecture (C=4, N=1, 4 HR channels) for fast tests.
inline Architecture tiny_arch() {
  Architecture a;
  a.channels = 4;
  a.blocks = 1;
  a.hr_channels = 4;
  return a;
}

}  // namespace qbasicvsr::test
