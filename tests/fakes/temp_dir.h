// A temporary directory for one test: created under $TMPDIR (or /tmp) by mkdtemp, removed with
// everything in it when the object goes out of scope, so also when an assertion fails.
#pragma once

#include <stdlib.h>

#include <cerrno>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace hfm::testing {

class TempDir {
 public:
  // `prefix` names the directory (e.g. "hfm-ctl"), which helps find leftovers of a crashed run.
  explicit TempDir(const std::string& prefix = "hfm-test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::system_error(errno, std::generic_category(), "mkdtemp " + tmpl);
    }
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace hfm::testing
