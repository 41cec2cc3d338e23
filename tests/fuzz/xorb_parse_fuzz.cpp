// Fuzzes the xorb object parser (upload body or stored form with V0/V1 footer) and the
// footer-only reader used on cached objects.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "hfm/xet/xorb.h"

using namespace hfm::xet;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  auto footer = parseXorbFooter(in);
  auto x = parseXorb(in);
  if (!x.ok()) return 0;
  // A footer accepted inside parseXorb is accepted on its own too. (The converse need not hold:
  // an upload body's last chunk may happen to end with footer-shaped bytes.)
  if (x->footer.has_value() && !footer.ok()) std::abort();

  // Property: the chunk part rebuilt into a stored object parses to the same xorb.
  const size_t chunks_end = x->chunk_boundary_offsets.back();
  auto stored = toStoredXorb(in.first(chunks_end), 0x01020304);
  if (!stored.ok()) std::abort();
  auto again = verifyXorb(*stored, x->hash);
  if (!again.ok() || again->data != x->data || again->chunks != x->chunks) std::abort();
  return 0;
}
