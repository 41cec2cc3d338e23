// runScript: an integration test's shell step. The script goes through a temporary file (so
// any quoting is allowed) and runs with bash -e under `timeout`; the result is its exit
// status (-1 if it did not exit normally). Header-only, like the other fakes.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace hfm::testing {

inline int runScript(const std::string& script, int timeout_secs = 120) {
  char path[] = "/tmp/hfm-test-script-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) return -1;
  ::close(fd);
  { std::ofstream(path) << script << "\n"; }
  const int rc =
      std::system(("timeout " + std::to_string(timeout_secs) + " bash -e " + path).c_str());
  ::unlink(path);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

}  // namespace hfm::testing
