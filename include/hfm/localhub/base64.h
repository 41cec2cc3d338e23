// Base64 (RFC 4648 §4, padded) and base64url (§5, unpadded) codecs used by hf-local-hub for
// commit file contents, Xet tokens and pagination cursors. Decoders reject any character
// outside their alphabet and return nullopt rather than guessing.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace hfm::localhub {

std::string base64Encode(std::string_view data);
// Accepts padded or unpadded input; ignores no whitespace.
std::optional<std::string> base64Decode(std::string_view text);

std::string base64UrlEncode(std::string_view data);
// Accepts unpadded or padded input.
std::optional<std::string> base64UrlDecode(std::string_view text);

}  // namespace hfm::localhub
