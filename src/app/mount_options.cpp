#include "hfm/app/mount_options.h"

#include <sstream>

namespace hfm::app {

std::string MountSource::label() const {
  return std::string(kind == SourceKind::kBucket ? "bucket " : "repo ") + id;
}

void addMountCommandLine(CLI::App& app, MountOptions& o, MountSource& source, Backend backend) {
  app.add_option("--hf-token", o.hf_token, "Hugging Face token (default: $HF_TOKEN)")
      ->envname("HF_TOKEN");
  app.add_option("--token-file", o.token_file,
                 "File holding the token, re-read for rotation; overrides --hf-token");
  app.add_option("--hub-endpoint", o.hub_endpoint, "Hub URL")
      ->envname("HF_ENDPOINT")
      ->capture_default_str();
  app.add_option("--cache-dir", o.cache_dir, "Chunk cache and staging directory")
      ->capture_default_str();
  app.add_option("--cache-size", o.cache_size, "Disk cache bound in bytes")->capture_default_str();
  app.add_option("--cache-mode", o.cache_mode, "Disk cache mode: chunk or file")
      ->transform(
          CLI::CheckedTransformer(std::map<std::string, CacheMode>{{"chunk", CacheMode::kChunk},
                                                                   {"file", CacheMode::kFile}},
                                  CLI::ignore_case))
      ->default_str("chunk");
  app.add_flag("--no-disk-cache", o.no_disk_cache, "Keep no chunk cache on disk");
  app.add_option("--max-staging-size", o.max_staging_size,
                 "Bytes of clean staging files kept (0 = no cleanup)")
      ->capture_default_str();
  app.add_option("--uid", o.uid, "Owner uid of every entry (default: current uid)");
  app.add_option("--gid", o.gid, "Owner gid of every entry (default: current gid)");
  app.add_flag("--read-only", o.read_only, "Mount read-only (repos always are)");
  app.add_flag("--advanced-writes", o.advanced_writes,
               "Random writes, seek, overwrite and append through local staging files");
  app.add_option("--poll-interval-secs", o.poll_interval_secs,
                 "Seconds between remote change polls (0 disables)")
      ->capture_default_str();
  app.add_option("--poll-listing-concurrency", o.poll_listing_concurrency,
                 "Parallel directory listings per poll")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--metadata-ttl-ms", o.metadata_ttl_ms,
                 "Kernel entry/attr timeout and listing revalidation interval")
      ->capture_default_str();
  app.add_flag("--metadata-ttl-minimal", o.metadata_ttl_minimal, "Revalidate on every lookup");
  app.add_option("--max-threads", o.max_threads, "FUSE worker threads")->capture_default_str();
  app.add_option("--read-fetch-timeout-ms", o.read_fetch_timeout_ms,
                 "Timeout of one read's fetch (0 = unbounded)")
      ->capture_default_str();
  app.add_option("--flush-debounce-ms", o.flush_debounce_ms,
                 "Quiet time before a modified file is uploaded")
      ->capture_default_str();
  app.add_option("--flush-max-batch-window-ms", o.flush_max_batch_window_ms,
                 "Longest a modified file waits for upload")
      ->capture_default_str();
  app.add_option("--flush-shutdown-timeout-ms", o.flush_shutdown_timeout_ms,
                 "Longest shutdown waits for pending uploads")
      ->capture_default_str();
  if (backend == Backend::kFuse) {
    app.add_flag("--direct-io", o.direct_io, "Bypass the kernel page cache");
    app.add_flag("--fuse-owner-only", o.fuse_owner_only, "Do not set allow_other");
    app.add_flag("--no-fuse-passthrough", o.no_fuse_passthrough,
                 "Read --cache-mode file copies through hf-mount, not kernel passthrough");
  }
  app.add_flag("--no-filter-os-files", o.no_filter_os_files,
               "Show OS junk files (.DS_Store, ._*, Thumbs.db, ...)");
  app.add_option("--inode-soft-limit", o.inode_soft_limit,
                 "Evict unused inodes above this count (0 = never)")
      ->capture_default_str();
  app.add_option("--lru-sweep-interval-ms", o.lru_sweep_interval_ms, "Inode eviction interval")
      ->capture_default_str();
  app.add_flag("--overlay", o.overlay, "Local writable layer over the source");
  if (backend == Backend::kNfs) {
    app.add_option("--nfs-port", o.nfs_port, "NFS port on 127.0.0.1 (0 = a free port)")
        ->capture_default_str();
    app.add_flag("--no-mount", o.no_mount, "Serve NFS only; do not mount");
  }

  auto* bucket = app.add_subcommand("bucket", "Mount a Storage Bucket (read-write)");
  bucket->add_option("id", source.id, "ns/name[/subdir]")->required();
  bucket->add_option("mountpoint", source.mountpoint, "Where to mount")->required();
  bucket->callback([&source] { source.kind = SourceKind::kBucket; });
  auto* repo = app.add_subcommand("repo", "Mount a model, dataset or space repo (read-only)");
  repo->add_option("id", source.id, "[datasets/|spaces/]ns/name[/subdir]")->required();
  repo->add_option("mountpoint", source.mountpoint, "Where to mount")->required();
  repo->add_option("--revision", source.revision, "Branch, tag or commit")->capture_default_str();
  repo->callback([&source] { source.kind = SourceKind::kRepo; });
  app.require_subcommand(1);
}

std::optional<std::string> finalizeMountOptions(MountOptions& o, const MountSource& source) {
  while (o.hub_endpoint.size() > 1 && o.hub_endpoint.back() == '/') o.hub_endpoint.pop_back();
  if (o.hub_endpoint.rfind("http://", 0) != 0 && o.hub_endpoint.rfind("https://", 0) != 0) {
    return "--hub-endpoint must start with http:// or https://: " + o.hub_endpoint;
  }
  if (o.overlay && o.read_only) return "--overlay cannot be combined with --read-only";
  if (o.poll_listing_concurrency < 1) return "--poll-listing-concurrency must be >= 1";
  if (o.max_threads < 1) return "--max-threads must be >= 1";
  if (source.mountpoint.empty()) return "missing mount point";
  if (o.cache_dir.empty()) return "--cache-dir must not be empty";
  return std::nullopt;
}

std::string describeMountOptions(const MountOptions& o) {
  std::ostringstream s;
  s << "Config: hub_endpoint=" << o.hub_endpoint
    << " token=" << (o.hf_token.empty() ? "none" : "***")
    << " token_file=" << (o.token_file.empty() ? "none" : o.token_file)
    << " cache_dir=" << o.cache_dir << " cache_size=" << o.cache_size
    << " cache_mode=" << (o.cache_mode == CacheMode::kChunk ? "chunk" : "file")
    << " no_disk_cache=" << o.no_disk_cache << " read_only=" << o.read_only
    << " advanced_writes=" << o.advanced_writes << " poll_interval_secs=" << o.poll_interval_secs
    << " metadata_ttl_ms=" << o.metadata_ttl_ms
    << " metadata_ttl_minimal=" << o.metadata_ttl_minimal << " max_threads=" << o.max_threads
    << " flush_debounce_ms=" << o.flush_debounce_ms
    << " flush_max_batch_window_ms=" << o.flush_max_batch_window_ms
    << " flush_shutdown_timeout_ms=" << o.flush_shutdown_timeout_ms
    << " filter_os_files=" << !o.no_filter_os_files;
  return s.str();
}

}  // namespace hfm::app
