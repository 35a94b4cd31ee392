// Writing a program's output without ever touching its input: path checks before anything is
// written, an advisory lock per output, and SIGINT/SIGTERM turned into a flag the work loop reads.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <string>

#include "qbasicvsr/error.h"

namespace qbasicvsr::cli {

namespace fs = std::filesystem;

// True when `inner` is `outer` or lies below it (both absolute and normalised).
inline bool is_within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i)
    if (i == inner.end() || *i != *o) return false;
  return true;
}

// Refuses an output that is the input (same path, link or inode), or, for frame folders, a folder
// inside the input folder: the checks run before anything is created or written.
inline void check_output_is_not_input(const std::string& input, const std::string& output, bool folders) {
  std::error_code ec;
  if (fs::exists(output, ec) && fs::equivalent(input, output, ec))
    throw Error(output + ": the output is the input; choose another output");
  const fs::path in = fs::weakly_canonical(fs::absolute(input), ec);
  const fs::path out = fs::weakly_canonical(fs::absolute(output), ec);
  if (folders && is_within(out, in))
    throw Error(output + ": the output folder is inside the input folder " + input +
                "; choose one elsewhere");
  if (!folders && out == in) throw Error(output + ": the output is the input; choose another output");
}

// The folder a file will be written into exists and is writable: a clear error before the work.
inline void check_writable_folder(const fs::path& dir) {
  const fs::path d = dir.empty() ? fs::path(".") : dir;
  std::error_code ec;
  if (!fs::is_directory(d, ec)) throw Error(d.string() + ": no such folder for the output");
  if (access(d.c_str(), W_OK | X_OK) != 0)
    throw Error(d.string() + ": cannot write there (" + std::strerror(errno) + ")");
}

// An exclusive advisory lock (flock) on a file or folder, held while the object lives: a second
// job writing the same output fails at once with a clear error instead of racing the first.
class OutputLock {
 public:
  // `create`: open the path as a file, creating it (without truncating) if needed.
  OutputLock(const std::string& path, const std::string& what, bool create) {
    fd_ = create ? ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)
                 : ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0) throw Error(what + ": cannot open (" + std::strerror(errno) + ")");
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      ::close(fd_);
      fd_ = -1;
      if (err == EWOULDBLOCK) throw Error(what + ": another job is writing this output");
      throw Error(what + ": cannot lock (" + std::strerror(err) + ")");
    }
  }
  ~OutputLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

 private:
  int fd_ = -1;
};

// A file that takes shape under a temporary name beside its destination (".NAME.partial"), locked
// against a second job on the same output, and removed unless commit() put it in place: an error,
// an exception or a signal anywhere before that leaves neither the partial file nor a damaged
// destination behind.
class PartialFile {
 public:
  explicit PartialFile(const fs::path& destination)
      : destination_(destination),
        path_(destination.parent_path() / ("." + destination.filename().string() + ".partial")),
        lock_(path_.string(), destination.string(), true) {}
  ~PartialFile() { discard(); }
  PartialFile(const PartialFile&) = delete;
  PartialFile& operator=(const PartialFile&) = delete;

  const fs::path& path() const { return path_; }
  void discard() {
    std::error_code ec;
    if (!committed_) fs::remove(path_, ec);
    committed_ = true;
  }
  // Renames the finished file into place; throws (and removes it) when that fails.
  void commit(const std::string& what) {
    std::error_code ec;
    fs::rename(path_, destination_, ec);
    if (ec) {
      discard();
      throw Error(destination_.string() + ": cannot rename the finished " + what + " into place (" +
                  ec.message() + ")");
    }
    committed_ = true;
  }

 private:
  fs::path destination_, path_;
  OutputLock lock_;  // after path_: taken once the path is known, released after the removal
  bool committed_ = false;
};

// SIGINT and SIGTERM: the first asks the work loop to stop at the next safe point, a second one
// to abort. exit_code() is the shell's convention, 128 + the signal (130, 143).
class Interrupts {
 public:
  static void install() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
  }
  static int count() { return count_.load(); }
  static int exit_code() { return 128 + signal_.load(); }
  static const char* name() { return signal_.load() == SIGTERM ? "SIGTERM" : "SIGINT"; }

 private:
  static void on_signal(int sig) {
    signal_.store(sig);
    count_.fetch_add(1);
  }
  static inline std::atomic<int> count_{0};
  static inline std::atomic<int> signal_{0};
};

}  // namespace qbasicvsr::cli
