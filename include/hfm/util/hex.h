// Plain lowercase hex encoding of byte strings (no Xet word reversal; see xet/merkle_hash.h).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hfm::util {

std::string toHex(std::span<const uint8_t> bytes);
// Returns nullopt unless `hex` has even length and only [0-9a-fA-F].
std::optional<std::vector<uint8_t>> fromHex(std::string_view hex);

}  // namespace hfm::util
