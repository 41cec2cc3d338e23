#include "hfm/mount/hub_remote.h"

#include <algorithm>
#include <cstring>

#include "hfm/util/log.h"
#include "hfm/xet/hashing.h"
#include "hfm/xet/upload_session.h"

namespace hfm::mount {

HubRemote::HubRemote(std::shared_ptr<const hub::HubClient> hub,
                     std::shared_ptr<cache::ChunkFetcher> fetcher, bool read_only)
    : hub_(std::move(hub)), fetcher_(std::move(fetcher)), read_only_(read_only) {}

HubRemote::HubRemote(std::shared_ptr<const hub::HubClient> hub,
                     std::shared_ptr<cache::ChunkFetcher> fetcher, bool read_only,
                     std::shared_ptr<xet::CasWriter> cas_writer)
    : hub_(std::move(hub)),
      fetcher_(std::move(fetcher)),
      cas_writer_(std::move(cas_writer)),
      dedup_index_(std::make_shared<xet::DedupIndex>()),
      known_files_(std::make_shared<KnownFiles>(kKnownFiles, dedup_index_)),
      read_only_(read_only || cas_writer_ == nullptr) {}

namespace {

class OwningCasWriter final : public xet::CasWriter {
 public:
  OwningCasWriter(std::shared_ptr<http::HttpClient> http,
                  std::shared_ptr<http::XetTokenProvider> tokens)
      : http_(std::move(http)), tokens_(std::move(tokens)), client_(*http_, *tokens_) {}
  Result<bool> uploadXorb(const xet::MerkleHash& hash, std::span<const uint8_t> body) override {
    return client_.uploadXorb(hash, body);
  }
  Status uploadShard(std::span<const uint8_t> shard) override { return client_.uploadShard(shard); }
  Result<std::optional<xet::Shard>> queryDedup(const xet::MerkleHash& chunk_hash) override {
    return client_.queryDedup(chunk_hash);
  }

 private:
  std::shared_ptr<http::HttpClient> http_;
  std::shared_ptr<http::XetTokenProvider> tokens_;
  xet::CasWriteClient client_;
};

// One file, one session: a failure stays with its file. Chunks are shared through the index.
class HubUpload final : public vfs::RemoteUpload {
 public:
  HubUpload(std::shared_ptr<xet::CasWriter> cas, std::shared_ptr<xet::DedupIndex> index,
            std::shared_ptr<HubRemote::KnownFiles> known_files)
      : cas_(std::move(cas)),
        known_files_(std::move(known_files)),
        session_(
            std::make_unique<xet::UploadSession>(*cas_, xet::UploadOptions{}, std::move(index))),
        writer_(session_->beginFile()) {}
  ~HubUpload() override {
    writer_.reset();  // before the session it belongs to
    session_.reset();
  }
  HubUpload(const HubUpload&) = delete;
  HubUpload& operator=(const HubUpload&) = delete;

  Status write(std::span<const uint8_t> data) override {
    if (writer_ == nullptr) return Error(EIO, "upload already finished");
    return writer_->write(data);
  }

  Result<vfs::UploadedContent> finish() override {
    if (writer_ == nullptr) return Error(EIO, "upload already finished");
    auto file = writer_->finish();
    writer_.reset();
    if (!file) return file.error().withContext("finishing the upload");
    HFM_TRY(session_->commit());
    const auto stats = session_->stats();
    spdlog::debug(
        "upload: {} bytes, {} new chunks, {} dedup chunks ({} queries, {} hits), {} xorbs",
        stats.bytes_in, stats.new_chunks, stats.dedup_chunks, stats.dedup_queries,
        stats.dedup_query_hits, stats.xorbs_uploaded);
    known_files_->add(file->file_hash);  // its chunks are in the index: nothing to learn
    return vfs::UploadedContent{file->file_hash.hex(), file->size};
  }

