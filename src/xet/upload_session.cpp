#include "hfm/xet/upload_session.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <ctime>

#include "hfm/util/hex.h"
#include "hfm/xet/hashing.h"

namespace hfm::xet {

std::string UploadedFile::sha256Hex() const { return util::toHex(sha256); }

// Incremental SHA-256 (OpenSSL EVP) for the shard's metadata extension and LFS pointers.
struct UploadSession::FileWriter::ShaState {
  ShaState() : ctx(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr); }
  ~ShaState() { EVP_MD_CTX_free(ctx); }
  ShaState(const ShaState&) = delete;
  ShaState& operator=(const ShaState&) = delete;
  EVP_MD_CTX* ctx;
};

UploadSession::FileWriter::FileWriter(UploadSession& session)
    : session_(session), sha_(std::make_unique<ShaState>()) {}

UploadSession::FileWriter::~FileWriter() = default;

Status UploadSession::FileWriter::write(std::span<const uint8_t> data) {
  if (finished_) return Error::invalid("write after finish");
  EVP_DigestUpdate(sha_->ctx, data.data(), data.size());
  size_ += data.size();
  while (!data.empty()) {
    const auto cut = chunker_.nextBoundary(data);
    if (!cut) {
      pending_.insert(pending_.end(), data.begin(), data.end());
      break;
    }
    pending_.insert(pending_.end(), data.begin(), data.begin() + static_cast<ptrdiff_t>(*cut));
    HFM_TRY(placeChunk(pending_));
    pending_.clear();
    data = data.subspan(*cut);
  }
  std::lock_guard lock(session_.mu_);
  return session_.stickyErrorLocked();
}

Status UploadSession::FileWriter::placeChunk(std::span<const uint8_t> chunk) {
  const MerkleHash hash = chunkHash(chunk);
  const bool first = chunks_.empty();
  bool query = false;
  if (session_.options_.global_dedup && isGlobalDedupEligible(hash, first) &&
      (first || chunks_since_query_ >= session_.options_.min_chunks_between_dedup_queries)) {
    query = true;
    chunks_since_query_ = 0;
  } else {
    ++chunks_since_query_;
  }
  HFM_ASSIGN_OR_RETURN(Location at, session_.place(chunk, hash, first, query));
  chunks_.push_back({hash, static_cast<uint32_t>(chunk.size()), std::move(at.xorb), at.index});
  return okStatus();
}

Result<UploadedFile> UploadSession::FileWriter::finish() {
  if (finished_) return Error::invalid("file already finished");
  finished_ = true;
  chunker_.finish();
  if (!pending_.empty()) {
    HFM_TRY(placeChunk(pending_));
    pending_.clear();
  }
  UploadedFile out;
  out.size = size_;
  std::vector<ChunkInfo> leaves;
  leaves.reserve(chunks_.size());
  for (const auto& c : chunks_) leaves.push_back({c.hash, c.size});
  out.file_hash = fileHash(leaves);
  unsigned int len = 0;
  EVP_DigestFinal_ex(sha_->ctx, out.sha256.data(), &len);

  FinishedFile done;
  done.file_hash = out.file_hash;
  done.chunks = std::move(chunks_);
  done.sha256_stored = sha256AsMerkleHash(out.sha256);
  std::lock_guard lock(session_.mu_);
  HFM_TRY(session_.stickyErrorLocked());
  session_.stats_.bytes_in += size_;
  session_.finished_.push_back(std::move(done));
  return out;
}

UploadSession::UploadSession(CasWriter& cas, UploadOptions options,
                             std::shared_ptr<DedupIndex> shared_index)
    : cas_(cas),
      options_(options),
      shared_(std::move(shared_index)),
      open_xorb_(options.compression) {
  uploader_ = std::thread([this] { uploaderLoop(); });
}

UploadSession::~UploadSession() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  uploader_.join();
}

std::unique_ptr<UploadSession::FileWriter> UploadSession::beginFile() {
  return std::unique_ptr<FileWriter>(new FileWriter(*this));
}

Status UploadSession::stickyErrorLocked() const {
  if (failure_) return *failure_;
  return okStatus();
}

std::optional<UploadSession::Location> UploadSession::findKnownLocked(
    const MerkleHash& hash) const {
  if (auto it = known_.find(hash); it != known_.end()) return it->second;
  for (const auto& index : keyed_) {
    if (auto it = index.chunks.find(hmacChunkHash(hash, index.key)); it != index.chunks.end()) {
      return it->second;
    }
  }
  return std::nullopt;
}

