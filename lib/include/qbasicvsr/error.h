// Errors the library reports to its users: one line that names the problem.
#pragma once

#include <stdexcept>
#include <string>

namespace qbasicvsr {

// Every failure caused by bad input (files, arguments, data) is reported with this type so that
// programs and the element can turn it into a one-line message instead of a crash.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace qbasicvsr
