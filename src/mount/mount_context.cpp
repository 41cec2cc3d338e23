#include "hfm/mount/mount_context.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <utility>

#include "hfm/util/log.h"

namespace hfm::mount {
namespace {

// The Vfs's view of the whole-file cache.
class FileCacheCopies : public vfs::LocalCopyStore {
 public:
  explicit FileCacheCopies(std::shared_ptr<cache::FileCache> cache) : cache_(std::move(cache)) {}

  std::optional<vfs::LocalCopy> open(const std::string& xet_hash, uint64_t size) override {
    auto file = cache_->open(xet_hash, size);
    if (!file) return std::nullopt;
    return vfs::LocalCopy{file->fd(), file->size(), file};
  }
  void request(const std::string& xet_hash, uint64_t size,
               std::function<Status(uint64_t, std::span<uint8_t>)> read) override {
    cache_->download(xet_hash, size, std::move(read));
  }

 private:
  const std::shared_ptr<cache::FileCache> cache_;
};

std::string sourceWord(const hub::SourceId& id) {
  return id.isBucket() ? "bucket " + id.id
                       : std::string(hub::repoTypeName(id.repo_type)) + " " + id.id;
}

// Rewrites the first error of a mount into the one line a user should see.
Error startupError(const Error& e, const hub::SourceId& id, const hub::Credentials& creds,
                   const std::string& endpoint) {
  switch (e.code()) {
    case ENOENT:
      return {ENOENT, sourceWord(id) + " not found on " + endpoint + " (" + e.message() + ")"};
    case EACCES:
      return {EACCES, "access to " + sourceWord(id) + " denied with the token from " +
                          creds.describeSource() + " (" + e.message() + ")"};
    default:
      return {e.code(), "cannot reach " + endpoint + ": " + e.message()};
  }
}

// A directory name for `text`: letters, digits, '.', '_' and '-' kept, '/' → "--", any other
// byte as "+XX".
std::string fsSafe(const std::string& text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) != 0 || c == '.' || c == '_' || c == '-') {
      out += ch;
    } else if (c == '/') {
      out += "--";
    } else {
      out += '+';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (out.empty() || out == "." || out == "..") out = "+" + out;
  return out;
}

}  // namespace

std::string MountContext::stagingKey(const std::string& endpoint, const app::MountSource& source) {
  std::string host = endpoint;
  if (const auto scheme = host.find("://"); scheme != std::string::npos) {
    host = host.substr(scheme + 3);
  }
  while (!host.empty() && host.back() == '/') host.pop_back();
  const char* kind = source.kind == app::SourceKind::kBucket ? "bucket" : "repo";
  return fsSafe(host) + "_" + kind + "_" + fsSafe(source.id);
}

