// Small command-line parser shared by the programs: long/short options, positionals, --help,
// and one-line errors (exit status 2) instead of exceptions escaping main().
#pragma once

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "qbasicvsr/error.h"

namespace qbasicvsr::cli {

class Args {
 public:
  Args(std::string program, std::string usage) : program_(std::move(program)), usage_(std::move(usage)) {}

  // An option that takes a value ("-m", "--model"); repeated use appends.
  void value(const std::string& short_name, const std::string& long_name) {
    if (!short_name.empty()) alias_[short_name] = long_name;
    takes_value_[long_name] = true;
  }
  void flag(const std::string& long_name) { takes_value_[long_name] = false; }

  // Parses argv; prints usage and exits 0 on --help, exits 2 with one line on a bad argument.
  void parse(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "-h" || a == "--help") {
        std::fputs(usage_.c_str(), stdout);
        std::exit(0);
      }
      if (a == "--") {
        for (++i; i < argc; ++i) positional_.push_back(argv[i]);
        break;
      }
      if (a.size() > 1 && a[0] == '-' && !(a.size() > 1 && std::isdigit(static_cast<unsigned char>(a[1])))) {
        std::string name = a, val;
        const auto eq = a.find('=');
        const bool inline_value = a.rfind("--", 0) == 0 && eq != std::string::npos;
        if (inline_value) {
          name = a.substr(0, eq);
          val = a.substr(eq + 1);
        }
        if (alias_.count(name)) name = alias_[name];
        const auto it = takes_value_.find(name);
        if (it == takes_value_.end()) die("unknown option " + name + " (see --help)");
        if (it->second) {
          if (!inline_value) {
            if (i + 1 >= argc) die("option " + name + " needs a value");
            val = argv[++i];
          }
          values_[name].push_back(val);
        } else {
          if (inline_value) die("option " + name + " takes no value");
          values_[name].push_back("1");
        }
        continue;
      }
      positional_.push_back(a);
    }
  }

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string get(const std::string& name, const std::string& fallback = "") const {
    const auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second.back();
  }
  std::vector<std::string> all(const std::string& name) const {
    const auto it = values_.find(name);
    return it == values_.end() ? std::vector<std::string>() : it->second;
  }
  long get_int(const std::string& name, long fallback, long lo, long hi) const {
    if (!has(name)) return fallback;
    const std::string s = get(name);
    char* end = nullptr;
    const long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || v < lo || v > hi)
      die(name + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got \"" + s +
          "\"");
    return v;
  }
  double get_double(const std::string& name, double fallback) const {
    if (!has(name)) return fallback;
    const std::string s = get(name);
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0') die(name + " must be a number, got \"" + s + "\"");
    return v;
  }
  const std::vector<std::string>& positional() const { return positional_; }

  [[noreturn]] void die(const std::string& message) const {
    std::fprintf(stderr, "%s: %s\n", program_.c_str(), message.c_str());
    std::exit(2);
  }

 private:
  std::string program_, usage_;
  std::map<std::string, std::string> alias_;
  std::map<std::string, bool> takes_value_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

// Runs body(), turning any exception into "program: message" on stderr and exit status 1.
inline int run_main(const char* program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const qbasicvsr::Error& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: out of memory\n", program);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: internal error: %s\n", program, e.what());
  }
  return 1;
}

}  // namespace qbasicvsr::cli
