#include "hfm/mount/hub_remote.h"

#include <algorithm>
#include <cstring>

namespace hfm::mount {

HubRemote::HubRemote(std::shared_ptr<const hub::HubClient> hub,
                     std::shared_ptr<cache::ChunkFetcher> fetcher, bool read_only)
    : hub_(std::move(hub)), fetcher_(std::move(fetcher)), read_only_(read_only) {}

vfs::RemoteEntry HubRemote::toRemoteEntry(const hub::TreeEntry& entry) {
  vfs::RemoteEntry out;
  out.path = entry.path;
  out.is_dir = entry.is_directory;
  out.size = entry.is_directory ? 0 : entry.size;
  // Buckets carry the client's mtime, else the upload time; repos the last commit's date.
  const auto ms = entry.mtime_ms ? entry.mtime_ms
                                 : (entry.uploaded_at_ms ? entry.uploaded_at_ms : entry.last_commit_ms);
  out.mtime_ns = ms ? *ms * 1'000'000 : 0;
  out.xet_hash = entry.xet_hash;
  out.etag = !entry.lfs_sha256.empty() ? entry.lfs_sha256 : entry.oid;
  return out;
}

Result<std::vector<vfs::RemoteEntry>> HubRemote::listDirectory(const std::string& dir) {
  HFM_ASSIGN_OR_RETURN(auto entries, hub_->listDirectory(dir));
  std::vector<vfs::RemoteEntry> out;
  out.reserve(entries.size());
  for (const auto& e : entries) out.push_back(toRemoteEntry(e));
  return out;
}

Result<vfs::RemoteEntry> HubRemote::stat(const std::string& path) {
  if (path.empty()) return Error(ENOENT, "the root is a directory");
  HFM_ASSIGN_OR_RETURN(auto meta, hub_->head(path));
  if (!meta.size) return Error::io("HEAD " + path + ": the Hub sent no size");
  vfs::RemoteEntry out;
  out.path = path;
  out.size = *meta.size;
  out.mtime_ns = meta.last_modified_ms ? *meta.last_modified_ms * 1'000'000 : 0;
  out.xet_hash = meta.xet_hash;
  out.etag = meta.etag;
  return out;
}

Result<size_t> HubRemote::read(const vfs::RemoteEntry& file, uint64_t offset,
                               std::span<uint8_t> out) {
  if (offset >= file.size || out.empty()) return size_t{0};
  const size_t want = static_cast<size_t>(std::min<uint64_t>(out.size(), file.size - offset));
  if (file.xet_hash.empty()) return readPlain(file, offset, out.first(want));
  const auto hash = xet::MerkleHash::fromHex(file.xet_hash);
  if (!hash) return Error::io("bad xet hash for " + file.path + ": " + file.xet_hash);
  auto got = fetcher_->read(*hash, file.size, offset, out.first(want));
  if (!got) return got.error().withContext("read " + file.path);
  return got;
}

Result<size_t> HubRemote::readPlain(const vfs::RemoteEntry& file, uint64_t offset,
                                    std::span<uint8_t> out) {
  size_t received = 0;
  bool overflow = false;
  const auto on_body = [&](uint64_t at, std::string_view data) {
    if (at + data.size() > out.size()) {
      overflow = true;
      return false;
    }
    std::memcpy(out.data() + at, data.data(), data.size());
    received = std::max<size_t>(received, static_cast<size_t>(at + data.size()));
    return true;
  };
  const http::ByteRange range{offset, offset + out.size() - 1};
  auto response = hub_->download(file.path, range, on_body);
  if (overflow) return Error::io("read " + file.path + ": the Hub sent more bytes than asked");
  if (!response) return response.error().withContext("read " + file.path);
  // After a CDN redirect the Hub's own headers (the version's ETag) are the redirect's.
  const auto hubHeader = [&](std::string_view name) {
    if (auto it = response->redirect_headers.find(name); it != response->redirect_headers.end()) {
      return it->second;
    }
    return response->header(name);
  };
  std::string etag = hubHeader("x-linked-etag");
  if (etag.empty()) etag = hubHeader("etag");
  std::erase(etag, '"');
  if (etag.rfind("W/", 0) == 0) etag = etag.substr(2);
  if (!file.etag.empty() && !etag.empty() && etag != file.etag) {
    return Error(ESTALE, "read " + file.path + ": the file changed on the Hub since it was opened");
  }
  if (response->status == 200 && offset > 0) {
    return Error::io("read " + file.path + ": the Hub ignored the Range header");
  }
  if (received != out.size()) {
    return Error::io("read " + file.path + ": short body (" + std::to_string(received) + " of " +
                     std::to_string(out.size()) + " bytes)");
  }
  return received;
}

Result<std::string> HubRemote::revision() {
  HFM_ASSIGN_OR_RETURN(auto info, hub_->info());
  if (info.sha) return *info.sha;
  if (info.last_modified_ms) return std::to_string(*info.last_modified_ms);
  return std::string();
}

}  // namespace hfm::mount