Result<std::unique_ptr<MountContext>> MountContext::open(
    const app::MountOptions& options, const app::MountSource& source,
    std::optional<std::string> token_override) {
  auto ctx = std::make_unique<MountContext>();
  {
    auto parsed = source.kind == app::SourceKind::kBucket
                      ? hub::parseBucketId(source.id)
                      : hub::parseRepoId(source.id, source.revision);
    if (!parsed) return parsed.error();
    ctx->source = std::move(parsed).value();
  }
  ctx->read_only = options.read_only || !ctx->source.isBucket();

  hub::CredentialOptions cred_options;
  if (token_override && !token_override->empty()) {
    cred_options.hf_token = token_override;
  } else if (!options.hf_token.empty()) {
    cred_options.hf_token = options.hf_token;
  }
  if (!options.token_file.empty()) cred_options.token_file = options.token_file;
  ctx->credentials =
      std::make_shared<const hub::Credentials>(hub::Credentials::resolve(cred_options));

  http::ClientOptions http_options;
  if (options.read_fetch_timeout_ms > 0) {
    http_options.request_timeout = std::chrono::milliseconds(options.read_fetch_timeout_ms);
  }
  ctx->http = std::make_shared<http::HttpClient>(http_options);

  hub::HubOptions hub_options;
  hub_options.endpoint = options.hub_endpoint;
  ctx->hub =
      std::make_shared<hub::HubClient>(hub_options, ctx->source, ctx->credentials, ctx->http);
  {
    auto info = ctx->hub->info();
    if (!info)
      return startupError(info.error(), ctx->source, *ctx->credentials, options.hub_endpoint);
    ctx->info = std::move(info).value();
  }

  const auto access = ctx->read_only ? hub::XetAccess::kRead : hub::XetAccess::kWrite;
  ctx->xet_tokens = hub::XetTokenCache::forHub(ctx->hub, access);
  if (auto first = ctx->xet_tokens->get(false); !first) {
    return startupError(first.error(), ctx->source, *ctx->credentials, options.hub_endpoint)
        .withContext("xet token");
  }
  ctx->cas = std::make_unique<xet::CasClient>(*ctx->http, *ctx->xet_tokens);

  cache::ChunkCacheOptions cache_options;
  cache_options.cache_dir = std::filesystem::path(options.cache_dir);
  cache_options.capacity_bytes = options.cache_size;
  // --cache-mode file keeps whole files instead of chunks (the reference turns the chunk cache
  // off in that mode; reads not served by a copy use a memory chunk cache).
  const bool file_mode = options.cache_mode == app::CacheMode::kFile && !options.no_disk_cache;
  cache_options.disk = !options.no_disk_cache && !file_mode;
  {
    auto opened = cache::openChunkCache(cache_options);
    if (!opened) return opened.error().withContext("chunk cache in " + options.cache_dir);
    ctx->chunk_cache = std::shared_ptr<cache::ChunkCache>(std::move(opened).value());
  }
  ctx->fetcher = std::make_shared<cache::ChunkFetcher>(*ctx->cas, ctx->chunk_cache);
  if (ctx->read_only) {
    ctx->remote = std::make_shared<HubRemote>(ctx->hub, ctx->fetcher, true);
  } else {
    ctx->remote = std::make_shared<HubRemote>(ctx->hub, ctx->fetcher, false,
                                              HubRemote::makeCasWriter(ctx->http, ctx->xet_tokens));
  }

  vfs::VfsConfig& config = ctx->vfs_config;
  if (file_mode) {
    auto opened = cache::FileCache::open(std::filesystem::path(options.cache_dir) / "files",
                                         options.cache_size);
    if (opened) {
      ctx->file_cache = std::shared_ptr<cache::FileCache>(std::move(opened).value());
      config.local_copies = std::make_shared<FileCacheCopies>(ctx->file_cache);
    } else if (opened.error().code() == EBUSY) {
      spdlog::warn("{}; files are read without local copies", opened.error().message());
    } else {
      return opened.error().withContext("file cache in " + options.cache_dir);
    }
  }
  config.uid = options.uid.value_or(::getuid());
  config.gid = options.gid.value_or(::getgid());
  config.metadata_ttl = std::chrono::milliseconds(options.metadata_ttl_ms);
  config.metadata_ttl_minimal = options.metadata_ttl_minimal;
  config.filter_os_files = !options.no_filter_os_files;
  config.direct_io = options.direct_io;
  config.root_mtime_ns = ctx->info.last_modified_ms.value_or(0) * 1'000'000;
  if (options.read_fetch_timeout_ms > 0) {
    config.prefetch.read_timeout = std::chrono::milliseconds(options.read_fetch_timeout_ms);
  }
  config.writes.advanced = options.advanced_writes;
  config.writes.flush_debounce = std::chrono::milliseconds(options.flush_debounce_ms);
  config.writes.flush_max_batch_window =
      std::chrono::milliseconds(options.flush_max_batch_window_ms);
  config.writes.max_staging_size = options.max_staging_size;
  if (!ctx->read_only) {
    // Written bytes wait here until the Hub has them, across restarts: one directory per
    // hub + source, private to the user (unsaved data).
    const auto pending = std::filesystem::path(options.cache_dir) / "pending";
    const auto dir = pending / stagingKey(options.hub_endpoint, source);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      return Error(EIO,
                   "cannot create the staging directory " + dir.string() + ": " + ec.message());
    }
    ::chmod(pending.c_str(), 0700);
    if (::chmod(dir.c_str(), 0700) != 0) {
      return Error(EIO, "cannot make " + dir.string() + " private: " + std::strerror(errno));
    }
    config.writes.staging_dir = dir.string();
  }
  return ctx;
}

std::string MountContext::describe(const std::string& mountpoint,
                                   const std::string& backend) const {
  std::string text = "Mounting " + source.display() + " at " + mountpoint + " (" +
                     (read_only ? "read-only" : "read-write") + ", backend=" + backend + ")";
  if (info.sha) text += " commit " + *info.sha;
  return text;
}

}  // namespace hfm::mount
