// MountOptions and MountSource: the command line shared by hf-mount-fuse, hf-mount-nfs and
// `hf-mount start` (which validates it before spawning a backend).
//
// Same flags, defaults and shape as the reference hf-mount (hf-mount-reference.md §6):
//   hf-mount-fuse [OPTIONS] bucket <ns/name>[/<subdir>] <mountpoint>
//   hf-mount-fuse [OPTIONS] repo <[datasets/|spaces/]ns/name>[/<subdir>] <mountpoint>
//                 [--revision R]
// Options go before the source subcommand. The token is never required on the command line:
// --hf-token, --token-file, HF_TOKEN, $HF_HOME/token and HF_MOUNT_TOKEN_FD (a pipe the
// supervisor uses so the token never appears in argv) are resolved by the hub layer.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>

namespace hfm::app {

enum class SourceKind { kBucket, kRepo };

struct MountSource {
  SourceKind kind = SourceKind::kBucket;
  std::string id;          // as typed, including any /subdir
  std::string mountpoint;  // as typed
  std::string revision = "main";
  std::string label() const;  // "bucket ns/name" | "repo ns/name" (pid files, status)
};

enum class CacheMode { kChunk, kFile };

struct MountOptions {
  std::string hf_token;  // from --hf-token or HF_TOKEN; never logged
  std::string token_file;
  std::string hub_endpoint = "https://huggingface.co";
  std::string cache_dir = "/tmp/hf-mount-cache";
  uint64_t cache_size = 10'000'000'000ULL;
  CacheMode cache_mode = CacheMode::kChunk;
  bool no_disk_cache = false;
  uint64_t max_staging_size = 0;
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  bool read_only = false;
  bool advanced_writes = false;
  uint64_t poll_interval_secs = 30;
  uint32_t poll_listing_concurrency = 4;
  uint64_t metadata_ttl_ms = 10'000;
  bool metadata_ttl_minimal = false;
  uint32_t max_threads = 16;
  uint64_t read_fetch_timeout_ms = 30'000;
  uint64_t flush_debounce_ms = 2'000;
  uint64_t flush_max_batch_window_ms = 30'000;
  uint64_t flush_shutdown_timeout_ms = 45'000;
  bool direct_io = false;
  bool no_filter_os_files = false;
  bool fuse_owner_only = false;
  bool no_fuse_passthrough = false;  // FUSE: never hand file-cache copies to the kernel
  uint64_t inode_soft_limit = 0;
  uint64_t lru_sweep_interval_ms = 5'000;
  bool overlay = false;
  // NFS backend only.
  uint16_t nfs_port = 0;  // 0 = pick a free port
  bool no_mount = false;
};

enum class Backend { kFuse, kNfs };

// Registers every option on `app` (bound to `options`) and the `bucket` / `repo` source
// subcommands (bound to `source`); exactly one source subcommand is required.
void addMountCommandLine(CLI::App& app, MountOptions& options, MountSource& source,
                         Backend backend);

// Trims a trailing '/' from the endpoint and checks cross-option rules (e.g. --overlay with
// --read-only, --poll-listing-concurrency >= 1). Returns an error message, or nullopt if valid.
std::optional<std::string> finalizeMountOptions(MountOptions& options, const MountSource& source);

// Human-readable "Config: ..." line with every effective option (token redacted).
std::string describeMountOptions(const MountOptions& options);

}  // namespace hfm::app