std::optional<UploadSession::Location> UploadSession::findLocked(const MerkleHash& hash) {
  if (auto at = findKnownLocked(hash)) return at;
  if (!shared_) return std::nullopt;
  const auto ref = shared_->find(hash);
  if (!ref) return std::nullopt;
  auto& slot = shared_slots_[ref->xorb];
  if (!slot) slot = std::make_shared<XorbSlot>(XorbSlot{ref->xorb, true});
  return Location{slot, ref->index};
}

void UploadSession::learnDedupShard(const Shard& shard) {
  if (shard.hasHmacKey() && shard.footer->shard_key_expiry != kShardNoExpiry &&
      shard.footer->shard_key_expiry != 0 &&
      shard.footer->shard_key_expiry < static_cast<uint64_t>(std::time(nullptr))) {
    return;  // the CAS no longer honours references made through this key
  }
  std::lock_guard lock(mu_);
  KeyedIndex* keyed = nullptr;
  if (shard.hasHmacKey()) {
    const MerkleHash key = shard.footer->chunk_hash_hmac_key;
    for (auto& index : keyed_) {
      if (index.key == key) keyed = &index;
    }
    if (keyed == nullptr) keyed = &keyed_.emplace_back(KeyedIndex{key, {}});
  }
  for (const auto& xorb : shard.xorbs) {
    auto slot = std::make_shared<XorbSlot>(XorbSlot{xorb.hash, true});
    for (size_t i = 0; i < xorb.chunks.size(); ++i) {
      const Location at{slot, static_cast<uint32_t>(i)};
      if (keyed != nullptr) {
        keyed->chunks.emplace(xorb.chunks[i].hash, at);
      } else {
        known_.emplace(xorb.chunks[i].hash, at);
      }
    }
  }
}

Result<UploadSession::Location> UploadSession::place(std::span<const uint8_t> chunk,
                                                     const MerkleHash& hash, bool file_start,
                                                     bool query_dedup) {
  std::unique_lock lock(mu_);
  HFM_TRY(stickyErrorLocked());
  if (auto at = findLocked(hash)) {
    ++stats_.dedup_chunks;
    stats_.dedup_bytes += chunk.size();
    return *at;
  }
  if (query_dedup && queried_.emplace(hash, true).second) {
    ++stats_.dedup_queries;
    lock.unlock();
    auto answer = cas_.queryDedup(hash);
    if (!answer) {
      spdlog::debug("global dedup query for {} failed ({}); uploading the chunk", hash.hex(),
                    answer.error().message());
    } else if (answer->has_value()) {
      learnDedupShard(**answer);
    }
    lock.lock();
    if (answer && answer->has_value()) ++stats_.dedup_query_hits;
    HFM_TRY(stickyErrorLocked());
    if (auto at = findLocked(hash)) {
      ++stats_.dedup_chunks;
      stats_.dedup_bytes += chunk.size();
      return *at;
    }
  }
  if (!open_xorb_.fits(chunk.size())) HFM_TRY(sealOpenXorbLocked(lock));
  if (!open_slot_) open_slot_ = std::make_shared<XorbSlot>();
  HFM_TRY(open_xorb_.add(chunk, hash));
  open_flags_.push_back(file_start ? kChunkFlagGlobalDedup : 0);
  const Location at{open_slot_, static_cast<uint32_t>(open_xorb_.numChunks() - 1)};
  known_.emplace(hash, at);
  ++stats_.new_chunks;
  stats_.new_chunk_bytes += chunk.size();
  return at;
}

Status UploadSession::sealOpenXorbLocked(std::unique_lock<std::mutex>& lock) {
  if (open_xorb_.empty()) return okStatus();
  // Back-pressure: writers wait while enough sealed xorbs are already waiting for upload.
  cv_.wait(lock, [&] { return queue_.size() < options_.max_queued_xorbs || failure_; });
  HFM_TRY(stickyErrorLocked());
  SealedXorb sealed;
  sealed.xorb = open_xorb_.finish();
  sealed.flags = std::move(open_flags_);
  open_flags_.clear();
  open_slot_->hash = sealed.xorb.hash;
  open_slot_->sealed = true;
  sealed.slot = std::move(open_slot_);
  open_slot_.reset();
  queue_.push_back(std::move(sealed));
  cv_.notify_all();
  return okStatus();
}

