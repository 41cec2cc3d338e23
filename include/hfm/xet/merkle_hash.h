// MerkleHash: the 32-byte hash used everywhere in Xet (chunks, xorbs, files, shards).
//
// Raw form is 32 bytes as stored in xorbs and shards. The textual form used in URLs, JSON and
// headers is the Xet "display" hex: the four 8-byte groups are each byte-reversed before hex
// encoding (spec §1). Ordering is lexicographic over the four little-endian u64 words.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace hfm::xet {

class MerkleHash {
 public:
  static constexpr size_t kSize = 32;
  using Bytes = std::array<uint8_t, kSize>;

  constexpr MerkleHash() : bytes_{} {}
  explicit constexpr MerkleHash(const Bytes& raw) : bytes_(raw) {}
  static MerkleHash fromRaw(std::span<const uint8_t> raw);  // raw.size() must be 32

  // Parses the 64-character display hex; nullopt on any other input.
  static std::optional<MerkleHash> fromHex(std::string_view hex);
  std::string hex() const;  // display form

  const Bytes& raw() const { return bytes_; }
  std::span<const uint8_t> span() const { return bytes_; }

  // Word i = bytes [8i, 8i+8) read little-endian.
  uint64_t word(size_t i) const {
    uint64_t w = 0;
    std::memcpy(&w, bytes_.data() + 8 * i, 8);
    return w;  // little-endian hosts only (x86-64, aarch64): enforced in merkle_hash.cpp
  }
  bool isZero() const { return *this == MerkleHash{}; }

  friend bool operator==(const MerkleHash& a, const MerkleHash& b) = default;
  friend std::strong_ordering operator<=>(const MerkleHash& a, const MerkleHash& b) {
    for (size_t i = 0; i < 4; ++i) {
      if (auto c = a.word(i) <=> b.word(i); std::is_neq(c)) return c;
    }
    return std::strong_ordering::equal;
  }

 private:
  Bytes bytes_;
};

// 32-byte BLAKE3 keys of spec §3.1.
extern const MerkleHash::Bytes kDataKey;
extern const MerkleHash::Bytes kInternalNodeKey;
extern const MerkleHash::Bytes kVerificationKey;

// BLAKE3 in keyed mode with a 32-byte key.
MerkleHash blake3Keyed(const MerkleHash::Bytes& key, std::span<const uint8_t> data);

// Incremental keyed BLAKE3, for hashing data that arrives in pieces.
class Blake3Hasher {
 public:
  explicit Blake3Hasher(const MerkleHash::Bytes& key);
  ~Blake3Hasher();
  Blake3Hasher(const Blake3Hasher&) = delete;
  Blake3Hasher& operator=(const Blake3Hasher&) = delete;
  void update(std::span<const uint8_t> data);
  MerkleHash finalize() const;

 private:
  struct State;
  State* state_;
};

}  // namespace hfm::xet

template <>
struct std::hash<hfm::xet::MerkleHash> {
  size_t operator()(const hfm::xet::MerkleHash& h) const noexcept { return h.word(0); }
};
