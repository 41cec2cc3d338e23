// Durable whole-file replacement for small state files (pid files, handle tables, manifests):
// after a crash at any point, `path` holds either its old content (or is absent) or all of the
// new bytes, never a mix. Each call reports failure as an Error carrying the errno.
#pragma once

#include <filesystem>
#include <string_view>

#include "hfm/util/result.h"

namespace hfm::util {

// Writes all of `data` to `fd`, retrying EINTR and short writes.
Status writeAll(int fd, std::string_view data);

// fsync of the directory holding `path`: a file created in it or renamed into it survives a
// crash only once the directory does.
Status fsyncParentDir(const std::filesystem::path& path);

// Replaces `path` with `bytes`: a temporary file next to it (unique name, mode 0600) is written,
// fsync'd and renamed over `path`, then the directory is fsync'd. On failure the temporary file
// is removed and `path` is as it was.
Status writeFileAtomic(const std::filesystem::path& path, std::string_view bytes);

}  // namespace hfm::util