 private:
  std::shared_ptr<xet::CasWriter> cas_;
  std::shared_ptr<HubRemote::KnownFiles> known_files_;
  std::unique_ptr<xet::UploadSession> session_;
  std::unique_ptr<xet::UploadSession::FileWriter> writer_;
};

}  // namespace

std::shared_ptr<xet::CasWriter> HubRemote::makeCasWriter(
    std::shared_ptr<http::HttpClient> http, std::shared_ptr<http::XetTokenProvider> tokens) {
  return std::make_shared<OwningCasWriter>(std::move(http), std::move(tokens));
}

Result<std::unique_ptr<vfs::RemoteUpload>> HubRemote::beginUpload() {
  if (read_only_) return Error(EROFS, "read-only mount");
  return std::unique_ptr<vfs::RemoteUpload>(
      std::make_unique<HubUpload>(cas_writer_, dedup_index_, known_files_));
}

void HubRemote::learnBase(const vfs::RemoteEntry& base) {
  if (read_only_ || base.xet_hash.empty() || base.size == 0) return;
  const auto file = xet::MerkleHash::fromHex(base.xet_hash);
  if (!file || !known_files_->add(*file)) return;
  // A base larger than the whole index is learned up to the index's capacity (its beginning):
  // walking further would only fetch and hash chunks the index cannot keep.
  const size_t capacity = dedup_index_->capacity();
  std::vector<xet::DedupIndex::KnownChunk> chunks;
  bool full = false;
  Status walked =
      fetcher_->forEachChunk(*file, base.size, [&](const cache::FileChunk& chunk) -> Status {
        if (chunks.size() >= capacity) {
          full = true;
          return Error(ECANCELED, "the dedup index is full");
        }
        chunks.push_back({xet::chunkHash(chunk.bytes), chunk.xorb, chunk.index});
        return okStatus();
      });
  if (!walked && !full) {
    known_files_->remove(*file);  // the next upload may try again
    spdlog::info(
        "dedup: cannot learn the chunks of {} ({}); unchanged chunks may be uploaded again",
        base.path, walked.error().message());
    return;
  }
  dedup_index_->addChunks(chunks);
  if (!chunks.empty()) known_files_->setSample(*file, chunks.front().hash);
  spdlog::debug("dedup: learned {} chunks of {} ({} bytes)", chunks.size(), base.path, base.size);
}

bool HubRemote::KnownFiles::add(const xet::MerkleHash& file) {
  std::lock_guard lock(mu_);
  auto [it, added] = samples_.try_emplace(file);
  if (!added) {
    if (!it->second || index_->contains(*it->second)) return false;
    it->second.reset();  // its chunks were evicted: learn it again
    order_.remove(file);
  }
  order_.push_front(file);
  while (order_.size() > capacity_) {
    samples_.erase(order_.back());
    order_.pop_back();
  }
  return true;
}

void HubRemote::KnownFiles::setSample(const xet::MerkleHash& file, const xet::MerkleHash& chunk) {
  std::lock_guard lock(mu_);
  if (auto it = samples_.find(file); it != samples_.end()) it->second = chunk;
}

void HubRemote::KnownFiles::remove(const xet::MerkleHash& file) {
  std::lock_guard lock(mu_);
  if (samples_.erase(file) != 0) order_.remove(file);
}

Status HubRemote::commitFiles(std::span<const vfs::RemoteAdd> adds,
                              std::span<const std::string> deletes) {
  if (read_only_) return Error(EROFS, "read-only mount");
  std::vector<hub::BatchOp> ops;
  ops.reserve(adds.size() + deletes.size());
  for (const auto& add : adds)
    ops.push_back(hub::BatchOp::addFile(add.path, add.xet_hash, add.mtime_ms));
  for (const auto& path : deletes) ops.push_back(hub::BatchOp::deleteFile(path));
  return hub_->batch(ops);
}

vfs::RemoteEntry HubRemote::toRemoteEntry(const hub::TreeEntry& entry) {
  vfs::RemoteEntry out;
  out.path = entry.path;
  out.is_dir = entry.is_directory;
  out.size = entry.is_directory ? 0 : entry.size;
  // Buckets carry the client's mtime, else the upload time; repos the last commit's date.
  const auto ms = entry.mtime_ms
                      ? entry.mtime_ms
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
