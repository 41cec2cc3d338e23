// Fuzzes the serialized-chunk decoder (xorb upload bodies and CAS byte ranges): any input must
// decode or fail cleanly; whatever decodes must survive re-encoding with every scheme.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "hfm/xet/compression.h"

using namespace hfm::xet;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  (void)parseChunkHeader(in);
  std::vector<uint8_t> out;
  auto sizes = decodeChunks(in, out);
  if (!sizes.ok()) return 0;

  // Property: decoded chunks re-serialize (any scheme) and decode back to the same bytes.
  size_t total = 0;
  for (uint32_t s : *sizes) total += s;
  if (total != out.size()) std::abort();
  static constexpr CompressionScheme kSchemes[] = {
      CompressionScheme::kNone, CompressionScheme::kLz4, CompressionScheme::kByteGrouping4Lz4,
      CompressionScheme::kAuto};
  std::vector<uint8_t> again;
  size_t pos = 0, i = 0;
  for (uint32_t s : *sizes) {
    appendSerializedChunk(std::span(out).subspan(pos, s), kSchemes[i++ % 4], again);
    pos += s;
  }
  std::vector<uint8_t> back;
  auto sizes2 = decodeChunks(again, back);
  if (!sizes2.ok()) {
    std::fprintf(stderr, "re-encoded stream does not decode: %s\n",
                 sizes2.error().message().c_str());
    std::abort();
  }
  if (*sizes2 != *sizes || back != out) {
    std::fprintf(stderr, "re-encoded stream decodes differently (%zu vs %zu chunks)\n",
                 sizes2->size(), sizes->size());
    std::abort();
  }
  return 0;
}
