// Remote: the seam between the filesystem core (Vfs) and where the bytes and the namespace
// actually live (a Hub bucket or repo read through hub + xet + cache, or FakeRemote in tests).
//
// Contract:
//  - Paths are relative to the mount root (the subfolder prefix, if any, is already stripped),
//    use '/' as separator, never start or end with '/'; "" is the root directory.
//  - Directories are implicit (as on the Hub): they exist while something exists below them.
//  - Every method is thread-safe and may block; the Vfs never calls a Remote while holding one
//    of its own locks. Implementations bound every wait themselves (connect/read timeouts), so
//    a stalled server cannot park a caller forever.
//  - Errors carry the errno the filesystem caller should see (ENOENT, EACCES, EIO, ENOSPC,
//    EAGAIN, ETIMEDOUT ...); the Vfs passes them through unchanged.
//  - read() is content-addressed: it reads the version of the file described by the entry it is
//    given (its xet_hash / etag), not "whatever is at that path now". A handle opened on one
//    version therefore keeps reading that version even if the path changes remotely.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "hfm/util/result.h"

namespace hfm::vfs {

struct RemoteEntry {
  std::string path;  // relative to the mount root, e.g. "models/config.json"
  bool is_dir = false;
  uint64_t size = 0;     // bytes; 0 for directories
  int64_t mtime_ns = 0;  // modification time (ns since the epoch); 0 = unknown
  std::string xet_hash;  // content hash (hex) of the version; empty for non-Xet files
  std::string etag;      // identifies the version when there is no xet hash (git blobs)

  // True when `other` describes a different version of the same file.
  bool contentDiffers(const RemoteEntry& other) const {
    if (size != other.size) return true;
    if (!xet_hash.empty() || !other.xet_hash.empty()) return xet_hash != other.xet_hash;
    return etag != other.etag;
  }
};

// What a finished upload produced: the content is readable by `xet_hash` (read() with an entry
// carrying it) once finish() returned OK.
struct UploadedContent {
  std::string xet_hash;
  uint64_t size = 0;
};

// A streaming sink for the bytes of one new file version. Used by one thread at a time.
// write() may block (back-pressure) and returns the upload's error, which is sticky.
class RemoteUpload {
 public:
  virtual ~RemoteUpload() = default;  // an unfinished upload is abandoned (nothing named)
  virtual Status write(std::span<const uint8_t> data) = 0;
  // Ends the file and makes its content durable in the store (xorbs and shard uploaded); the
  // path is not named yet: commitFiles() does that.
  virtual Result<UploadedContent> finish() = 0;
};

// One path → content binding of a commitFiles() batch.
struct RemoteAdd {
  std::string path;
  std::string xet_hash;
  int64_t mtime_ms = 0;
};

class Remote {
 public:
  virtual ~Remote() = default;

  // Immediate children of `dir` (one level). Entries whose path is deeper than one level
  // below `dir` stand for the immediate subdirectory they are in. A directory that does not
  // exist may be reported either as ENOENT or as an empty listing (buckets cannot tell).
  virtual Result<std::vector<RemoteEntry>> listDirectory(const std::string& dir) = 0;

  // Metadata of one file (a HEAD on the Hub). ENOENT when no file exists at `path`;
  // directories are implicit and also give ENOENT.
  virtual Result<RemoteEntry> stat(const std::string& path) = 0;

  // Reads bytes [offset, offset + out.size()) of the version `file` describes into `out`.
  // Returns the number of bytes stored, which is less than out.size() only at end of file.
  virtual Result<size_t> read(const RemoteEntry& file, uint64_t offset, std::span<uint8_t> out) = 0;

  // True for repos and read-only mounts: the Vfs answers every mutation with EROFS.
  virtual bool readOnly() const = 0;

  // A cheap token that changes whenever anything in the remote may have changed (bucket
  // updatedAt, repo sha). The poller skips a round when it is unchanged. An implementation
  // that has no such probe returns an empty string, which means "always poll".
  virtual Result<std::string> revision() { return std::string(); }

  // --- writes (buckets). Read-only remotes keep these defaults, which answer EROFS. ---

  // Starts uploading the bytes of a new file version.
  virtual Result<std::unique_ptr<RemoteUpload>> beginUpload() {
    return Error(EROFS, "read-only remote");
  }
  // A hint before uploading a new version of a file whose bytes were copied from `base` (a
  // version read from this remote): an implementation may learn base's chunks so the upload
  // references what is unchanged instead of sending it again. Best effort: it never fails and
  // uploads are correct without it. It may read all of `base`, so it is never called on the
  // read path nor under a lock.
  virtual void learnBase(const RemoteEntry& base) { (void)base; }
  // One atomic batch: binds every `adds` path to its (already uploaded or already stored)
  // content, then deletes every `deletes` path. Rename is add(new, same hash) + delete(old):
  // no byte is uploaded again.
  virtual Status commitFiles(std::span<const RemoteAdd> adds,
                             std::span<const std::string> deletes) {
    (void)adds;
    (void)deletes;
    return Error(EROFS, "read-only remote");
  }
};

}  // namespace hfm::vfs
