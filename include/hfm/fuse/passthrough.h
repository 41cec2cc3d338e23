// FUSE passthrough (Linux >= 6.9): the kernel reads an open file straight from a local file
// we hand it (a whole-file cache copy), without a request to this process per read and with
// the local file's page cache (large folios: hot re-reads at local-file speed; a FUSE inode's
// own page cache holds 4 KiB pages only).
//
// Debian 12's libfuse 3.14 predates passthrough, so the adapter speaks the three kernel ABI
// pieces itself, through libfuse's custom I/O hooks:
//  - FUSE_INIT: the reply gets FUSE_PASSTHROUGH (flags2) and max_stack_depth 1 when the
//    kernel's request offered it;
//  - FUSE_DEV_IOC_BACKING_OPEN/CLOSE on /dev/fuse register a local file descriptor as a
//    "backing id" (needs CAP_SYS_ADMIN);
//  - an OPEN reply carries FOPEN_PASSTHROUGH and the backing id.
//
// The kernel enforces one io mode per inode (fs/fuse/iomode.c): while a file of an inode is
// open in passthrough mode, every other open of that inode must be passthrough to the same
// backing file, and passthrough is refused while the inode is open in caching mode; a wrong
// reply turns into EIO for the opener. PassthroughTable makes those decisions.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>

#include "hfm/util/result.h"

namespace hfm::fuse {

// Wire-level helpers (kernel ABI 7.40; offsets into the structs of include/uapi/linux/fuse.h).
namespace passthrough_abi {

constexpr uint32_t kOpInit = 26;
constexpr uint32_t kInitExt = 1u << 30;          // FUSE_INIT_EXT: flags2 is meaningful
constexpr uint32_t kPassthroughFlag2 = 1u << 5;  // FUSE_PASSTHROUGH (bit 37) in flags2
constexpr uint32_t kOpenPassthrough = 1u << 7;   // FOPEN_PASSTHROUGH
// FOPEN_NOFLUSH: with FOPEN_PASSTHROUGH, the only other open flag kept (the kernel refuses
// keep-cache and the like; direct io would win over passthrough, so it is never combined).
constexpr uint32_t kOpenNoFlush = 1u << 5;

// The unique id of a FUSE_INIT request and whether the kernel offers passthrough, or
// nullopt for any other request.
struct InitRequest {
  uint64_t unique = 0;
  bool offers_passthrough = false;
};
std::optional<InitRequest> parseInitRequest(std::span<const uint8_t> request);

// The `unique` of a reply (its fuse_out_header), or nullopt if `iov` is too short.
std::optional<uint64_t> replyUnique(const iovec* iov, int count);

// Turns passthrough on in a FUSE_INIT reply (fuse_init_out in iov[1]). False if the reply has
// no room for it (it is then left unchanged).
bool enableInInitReply(iovec* iov, int count);

// Makes a successful OPEN reply (fuse_open_out in iov[1]) a passthrough open of `backing_id`.
bool setInOpenReply(iovec* iov, int count, int32_t backing_id);

}  // namespace passthrough_abi

// Registers and unregisters backing files with the kernel (ioctls on a /dev/fuse fd).
class BackingFiles {
 public:
  virtual ~BackingFiles() = default;
  virtual Result<int32_t> open(int fd) = 0;  // the backing id
  virtual void close(int32_t backing_id) = 0;
};

// BackingFiles of a FUSE connection: FUSE_DEV_IOC_BACKING_OPEN/CLOSE on its /dev/fuse fd.
class DeviceBackingFiles : public BackingFiles {
 public:
  explicit DeviceBackingFiles(int dev_fd) : dev_fd_(dev_fd) {}
  Result<int32_t> open(int fd) override;
  void close(int32_t backing_id) override;

 private:
  const int dev_fd_;
};

// The io mode of every open file of a passthrough-capable mount.
class PassthroughTable {
 public:
  explicit PassthroughTable(BackingFiles& backing) : backing_(backing) {}

  struct Decision {
    bool passthrough = false;
    int32_t backing_id = 0;
  };
  // A new open `fh` of inode `ino` reading content `version`; `local_fd` >= 0 is a local copy
  // of exactly that content. EBUSY when the inode is open in passthrough mode on another
  // version (the kernel would serve the old bytes to the new open).
  Result<Decision> open(uint64_t ino, uint64_t fh, const std::string& version, int local_fd);
  // Forgets `fh` (unknown handles are ignored); the backing id goes with its last open.
  void release(uint64_t fh);

  size_t passthroughOpens() const;

 private:
  struct InodeState {
    int32_t backing_id = 0;
    std::string version;
    uint32_t passthrough = 0;  // open files
    uint32_t cached = 0;
  };
  struct HandleState {
    uint64_t ino = 0;
    bool passthrough = false;
  };

  BackingFiles& backing_;
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, InodeState> inodes_;    // Guarded by mu_.
  std::unordered_map<uint64_t, HandleState> handles_;  // Guarded by mu_.
  bool warned_ = false;                                // Guarded by mu_.
};

}  // namespace hfm::fuse
