#include "hfm/xet/shard.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "hfm/xet/hashing.h"

namespace hfm::xet {

const std::array<uint8_t, 32> kShardMagic = {'H', 'F', 'R', 'e', 'p', 'o', 'M', 'e', 't', 'a', 'D',
                                             'a', 't', 'a', 0,   85,  105, 103, 69,  106, 123, 129,
                                             87,  131, 165, 189, 217, 92,  205, 209, 74,  169};

namespace {

// ---- little-endian writing ----------------------------------------------------------------

class Writer {
 public:
  explicit Writer(std::vector<uint8_t>& out) : out_(out) {}
  void u32(uint32_t v) { put(v, 4); }
  void u64(uint64_t v) { put(v, 8); }
  void bytes(std::span<const uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void hash(const MerkleHash& h) { bytes(h.span()); }
  void zeros(size_t n) { out_.insert(out_.end(), n, 0); }
  void bookend() {
    out_.insert(out_.end(), 32, 0xff);
    zeros(16);
  }
  size_t pos() const { return out_.size(); }
  void patchU64(size_t at, uint64_t v) {
    for (size_t i = 0; i < 8; ++i) out_[at + i] = static_cast<uint8_t>((v >> (8 * i)) & 0xff);
  }

 private:
  void put(uint64_t v, size_t n) {
    for (size_t i = 0; i < n; ++i) out_.push_back(static_cast<uint8_t>((v >> (8 * i)) & 0xff));
  }
  std::vector<uint8_t>& out_;
};

// ---- little-endian reading with bounds checks ---------------------------------------------

uint64_t loadLe(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}
uint32_t loadU32(const uint8_t* p) { return static_cast<uint32_t>(loadLe(p, 4)); }
uint64_t loadU64(const uint8_t* p) { return loadLe(p, 8); }

Error shardError(size_t offset, const std::string& what) {
  return Error::invalid("shard: " + what + " at offset " + std::to_string(offset));
}

bool isBookend(const uint8_t* rec) {
  for (size_t i = 0; i < 32; ++i) {
    if (rec[i] != 0xff) return false;
  }
  return true;
}

uint64_t truncatedHash(const MerkleHash& h) { return h.word(0); }

// ---- writer ---------------------------------------------------------------------------------

// Whether files carry verification entries: shard-wide, since "either all files in a shard have
// them or none". Empty files (no terms) have no entries either way; they inherit the shard's
// choice, or keep their own flag bit when no file has terms to decide it.
Result<bool> shardHasVerification(const Shard& shard) {
  bool any = false;
  for (const auto& f : shard.files) any = any || !f.verification.empty();
  for (size_t i = 0; i < shard.files.size(); ++i) {
    const auto& f = shard.files[i];
    if (f.terms.size() > std::numeric_limits<uint32_t>::max()) {
      return Error::invalid("shard file " + std::to_string(i) + " has too many terms");
    }
    if (!f.verification.empty() && f.verification.size() != f.terms.size()) {
      return Error::invalid("shard file " + f.file_hash.hex() + " has " +
                            std::to_string(f.verification.size()) + " verification hashes for " +
                            std::to_string(f.terms.size()) + " terms");
    }
    if (any && f.verification.empty() && !f.terms.empty()) {
      return Error::invalid("shard file " + f.file_hash.hex() +
                            " lacks verification hashes while other files have them");
    }
  }
  return any;
}

struct Layout {
  std::vector<ShardLookupEntry> file_lookup;
  std::vector<ShardLookupEntry> xorb_lookup;
  std::vector<ShardChunkLookupEntry> chunk_lookup;
  size_t cas_info_offset = 0;
  size_t cas_end = 0;
};

Result<Layout> writeSections(const Shard& shard, uint64_t footer_size, const MerkleHash& hmac_key,
                             std::vector<uint8_t>& out) {
  HFM_ASSIGN_OR_RETURN(const bool verified, shardHasVerification(shard));
  Layout layout;
  Writer w(out);
  w.bytes(kShardMagic);
  w.u64(kShardHeaderVersion);
  w.u64(footer_size);

  uint64_t record = 0;  // 48-byte records since the section start (lookup indices)
  for (const auto& f : shard.files) {
    if (record > std::numeric_limits<uint32_t>::max()) return Error::invalid("shard too large");
    layout.file_lookup.push_back({truncatedHash(f.file_hash), static_cast<uint32_t>(record)});
    const bool with_verification =
        verified || (f.terms.empty() && (f.flags & kFileFlagWithVerification) != 0);
    uint32_t flags = 0;
    if (with_verification) flags |= kFileFlagWithVerification;
    if (f.sha256) flags |= kFileFlagWithMetadataExt;
    w.hash(f.file_hash);
    w.u32(flags);
    w.u32(static_cast<uint32_t>(f.terms.size()));
    w.u64(0);
    for (const auto& t : f.terms) {
      w.hash(t.xorb_hash);
      w.u32(t.xorb_flags);
      w.u32(t.unpacked_bytes);
      w.u32(t.chunk_start);
      w.u32(t.chunk_end);
    }
    if (with_verification) {
      for (const auto& v : f.verification) {
        w.hash(v);
        w.zeros(16);
      }
    }
    if (f.sha256) {
      w.hash(*f.sha256);
      w.zeros(16);
    }
    record += 1 + f.terms.size() * (with_verification ? 2 : 1) + (f.sha256 ? 1 : 0);
  }
  w.bookend();

  layout.cas_info_offset = w.pos();
  record = 0;
  for (const auto& x : shard.xorbs) {
    if (x.chunks.size() > std::numeric_limits<uint32_t>::max() ||
        record > std::numeric_limits<uint32_t>::max()) {
      return Error::invalid("shard too large");
    }
    const auto xorb_record = static_cast<uint32_t>(record);
    layout.xorb_lookup.push_back({truncatedHash(x.hash), xorb_record});
    w.hash(x.hash);
    w.u32(x.flags);
    w.u32(static_cast<uint32_t>(x.chunks.size()));
    w.u32(x.num_bytes_in_xorb);
    w.u32(x.num_bytes_on_disk);
    for (size_t i = 0; i < x.chunks.size(); ++i) {
      const auto& c = x.chunks[i];
      const MerkleHash stored = hmac_key.isZero() ? c.hash : hmacChunkHash(c.hash, hmac_key);
      layout.chunk_lookup.push_back({truncatedHash(stored), xorb_record, static_cast<uint32_t>(i)});
      w.hash(stored);
      w.u32(c.offset);
      w.u32(c.size);
      w.u32(c.flags);
      w.u32(0);
    }
    record += 1 + x.chunks.size();
  }
  w.bookend();
  layout.cas_end = w.pos();
  return layout;
}

}  // namespace

uint64_t ShardFile::size() const {
  uint64_t total = 0;
  for (const auto& t : terms) total += t.unpacked_bytes;
  return total;
}

Result<std::vector<uint8_t>> serializeUploadShard(const Shard& shard) {
  std::vector<uint8_t> out;
  HFM_TRY(writeSections(shard, 0, MerkleHash{}, out));
  return out;
}

Result<std::vector<uint8_t>> serializeStoredShard(const Shard& shard,
                                                  const StoredShardOptions& options) {
  std::vector<uint8_t> out;
  HFM_ASSIGN_OR_RETURN(Layout layout,
                       writeSections(shard, kShardFooterSize, options.hmac_key, out));
  auto by_key = [](const auto& a, const auto& b) {
    return a.key != b.key ? a.key < b.key : a.index < b.index;
  };
  std::sort(layout.file_lookup.begin(), layout.file_lookup.end(), by_key);
  std::sort(layout.xorb_lookup.begin(), layout.xorb_lookup.end(), by_key);
  std::sort(layout.chunk_lookup.begin(), layout.chunk_lookup.end(),
            [](const ShardChunkLookupEntry& a, const ShardChunkLookupEntry& b) {
              if (a.key != b.key) return a.key < b.key;
              if (a.xorb_index != b.xorb_index) return a.xorb_index < b.xorb_index;
              return a.chunk_index < b.chunk_index;
            });

  Writer w(out);
  ShardFooter f;
  f.file_info_offset = kShardHeaderSize;
  f.cas_info_offset = layout.cas_info_offset;
  f.file_lookup_offset = w.pos();
  f.file_lookup_num_entry = layout.file_lookup.size();
  for (const auto& e : layout.file_lookup) {
    w.u64(e.key);
    w.u32(e.index);
  }
  f.xorb_lookup_offset = w.pos();
  f.xorb_lookup_num_entry = layout.xorb_lookup.size();
  for (const auto& e : layout.xorb_lookup) {
    w.u64(e.key);
    w.u32(e.index);
  }
  f.chunk_lookup_offset = w.pos();
  f.chunk_lookup_num_entry = layout.chunk_lookup.size();
  for (const auto& e : layout.chunk_lookup) {
    w.u64(e.key);
    w.u32(e.xorb_index);
    w.u32(e.chunk_index);
  }
  for (const auto& x : shard.xorbs) {
    f.stored_bytes_on_disk += x.num_bytes_on_disk;
    f.stored_bytes += x.num_bytes_in_xorb;
  }
  for (const auto& file : shard.files) f.materialized_bytes += file.size();
  f.footer_offset = w.pos();

  w.u64(f.version);
  w.u64(f.file_info_offset);
  w.u64(f.cas_info_offset);
  w.u64(f.file_lookup_offset);
  w.u64(f.file_lookup_num_entry);
  w.u64(f.xorb_lookup_offset);
  w.u64(f.xorb_lookup_num_entry);
  w.u64(f.chunk_lookup_offset);
  w.u64(f.chunk_lookup_num_entry);
  w.hash(options.hmac_key);
  w.u64(options.creation_timestamp);
  w.u64(options.key_expiry);
  w.zeros(48);
  w.u64(f.stored_bytes_on_disk);
  w.u64(f.materialized_bytes);
  w.u64(f.stored_bytes);
  w.u64(f.footer_offset);
  return out;
}

Result<Shard> parseShard(std::span<const uint8_t> bytes) {
  if (bytes.size() < kShardHeaderSize) {
    return Error::invalid("shard: " + std::to_string(bytes.size()) +
                          " bytes, too short for the 48-byte header");
  }
  if (std::memcmp(bytes.data(), kShardMagic.data(), kShardMagic.size()) != 0) {
    return shardError(0, "bad magic tag (not an MDB shard)");
  }
  if (const uint64_t v = loadU64(bytes.data() + 32); v != kShardHeaderVersion) {
    return shardError(32, "unsupported header version " + std::to_string(v));
  }
  const uint64_t footer_size = loadU64(bytes.data() + 40);
  if (footer_size != 0 && footer_size != kShardFooterSize) {
    return shardError(40, "unsupported footer_size " + std::to_string(footer_size));
  }
  if (bytes.size() - kShardHeaderSize < footer_size) {
    return shardError(kShardHeaderSize,
                      "too short for the " + std::to_string(footer_size) + "-byte footer");
  }
  // Sections live in [48, end); the footer, if any, occupies the last 200 bytes.
  const size_t end = bytes.size() - footer_size;
  size_t pos = kShardHeaderSize;
  auto records_left = [&] { return (end - pos) / kShardRecordSize; };
  auto need = [&](uint64_t n, const char* what) -> Status {
    if (n > records_left()) {
      return shardError(pos, std::string(what) + " count " + std::to_string(n) +
                                 " exceeds the remaining " + std::to_string(records_left()) +
                                 " records");
    }
    return okStatus();
  };

  Shard shard;
  std::vector<uint32_t> file_records;  // record index of each file header
  std::optional<bool> verified;
  uint64_t record = 0;
  while (true) {
    if (records_left() < 1) return shardError(pos, "file section not terminated by a bookend");
    const uint8_t* rec = bytes.data() + pos;
    if (isBookend(rec)) {
      pos += kShardRecordSize;
      break;
    }
    ShardFile f;
    f.file_hash = MerkleHash::fromRaw(std::span<const uint8_t>(rec, 32));
    f.flags = loadU32(rec + 32);
    const uint32_t n = loadU32(rec + 36);
    const bool with_verification = (f.flags & kFileFlagWithVerification) != 0;
    const bool with_ext = (f.flags & kFileFlagWithMetadataExt) != 0;
    if (verified && *verified != with_verification) {
      return shardError(pos, "inconsistent verification flags between files");
    }
    verified = with_verification;
    file_records.push_back(static_cast<uint32_t>(std::min<uint64_t>(record, UINT32_MAX)));
    pos += kShardRecordSize;
    const uint64_t body =
        static_cast<uint64_t>(n) * (with_verification ? 2 : 1) + (with_ext ? 1 : 0);
    HFM_TRY(need(body, "file entry"));
    f.terms.reserve(n);
    for (uint32_t i = 0; i < n; ++i, pos += kShardRecordSize) {
      const uint8_t* e = bytes.data() + pos;
      FileTerm t;
      t.xorb_hash = MerkleHash::fromRaw(std::span<const uint8_t>(e, 32));
      t.xorb_flags = loadU32(e + 32);
      t.unpacked_bytes = loadU32(e + 36);
      t.chunk_start = loadU32(e + 40);
      t.chunk_end = loadU32(e + 44);
      if (t.chunk_end <= t.chunk_start) {
        return shardError(pos, "file term with empty or reversed chunk range [" +
                                   std::to_string(t.chunk_start) + ", " +
                                   std::to_string(t.chunk_end) + ")");
      }
      if (isBookend(e)) return shardError(pos, "bookend inside a file's term list");
      f.terms.push_back(t);
    }
    if (with_verification) {
      f.verification.reserve(n);
      for (uint32_t i = 0; i < n; ++i, pos += kShardRecordSize) {
        f.verification.push_back(MerkleHash::fromRaw(bytes.subspan(pos, 32)));
      }
    }
    if (with_ext) {
      f.sha256 = MerkleHash::fromRaw(bytes.subspan(pos, 32));
      pos += kShardRecordSize;
    }
    record += 1 + body;
    shard.files.push_back(std::move(f));
  }

  const size_t cas_info_offset = pos;
  std::vector<uint32_t> xorb_records;
  record = 0;
  while (true) {
    if (records_left() < 1) return shardError(pos, "CAS section not terminated by a bookend");
    const uint8_t* rec = bytes.data() + pos;
    if (isBookend(rec)) {
      pos += kShardRecordSize;
      break;
    }
    ShardXorb x;
    x.hash = MerkleHash::fromRaw(std::span<const uint8_t>(rec, 32));
    x.flags = loadU32(rec + 32);
    const uint32_t n = loadU32(rec + 36);
    x.num_bytes_in_xorb = loadU32(rec + 40);
    x.num_bytes_on_disk = loadU32(rec + 44);
    xorb_records.push_back(static_cast<uint32_t>(std::min<uint64_t>(record, UINT32_MAX)));
    pos += kShardRecordSize;
    HFM_TRY(need(n, "xorb chunk"));
    x.chunks.reserve(n);
    for (uint32_t i = 0; i < n; ++i, pos += kShardRecordSize) {
      const uint8_t* e = bytes.data() + pos;
      if (isBookend(e)) return shardError(pos, "bookend inside a xorb's chunk list");
      XorbChunkEntry c;
      c.hash = MerkleHash::fromRaw(std::span<const uint8_t>(e, 32));
      c.offset = loadU32(e + 32);
      c.size = loadU32(e + 36);
      c.flags = loadU32(e + 40);
      x.chunks.push_back(c);
    }
    record += 1 + n;
    shard.xorbs.push_back(std::move(x));
  }
  const size_t cas_end = pos;

  if (footer_size == 0) {
    if (pos != bytes.size()) {
      return shardError(pos, std::to_string(bytes.size() - pos) +
                                 " trailing bytes after the CAS bookend of a footer-less shard");
    }
    return shard;
  }

  const size_t fo = end;
  const uint8_t* p = bytes.data() + fo;
  ShardFooter f;
  f.version = loadU64(p);
  f.file_info_offset = loadU64(p + 8);
  f.cas_info_offset = loadU64(p + 16);
  f.file_lookup_offset = loadU64(p + 24);
  f.file_lookup_num_entry = loadU64(p + 32);
  f.xorb_lookup_offset = loadU64(p + 40);
  f.xorb_lookup_num_entry = loadU64(p + 48);
  f.chunk_lookup_offset = loadU64(p + 56);
  f.chunk_lookup_num_entry = loadU64(p + 64);
  f.chunk_hash_hmac_key = MerkleHash::fromRaw(std::span<const uint8_t>(p + 72, 32));
  f.shard_creation_timestamp = loadU64(p + 104);
  f.shard_key_expiry = loadU64(p + 112);
  f.stored_bytes_on_disk = loadU64(p + 168);
  f.materialized_bytes = loadU64(p + 176);
  f.stored_bytes = loadU64(p + 184);
  f.footer_offset = loadU64(p + 192);
  if (f.version != kShardFooterVersion) {
    return shardError(fo, "unsupported footer version " + std::to_string(f.version));
  }
  if (f.footer_offset != fo) {
    return shardError(fo + 192, "footer_offset " + std::to_string(f.footer_offset) +
                                    " != actual footer position " + std::to_string(fo));
  }
  if (f.file_info_offset != kShardHeaderSize) {
    return shardError(fo + 8, "file_info_offset " + std::to_string(f.file_info_offset) + " != 48");
  }
  if (f.cas_info_offset != cas_info_offset) {
    return shardError(fo + 16, "cas_info_offset " + std::to_string(f.cas_info_offset) +
                                   " != end of file section " + std::to_string(cas_info_offset));
  }

  // Lookup tables: each non-empty table must sit between the CAS bookend and the footer.
  auto table = [&](uint64_t offset, uint64_t count, size_t entry, size_t field_at,
                   const char* name) -> Result<const uint8_t*> {
    if (count == 0) return static_cast<const uint8_t*>(nullptr);
    if (offset < cas_end || offset > fo || count > (fo - offset) / entry) {
      return shardError(fo + field_at, std::string(name) + " lookup table (offset " +
                                           std::to_string(offset) + ", " + std::to_string(count) +
                                           " entries) out of bounds");
    }
    return bytes.data() + offset;
  };
  HFM_ASSIGN_OR_RETURN(const uint8_t* fl,
                       table(f.file_lookup_offset, f.file_lookup_num_entry, 12, 24, "file"));
  HFM_ASSIGN_OR_RETURN(const uint8_t* xl,
                       table(f.xorb_lookup_offset, f.xorb_lookup_num_entry, 12, 40, "xorb"));
  HFM_ASSIGN_OR_RETURN(const uint8_t* cl,
                       table(f.chunk_lookup_offset, f.chunk_lookup_num_entry, 16, 56, "chunk"));
  if (f.file_lookup_num_entry != 0 && f.file_lookup_num_entry != shard.files.size()) {
    return shardError(fo + 32, "file lookup has " + std::to_string(f.file_lookup_num_entry) +
                                   " entries for " + std::to_string(shard.files.size()) + " files");
  }
  if (f.xorb_lookup_num_entry != 0 && f.xorb_lookup_num_entry != shard.xorbs.size()) {
    return shardError(fo + 48, "xorb lookup has " + std::to_string(f.xorb_lookup_num_entry) +
                                   " entries for " + std::to_string(shard.xorbs.size()) + " xorbs");
  }
  size_t total_chunks = 0;
  for (const auto& x : shard.xorbs) total_chunks += x.chunks.size();
  if (f.chunk_lookup_num_entry != 0 && f.chunk_lookup_num_entry != total_chunks) {
    return shardError(fo + 64, "chunk lookup has " + std::to_string(f.chunk_lookup_num_entry) +
                                   " entries for " + std::to_string(total_chunks) + " chunks");
  }

  // Every lookup row must be sorted and point at a record whose hash truncates to its key.
  auto check_simple = [&](const uint8_t* t, uint64_t count, const std::vector<uint32_t>& records,
                          auto hash_of, std::vector<ShardLookupEntry>& dst,
                          const char* name) -> Status {
    uint64_t prev = 0;
    for (uint64_t i = 0; i < count; ++i) {
      ShardLookupEntry e{loadU64(t + 12 * i), loadU32(t + 12 * i + 8)};
      if (i > 0 && e.key < prev) return shardError(0, std::string(name) + " lookup not sorted");
      prev = e.key;
      auto it = std::lower_bound(records.begin(), records.end(), e.index);
      if (it == records.end() || *it != e.index ||
          truncatedHash(hash_of(static_cast<size_t>(it - records.begin()))) != e.key) {
        return shardError(0, std::string(name) + " lookup entry " + std::to_string(i) +
                                 " does not match the " + name + " at record " +
                                 std::to_string(e.index));
      }
      dst.push_back(e);
    }
    return okStatus();
  };
  HFM_TRY(check_simple(
      fl, f.file_lookup_num_entry, file_records, [&](size_t k) { return shard.files[k].file_hash; },
      shard.file_lookup, "file"));
  HFM_TRY(check_simple(
      xl, f.xorb_lookup_num_entry, xorb_records, [&](size_t k) { return shard.xorbs[k].hash; },
      shard.xorb_lookup, "xorb"));
  uint64_t prev = 0;
  for (uint64_t i = 0; i < f.chunk_lookup_num_entry; ++i) {
    ShardChunkLookupEntry e{loadU64(cl + 16 * i), loadU32(cl + 16 * i + 8),
                            loadU32(cl + 16 * i + 12)};
    if (i > 0 && e.key < prev) return shardError(0, "chunk lookup not sorted");
    prev = e.key;
    auto it = std::lower_bound(xorb_records.begin(), xorb_records.end(), e.xorb_index);
    const size_t xi = static_cast<size_t>(it - xorb_records.begin());
    if (it == xorb_records.end() || *it != e.xorb_index ||
        e.chunk_index >= shard.xorbs[xi].chunks.size() ||
        truncatedHash(shard.xorbs[xi].chunks[e.chunk_index].hash) != e.key) {
      return shardError(0, "chunk lookup entry " + std::to_string(i) +
                               " does not match a chunk of the CAS section");
    }
    shard.chunk_lookup.push_back(e);
  }
  shard.footer = f;
  return shard;
}

ShardChunkIndex::ShardChunkIndex(const Shard& shard)
    : key_(shard.footer ? shard.footer->chunk_hash_hmac_key : MerkleHash{}) {
  for (size_t x = 0; x < shard.xorbs.size(); ++x) {
    const auto& chunks = shard.xorbs[x].chunks;
    for (size_t c = 0; c < chunks.size(); ++c)
      map_.try_emplace(chunks[c].hash, ChunkLocation{x, c});
  }
}

std::optional<ChunkLocation> ShardChunkIndex::find(const MerkleHash& plain_chunk_hash) const {
  const MerkleHash k = key_.isZero() ? plain_chunk_hash : hmacChunkHash(plain_chunk_hash, key_);
  auto it = map_.find(k);
  if (it == map_.end()) return std::nullopt;
  return it->second;
}

}  // namespace hfm::xet