void UploadSession::uploaderLoop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    SealedXorb item = std::move(queue_.front());
    queue_.pop_front();
    ++uploading_;
    cv_.notify_all();
    lock.unlock();
    auto uploaded = cas_.uploadXorb(item.xorb.hash, item.xorb.body);
    lock.lock();
    --uploading_;
    if (!uploaded) {
      if (!failure_) failure_ = uploaded.error().withContext("xorb " + item.xorb.hash.hex());
    } else {
      ShardXorb record;
      record.hash = item.xorb.hash;
      uint32_t start = 0;
      for (size_t i = 0; i < item.xorb.chunks.size(); ++i) {
        const auto size = static_cast<uint32_t>(item.xorb.chunks[i].size);
        record.chunks.push_back({item.xorb.chunks[i].hash, start, size, item.flags[i]});
        start += size;
      }
      record.num_bytes_in_xorb = start;
      record.num_bytes_on_disk = static_cast<uint32_t>(item.xorb.body.size());
      uploaded_xorbs_.push_back(std::move(record));
      ++stats_.xorbs_uploaded;
      stats_.xorb_bytes_uploaded += item.xorb.body.size();
    }
    cv_.notify_all();
  }
}

namespace {

// Consecutive chunks of one xorb form one term (§9 step 4), with its verification hash.
template <typename Placed>
ShardFile buildShardFile(const MerkleHash& file_hash, const std::vector<Placed>& chunks,
                         const MerkleHash& sha256_stored) {
  ShardFile file;
  file.file_hash = file_hash;
  file.sha256 = sha256_stored;
  size_t i = 0;
  while (i < chunks.size()) {
    size_t j = i + 1;
    while (j < chunks.size() && chunks[j].xorb == chunks[i].xorb &&
           chunks[j].index == chunks[j - 1].index + 1) {
      ++j;
    }
    FileTerm term;
    term.xorb_hash = chunks[i].xorb->hash;
    term.chunk_start = chunks[i].index;
    term.chunk_end = chunks[j - 1].index + 1;
    std::vector<MerkleHash> hashes;
    for (size_t k = i; k < j; ++k) {
      term.unpacked_bytes += chunks[k].size;
      hashes.push_back(chunks[k].hash);
    }
    file.terms.push_back(term);
    file.verification.push_back(verificationHash(hashes));
    i = j;
  }
  return file;
}

// Bytes a file adds to an upload shard: header, entries, verification, metadata ext.
size_t shardFileBytes(const ShardFile& f) { return kShardRecordSize * (2 + 2 * f.terms.size()); }
size_t shardXorbBytes(const ShardXorb& x) { return kShardRecordSize * (1 + x.chunks.size()); }

}  // namespace

Status UploadSession::commit() {
  std::lock_guard commit_lock(commit_mu_);
  std::vector<FinishedFile> files;
  std::vector<ShardXorb> xorbs;
  {
    std::unique_lock lock(mu_);
    HFM_TRY(stickyErrorLocked());
    HFM_TRY(sealOpenXorbLocked(lock));
    cv_.wait(lock, [&] { return (queue_.empty() && uploading_ == 0) || failure_; });
    HFM_TRY(stickyErrorLocked());
    files.swap(finished_);
    xorbs.swap(uploaded_xorbs_);
  }
  if (files.empty() && xorbs.empty()) return okStatus();

  // Split into shards under the size limit; new xorbs go in the first one (the CAS checks
  // that every xorb a shard references is stored, which they already are).
  std::vector<Shard> shards(1);
  size_t used = 3 * kShardRecordSize;
  for (const auto& x : xorbs) {
    used += shardXorbBytes(x);
    shards.back().xorbs.push_back(x);
  }
  for (const auto& f : files) {
    ShardFile file = buildShardFile(f.file_hash, f.chunks, f.sha256_stored);
    const size_t bytes = shardFileBytes(file);
    if (used + bytes > options_.max_shard_bytes && !shards.back().files.empty()) {
      shards.emplace_back();
      used = 3 * kShardRecordSize;
    }
    used += bytes;
    shards.back().files.push_back(std::move(file));
  }

  size_t sent = 0;
  Status result = okStatus();
  for (const auto& shard : shards) {
    auto bytes = serializeUploadShard(shard);
    if (!bytes) {
      result = bytes.error().withContext("shard");
      break;
    }
    if (auto st = cas_.uploadShard(*bytes); !st) {
      result = st;
      break;
    }
    ++sent;
  }
  // The first shard lists every new xorb: once it is accepted they are stored and registered,
  // so other sessions may reference them.
  if (sent > 0 && shared_) shared_->addShardXorbs(xorbs);
  std::lock_guard lock(mu_);
  stats_.shards_uploaded += sent;
  if (!result) {
    // Nothing is lost: the unsent files (and, if the first shard failed, the xorb records)
    // are retried by the next commit. Re-sending an accepted shard is harmless (idempotent).
    if (sent == 0) uploaded_xorbs_.insert(uploaded_xorbs_.begin(), xorbs.begin(), xorbs.end());
    finished_.insert(finished_.begin(), std::make_move_iterator(files.begin()),
                     std::make_move_iterator(files.end()));
  }
  return result;
}

UploadStats UploadSession::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace hfm::xet
