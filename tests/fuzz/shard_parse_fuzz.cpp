// Fuzzes the shard reader (upload form, stored form with lookup tables and footer, HMAC'd dedup
// answers). Whatever parses must re-serialize and parse back to the same files and xorbs.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "hfm/xet/shard.h"

using namespace hfm::xet;

namespace {

bool sameContent(const Shard& a, const Shard& b) {
  if (a.files.size() != b.files.size() || a.xorbs != b.xorbs) return false;
  for (size_t i = 0; i < a.files.size(); ++i) {
    const auto& x = a.files[i];
    const auto& y = b.files[i];
    if (x.file_hash != y.file_hash || x.terms != y.terms || x.verification != y.verification ||
        x.sha256 != y.sha256) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto shard = parseShard(std::span<const uint8_t>(data, size));
  if (!shard.ok()) return 0;
  ShardChunkIndex index(*shard);
  for (const auto& x : shard->xorbs) {
    if (!x.chunks.empty()) (void)index.find(x.chunks.front().hash);
  }
  // Re-serialize as stored (hashes already keyed, so no key) and as upload form.
  auto up = serializeUploadShard(*shard);
  auto st = serializeStoredShard(*shard);
  if (!up.ok() || !st.ok()) std::abort();
  auto up2 = parseShard(*up);
  auto st2 = parseShard(*st);
  if (!up2.ok() || !st2.ok()) std::abort();
  if (!sameContent(*shard, *up2) || !sameContent(*shard, *st2)) std::abort();
  return 0;
}
