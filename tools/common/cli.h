// The programs' command lines: options declared once, parsed by GLib's GOptionContext, the
// program's own usage text on --help, and one-line errors (exit status 2) instead of exceptions
// escaping main().
#pragma once

#include <glib.h>

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

  // An option that takes a value ("-m", "--model"; no short name: ""); repeated use appends.
  void value(const std::string& short_name, const std::string& long_name) {
    if (short_name.size() == 2 && short_name[0] == '-')
      alias_[short_name] = long_name;
    else if (!short_name.empty())
      die("internal: short option " + short_name + " must be a dash and one letter");
    takes_value_[long_name] = true;
  }
  void flag(const std::string& long_name) { takes_value_[long_name] = false; }

  // Parses argv with GLib's option parser (long options, "--name=value", short "-m value", "--"
  // ending the options); prints the usage and exits 0 on --help, exits 2 with one
  // line on a bad argument. Values stay bytes as given (file-name arguments: no charset
  // conversion).
  void parse(int argc, char** argv) {
    for (int i = 1; i < argc && std::string(argv[i]) != "--"; ++i) {
      const std::string a = argv[i];
      if (a == "-h" || a == "--help") {
        std::fputs(usage_.c_str(), stdout);
        std::exit(0);
      }
      // GLib would ignore a value given to a flag.
      const auto eq = a.find('=');
      if (a.rfind("--", 0) == 0 && eq != std::string::npos) {
        const auto it = takes_value_.find(canonical(a.substr(0, eq)));
        if (it != takes_value_.end() && !it->second) die("option " + it->first + " takes no value");
      }
    }
    // One entry per option; each collects its values (flags: whether given).
    struct Slot {
      std::string name;  // "--name"
      bool takes_value;
      gchar** values = nullptr;
      gboolean set = FALSE;
    };
    std::vector<Slot> slots;
    for (const auto& [name, takes] : takes_value_) slots.push_back({name, takes});
    std::vector<GOptionEntry> entries;
    for (Slot& slot : slots) {
      char short_name = 0;
      for (const auto& [alias, name] : alias_)
        if (name == slot.name) short_name = alias[1];
      GOptionEntry e{};
      e.long_name = slot.name.c_str() + 2;  // without the dashes
      e.short_name = short_name;
      e.arg = slot.takes_value ? G_OPTION_ARG_FILENAME_ARRAY : G_OPTION_ARG_NONE;
      e.arg_data = slot.takes_value ? static_cast<gpointer>(&slot.values) : static_cast<gpointer>(&slot.set);
      entries.push_back(e);
    }
    entries.push_back(GOptionEntry{});
    GOptionContext* context = g_option_context_new(nullptr);
    g_option_context_set_help_enabled(context, FALSE);
    g_option_context_add_main_entries(context, entries.data(), nullptr);
    std::vector<char*> rest(argv, argv + argc);
    int n = argc;
    char** left = rest.data();
    GError* error = nullptr;
    const bool ok = g_option_context_parse(context, &n, &left, &error);
    g_option_context_free(context);
    std::string message;
    if (!ok) {
      message = error ? error->message : "bad arguments";
      g_error_free(error);
    }
    for (Slot& slot : slots) {
      if (slot.values)
        for (gchar** v = slot.values; *v; ++v) values_[slot.name].push_back(*v);
      if (slot.set) values_[slot.name].push_back("1");
      g_strfreev(slot.values);
    }
    if (!ok) {
      if (!message.empty())
        message[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(message[0])));
      die(message + " (see --help)");
    }
    bool dashes = false;  // GLib leaves the "--" that ended the options
    for (int i = 1; i < n; ++i) {
      if (!dashes && std::string(left[i]) == "--") {
        dashes = true;
        continue;
      }
      positional_.push_back(left[i]);
    }
  }

  // The long name a short one stands for ("-m" -> "--model").
  std::string canonical(const std::string& name) const {
    const auto it = alias_.find(name);
    return it == alias_.end() ? name : it->second;
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
  // The value of an option that names one of `choices` (`fallback` when absent); anything else
  // exits 2 with "NAME must be A, B or C, got "X"".
  std::string choice(const std::string& name, const std::string& fallback,
                     const std::vector<std::string>& choices) const {
    const std::string s = get(name, fallback);
    for (const auto& c : choices)
      if (s == c) return s;
    std::string list;
    for (std::size_t i = 0; i < choices.size(); ++i)
      list += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + choices[i];
    die(name + " must be " + list + ", got \"" + s + "\"");
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
