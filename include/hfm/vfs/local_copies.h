// LocalCopyStore: whole local copies of remote versions (`--cache-mode file`), as the Vfs sees
// them. The mount layer backs it with cache::FileCache; the Vfs only asks for a copy when a
// file is opened and, on a miss, requests one for the next open.
//
// A copy is named by the version's Xet hash, so it is never stale: a handle on a copy reads
// exactly the version it opened. Implementations are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "hfm/util/result.h"

namespace hfm::vfs {

struct LocalCopy {
  int fd = -1;  // readable with pread while `owner` lives
  uint64_t size = 0;
  std::shared_ptr<const void> owner;
};

class LocalCopyStore {
 public:
  virtual ~LocalCopyStore() = default;
  // The copy of the version with this hash and size, or nullopt.
  virtual std::optional<LocalCopy> open(const std::string& xet_hash, uint64_t size) = 0;
  // Asks for a copy to be made in the background; `read` fetches the version's bytes
  // (exactly out.size() of them at `offset`) and runs on another thread, maybe after the
  // caller's handle is gone.
  virtual void request(const std::string& xet_hash, uint64_t size,
                       std::function<Status(uint64_t offset, std::span<uint8_t> out)> read) = 0;
};

}  // namespace hfm::vfs
