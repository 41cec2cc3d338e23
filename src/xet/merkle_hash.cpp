#include "hfm/xet/merkle_hash.h"

#include <blake3.h>

#include <bit>
#include <cassert>

#include "hfm/util/hex.h"

namespace hfm::xet {

static_assert(std::endian::native == std::endian::little,
              "Xet structures are little-endian; big-endian hosts are not supported");

const MerkleHash::Bytes kDataKey = {102, 151, 245, 119, 91,  149, 80,  222, 49,  53,  203,
                                    172, 165, 151, 24,  28,  157, 228, 33,  16,  155, 235,
                                    43,  88,  180, 208, 176, 75,  147, 173, 242, 41};
const MerkleHash::Bytes kInternalNodeKey = {1,   126, 197, 199, 165, 71,  41,  150, 253, 148, 102,
                                            102, 180, 138, 2,   230, 93,  221, 83,  111, 55,  199,
                                            109, 210, 248, 99,  82,  230, 74,  83,  113, 63};
const MerkleHash::Bytes kVerificationKey = {127, 24,  87,  214, 206, 86,  237, 102, 18,  127, 249,
                                            19,  231, 165, 195, 243, 164, 205, 38,  213, 181, 219,
                                            73,  230, 65,  36,  152, 127, 40,  251, 148, 195};

MerkleHash MerkleHash::fromRaw(std::span<const uint8_t> raw) {
  assert(raw.size() == kSize);
  Bytes bytes{};
  std::memcpy(bytes.data(), raw.data(), kSize);
  return MerkleHash(bytes);
}

std::optional<MerkleHash> MerkleHash::fromHex(std::string_view hex) {
  if (hex.size() != 2 * kSize) return std::nullopt;
  auto decoded = util::fromHex(hex);
  if (!decoded) return std::nullopt;
  Bytes bytes{};
  for (size_t group = 0; group < 4; ++group) {
    for (size_t i = 0; i < 8; ++i) bytes[8 * group + i] = (*decoded)[8 * group + 7 - i];
  }
  return MerkleHash(bytes);
}

std::string MerkleHash::hex() const {
  Bytes display{};
  for (size_t group = 0; group < 4; ++group) {
    for (size_t i = 0; i < 8; ++i) display[8 * group + i] = bytes_[8 * group + 7 - i];
  }
  return util::toHex(display);
}

MerkleHash blake3Keyed(const MerkleHash::Bytes& key, std::span<const uint8_t> data) {
  blake3_hasher hasher;
  blake3_hasher_init_keyed(&hasher, key.data());
  blake3_hasher_update(&hasher, data.data(), data.size());
  MerkleHash::Bytes out{};
  blake3_hasher_finalize(&hasher, out.data(), out.size());
  return MerkleHash(out);
}

struct Blake3Hasher::State {
  blake3_hasher hasher;
};

Blake3Hasher::Blake3Hasher(const MerkleHash::Bytes& key) : state_(new State) {
  blake3_hasher_init_keyed(&state_->hasher, key.data());
}
Blake3Hasher::~Blake3Hasher() { delete state_; }

void Blake3Hasher::update(std::span<const uint8_t> data) {
  blake3_hasher_update(&state_->hasher, data.data(), data.size());
}

MerkleHash Blake3Hasher::finalize() const {
  MerkleHash::Bytes out{};
  blake3_hasher_finalize(&state_->hasher, out.data(), out.size());
  return MerkleHash(out);
}

}  // namespace hfm::xet
