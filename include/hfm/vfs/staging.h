// Staging: the on-disk side of the write path. Every written file's bytes live in a staging
// file (<staging_dir>/<name>.data) until the Hub has committed them; a closed file whose commit
// has not succeeded yet also has a manifest (<staging_dir>/<name>.manifest) naming its path, so
// the next start can commit it (Vfs::recoverPending).
//
// Manifest format (text, one field per line, written to a temporary file, fsync'd, renamed
// over the manifest and the directory fsync'd, so a reader sees the old or the new manifest,
// never a mix):
//   hfm-pending 1
//   path <percent-encoded path relative to the mount root>
//   size <bytes>
//   mtime_ns <ns since the epoch>
//   data <staging file name>
//   delete <percent-encoded path>     (0..n: old paths of a renamed file, deleted in the batch)
//   end
// A manifest without the final "end" line, or with an unknown or malformed line, is corrupt.
//
// A delete queued for the next batch (advanced-mode unlink) is kept as <staging_dir>/<name>.delete,
// written the same way and removed once a batch carrying it succeeded:
//   hfm-delete 1
//   path <percent-encoded path>
//   time_ns <ns since the epoch when it was queued>
//   end
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "hfm/util/result.h"

namespace hfm::vfs::staging {

struct Manifest {
  std::string path;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  std::string data;                  // staging file name (no directory)
  std::vector<std::string> deletes;  // paths deleted in the same commit batch
};

std::string serializeManifest(const Manifest& m);
// Parses a manifest; EINVAL with what is wrong for a corrupt one.
Result<Manifest> parseManifest(const std::string& text);

struct DeleteRecord {
  std::string path;
  int64_t time_ns = 0;
};

std::string serializeDelete(const DeleteRecord& d);
// Parses a delete record; EINVAL with what is wrong for a corrupt one.
Result<DeleteRecord> parseDelete(const std::string& text);

// Writes `text` to `dir`/`name` atomically and durably (temp file + fsync + rename + dir fsync).
Status writeFileAtomic(const std::string& dir, const std::string& name, const std::string& text);
Result<std::string> readSmallFile(const std::string& path, size_t max_bytes);

// Full pread/pwrite (retrying short transfers and EINTR). pread stops early only at EOF.
Result<size_t> preadFull(int fd, uint64_t offset, std::span<uint8_t> out);
Status pwriteFull(int fd, uint64_t offset, std::span<const uint8_t> data);

// pwriteFull into a staging file whose size before the write is `old_size`. When the write
// fails (the staging filesystem is full: ENOSPC, also for EDQUOT; else EIO), the file is cut
// back to `old_size`, so a failed extension leaves neither a hole nor a half-written tail and
// the blocks it took are free again. Bytes below `old_size` may be partly overwritten.
Status pwriteOrRollback(int fd, uint64_t offset, std::span<const uint8_t> data, uint64_t old_size);

// This process's random prefix of uniqueName() (16 hex digits).
std::string runId();

// A name no earlier run used: 16 random hex digits and a counter.
std::string uniqueName();

// True for names uniqueName() produces (so a scan never touches foreign files).
bool isStagingName(const std::string& stem);

}  // namespace hfm::vfs::staging
