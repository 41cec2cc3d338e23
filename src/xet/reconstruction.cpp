// Reconstruction plan parsing/validation, multipart/byteranges parsing and decoding of fetched
// chunk ranges (see reconstruction.h).
#include "hfm/xet/reconstruction.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>

#include "hfm/xet/compression.h"

namespace hfm::xet {
namespace {

using nlohmann::json;

Error planError(const std::string& what) { return Error::io("bad reconstruction: " + what); }

Result<uint64_t> getU64(const json& obj, const char* key, const std::string& ctx) {
  if (!obj.is_object()) return planError(ctx + " is not an object");
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number_unsigned()) {
    if (it != obj.end() && it->is_number_integer() && it->get<int64_t>() >= 0) {
      return static_cast<uint64_t>(it->get<int64_t>());
    }
    return planError(ctx + "." + key + " missing or not an unsigned integer");
  }
  return it->get<uint64_t>();
}

Result<uint32_t> getU32(const json& obj, const char* key, const std::string& ctx) {
  HFM_ASSIGN_OR_RETURN(uint64_t v, getU64(obj, key, ctx));
  if (v > std::numeric_limits<uint32_t>::max()) return planError(ctx + "." + key + " too large");
  return static_cast<uint32_t>(v);
}

Result<const json*> getField(const json& obj, const char* key, const std::string& ctx) {
  if (!obj.is_object()) return planError(ctx + " is not an object");
  auto it = obj.find(key);
  if (it == obj.end()) return planError(ctx + "." + key + " missing");
  return &*it;
}

Result<ChunkRange> parseChunkRange(const json& obj, const std::string& ctx) {
  HFM_ASSIGN_OR_RETURN(uint32_t start, getU32(obj, "start", ctx));
  HFM_ASSIGN_OR_RETURN(uint32_t end, getU32(obj, "end", ctx));
  return ChunkRange{start, end};
}

Result<InclusiveByteRange> parseByteRange(const json& obj, const std::string& ctx) {
  HFM_ASSIGN_OR_RETURN(uint64_t start, getU64(obj, "start", ctx));
  HFM_ASSIGN_OR_RETURN(uint64_t end, getU64(obj, "end", ctx));
  return InclusiveByteRange{start, end};
}

Result<MerkleHash> parseHash(std::string_view hex, const std::string& ctx) {
  auto h = MerkleHash::fromHex(hex);
  if (!h) return planError(ctx + " is not a 64-hex hash");
  return *h;
}

Result<std::vector<FetchEntry>> parseV2Entries(const json& arr, const std::string& ctx) {
  if (!arr.is_array()) return planError(ctx + " is not an array");
  std::vector<FetchEntry> entries;
  for (size_t i = 0; i < arr.size(); ++i) {
    const std::string ectx = ctx + "[" + std::to_string(i) + "]";
    FetchEntry entry;
    HFM_ASSIGN_OR_RETURN(const json* url, getField(arr[i], "url", ectx));
    if (!url->is_string()) return planError(ectx + ".url is not a string");
    entry.url = url->get<std::string>();
    HFM_ASSIGN_OR_RETURN(const json* ranges, getField(arr[i], "ranges", ectx));
    if (!ranges->is_array()) return planError(ectx + ".ranges is not an array");
    for (size_t r = 0; r < ranges->size(); ++r) {
      const std::string rctx = ectx + ".ranges[" + std::to_string(r) + "]";
      HFM_ASSIGN_OR_RETURN(const json* chunks, getField((*ranges)[r], "chunks", rctx));
      HFM_ASSIGN_OR_RETURN(const json* bytes, getField((*ranges)[r], "bytes", rctx));
      HFM_ASSIGN_OR_RETURN(ChunkRange c, parseChunkRange(*chunks, rctx + ".chunks"));
      HFM_ASSIGN_OR_RETURN(InclusiveByteRange b, parseByteRange(*bytes, rctx + ".bytes"));
      entry.ranges.push_back({c, b});
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

Result<std::vector<FetchEntry>> parseV1Entries(const json& arr, const std::string& ctx) {
  if (!arr.is_array()) return planError(ctx + " is not an array");
  std::vector<FetchEntry> entries;
  for (size_t i = 0; i < arr.size(); ++i) {
    const std::string ectx = ctx + "[" + std::to_string(i) + "]";
    HFM_ASSIGN_OR_RETURN(const json* url, getField(arr[i], "url", ectx));
    if (!url->is_string()) return planError(ectx + ".url is not a string");
    HFM_ASSIGN_OR_RETURN(const json* range, getField(arr[i], "range", ectx));
    HFM_ASSIGN_OR_RETURN(const json* url_range, getField(arr[i], "url_range", ectx));
    HFM_ASSIGN_OR_RETURN(ChunkRange c, parseChunkRange(*range, ectx + ".range"));
    HFM_ASSIGN_OR_RETURN(InclusiveByteRange b, parseByteRange(*url_range, ectx + ".url_range"));
    entries.push_back(FetchEntry{url->get<std::string>(), {FetchRange{c, b}}});
  }
  return entries;
}

bool iequalsPrefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

bool parseU64(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

}  // namespace

std::string FetchEntry::rangeHeader() const {
  std::string out = "bytes=";
  for (size_t i = 0; i < ranges.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(ranges[i].bytes.start) + "-" + std::to_string(ranges[i].bytes.end);
  }
  return out;
}

uint64_t ReconstructionPlan::availableBytes() const {
  uint64_t total = 0;
  for (const auto& t : terms) total += t.unpacked_length;
  return total - std::min(total, offset_into_first_range);
}

Result<ReconstructionPlan> parseReconstruction(std::string_view text) {
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return planError("not a JSON object");
  ReconstructionPlan plan;
  HFM_ASSIGN_OR_RETURN(plan.offset_into_first_range,
                       getU64(doc, "offset_into_first_range", "plan"));
  HFM_ASSIGN_OR_RETURN(const json* terms, getField(doc, "terms", "plan"));
  if (!terms->is_array()) return planError("terms is not an array");
  for (size_t i = 0; i < terms->size(); ++i) {
    const std::string ctx = "terms[" + std::to_string(i) + "]";
    const json& t = (*terms)[i];
    HFM_ASSIGN_OR_RETURN(const json* hash, getField(t, "hash", ctx));
    if (!hash->is_string()) return planError(ctx + ".hash is not a string");
    ReconstructionTerm term;
    HFM_ASSIGN_OR_RETURN(term.xorb, parseHash(hash->get<std::string>(), ctx + ".hash"));
    HFM_ASSIGN_OR_RETURN(term.unpacked_length, getU32(t, "unpacked_length", ctx));
    HFM_ASSIGN_OR_RETURN(const json* range, getField(t, "range", ctx));
    HFM_ASSIGN_OR_RETURN(term.chunks, parseChunkRange(*range, ctx + ".range"));
    plan.terms.push_back(term);
  }
  const bool v2 = doc.contains("xorbs");
  const bool v1 = doc.contains("fetch_info");
  if (v1 == v2) return planError("expected exactly one of xorbs (V2) or fetch_info (V1)");
  plan.version = v2 ? 2 : 1;
  const json& map = v2 ? doc["xorbs"] : doc["fetch_info"];
  if (!map.is_object())
    return planError(std::string(v2 ? "xorbs" : "fetch_info") + " is not an object");
  for (auto it = map.begin(); it != map.end(); ++it) {
    const std::string ctx = std::string(v2 ? "xorbs" : "fetch_info") + "[" + it.key() + "]";
    HFM_ASSIGN_OR_RETURN(MerkleHash xorb, parseHash(it.key(), ctx));
    auto entries = v2 ? parseV2Entries(it.value(), ctx) : parseV1Entries(it.value(), ctx);
    if (!entries) return entries.error();
    auto& dst = plan.fetches[xorb];
    for (auto& e : *entries) dst.push_back(std::move(e));
  }
  HFM_TRY(validatePlan(plan));
  return plan;
}

Status validatePlan(ReconstructionPlan& plan) {
  for (size_t i = 0; i < plan.terms.size(); ++i) {
    const auto& t = plan.terms[i];
    const std::string ctx = "terms[" + std::to_string(i) + "]";
    if (t.chunks.start >= t.chunks.end) return planError(ctx + " has an empty chunk range");
    if (t.unpacked_length == 0 ||
        uint64_t{t.unpacked_length} > uint64_t{t.chunks.size()} * kMaxUncompressedChunkSize) {
      return planError(ctx + ".unpacked_length " + std::to_string(t.unpacked_length) +
                       " impossible for " + std::to_string(t.chunks.size()) + " chunks");
    }
  }
  if (plan.terms.empty()) {
    if (plan.offset_into_first_range != 0) return planError("offset without terms");
  } else if (plan.offset_into_first_range >= plan.terms[0].unpacked_length) {
    return planError("offset_into_first_range " + std::to_string(plan.offset_into_first_range) +
                     " outside the first term");
  }
  for (auto& [xorb, entries] : plan.fetches) {
    for (size_t e = 0; e < entries.size(); ++e) {
      const std::string ctx = "fetch " + xorb.hex() + "[" + std::to_string(e) + "]";
      const auto& entry = entries[e];
      if (entry.url.empty()) return planError(ctx + " has an empty url");
      if (entry.ranges.empty()) return planError(ctx + " has no ranges");
      for (size_t r = 0; r < entry.ranges.size(); ++r) {
        const auto& fr = entry.ranges[r];
        if (fr.chunks.start >= fr.chunks.end) return planError(ctx + " has an empty chunk range");
        if (fr.bytes.start > fr.bytes.end) return planError(ctx + " has an inverted byte range");
        const uint64_t n = fr.chunks.size();
        if (fr.bytes.size() < n * kChunkHeaderSize ||
            fr.bytes.size() > n * (kChunkHeaderSize + kMaxCompressedChunkSize)) {
          return planError(ctx + " byte range size " + std::to_string(fr.bytes.size()) +
                           " impossible for " + std::to_string(n) + " chunks");
        }
        if (r > 0 && (fr.bytes.start <= entry.ranges[r - 1].bytes.end ||
                      fr.chunks.start < entry.ranges[r - 1].chunks.end)) {
          return planError(ctx + " ranges overlap or are not ascending");
        }
      }
    }
  }
  plan.sources.clear();
  for (size_t i = 0; i < plan.terms.size(); ++i) {
    const auto& t = plan.terms[i];
    auto it = plan.fetches.find(t.xorb);
    std::optional<TermSource> found;
    if (it != plan.fetches.end()) {
      for (size_t e = 0; e < it->second.size() && !found; ++e) {
        const auto& ranges = it->second[e].ranges;
        for (size_t r = 0; r < ranges.size(); ++r) {
          if (ranges[r].chunks.start <= t.chunks.start && t.chunks.end <= ranges[r].chunks.end) {
            found = TermSource{e, r};
            break;
          }
        }
      }
    }
    if (!found) {
      return planError("terms[" + std::to_string(i) + "] (xorb " + t.xorb.hex() + " chunks " +
                       std::to_string(t.chunks.start) + ".." + std::to_string(t.chunks.end) +
                       ") has no fetch range");
    }
    plan.sources.push_back(*found);
  }
  return okStatus();
}

std::optional<std::string> multipartBoundary(std::string_view content_type) {
  if (!iequalsPrefix(trim(content_type), "multipart/byteranges")) return std::nullopt;
  size_t pos = 0;
  while ((pos = content_type.find(';', pos)) != std::string_view::npos) {
    ++pos;
    std::string_view param = content_type.substr(pos);
    param = param.substr(0, param.find(';'));
    param = trim(param);
    if (!iequalsPrefix(param, "boundary=")) continue;
    std::string_view value = param.substr(9);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    // RFC 2046: 1 to 70 characters.
    if (value.empty() || value.size() > 70) return std::nullopt;
    return std::string(value);
  }
  return std::nullopt;
}

std::optional<InclusiveByteRange> parseContentRange(std::string_view value) {
  value = trim(value);
  if (!iequalsPrefix(value, "bytes ")) return std::nullopt;
  value = trim(value.substr(6));
  const size_t dash = value.find('-');
  const size_t slash = value.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) {
    return std::nullopt;
  }
  InclusiveByteRange r;
  if (!parseU64(value.substr(0, dash), r.start) ||
      !parseU64(value.substr(dash + 1, slash - dash - 1), r.end) || r.start > r.end) {
    return std::nullopt;
  }
  const std::string_view total = value.substr(slash + 1);
  uint64_t t = 0;
  if (total != "*" && (!parseU64(total, t) || r.end >= t)) return std::nullopt;
  return r;
}

Result<std::vector<BodyPart>> parseMultipartByteRanges(std::string_view body,
                                                       std::string_view boundary) {
  if (boundary.empty()) return Error::io("multipart: empty boundary");
  const std::string delim = "--" + std::string(boundary);
  const std::string inner = "\r\n" + delim;
  // The first delimiter opens the body or follows a CRLF (after an optional preamble).
  size_t pos = 0;
  if (body.substr(0, delim.size()) != delim) {
    pos = body.find(inner);
    if (pos == std::string_view::npos) return Error::io("multipart: no opening boundary");
    pos += 2;
  }
  std::vector<BodyPart> parts;
  while (true) {
    pos += delim.size();
    if (body.substr(pos, 2) == "--") break;  // closing delimiter
    if (pos + 2 > body.size()) return Error::io("multipart: truncated after a delimiter");
    // Transport padding, then CRLF.
    while (pos < body.size() && (body[pos] == ' ' || body[pos] == '\t')) ++pos;
    if (body.substr(pos, 2) != "\r\n") return Error::io("multipart: malformed boundary line");
    pos += 2;
    const size_t headers_end = body.find("\r\n\r\n", pos);
    std::optional<InclusiveByteRange> range;
    size_t data_start = 0;
    if (body.substr(pos, 2) == "\r\n") {  // part without headers
      data_start = pos + 2;
    } else {
      if (headers_end == std::string_view::npos) return Error::io("multipart: truncated headers");
      data_start = headers_end + 4;
    }
    std::string_view headers = body.substr(pos, data_start - pos);
    while (!headers.empty()) {
      const size_t eol = headers.find("\r\n");
      std::string_view line = headers.substr(0, eol);
      headers = eol == std::string_view::npos ? std::string_view{} : headers.substr(eol + 2);
      if (iequalsPrefix(line, "content-range:")) {
        range = parseContentRange(line.substr(14));
        if (!range) return Error::io("multipart: bad Content-Range '" + std::string(line) + "'");
      }
    }
    if (!range) return Error::io("multipart: part without Content-Range");
    const uint64_t len = range->size();
    if (len > body.size() - data_start) return Error::io("multipart: truncated part");
    const size_t data_end = data_start + static_cast<size_t>(len);
    if (body.size() - data_end < inner.size()) {
      return Error::io("multipart: truncated (no delimiter after a part)");
    }
    if (body.substr(data_end, inner.size()) != inner) {
      return Error::io("multipart: part length disagrees with its Content-Range");
    }
    parts.push_back({*range, body.substr(data_start, static_cast<size_t>(len))});
    pos = data_end + 2;
  }
  if (parts.empty()) return Error::io("multipart: no parts");
  return parts;
}

Result<std::string_view> sliceParts(std::span<const BodyPart> parts,
                                    const InclusiveByteRange& wanted) {
  for (const auto& p : parts) {
    if (p.range.start <= wanted.start && wanted.end <= p.range.end) {
      return p.data.substr(static_cast<size_t>(wanted.start - p.range.start),
                           static_cast<size_t>(wanted.size()));
    }
  }
  return Error::io("fetch answer lacks bytes " + std::to_string(wanted.start) + "-" +
                   std::to_string(wanted.end));
}

Result<DecodedRange> decodeFetchedRange(std::span<const uint8_t> bytes, const FetchRange& range) {
  if (bytes.size() != range.bytes.size()) {
    return Error::io("fetched " + std::to_string(bytes.size()) + " bytes, expected " +
                     std::to_string(range.bytes.size()));
  }
  // Pass 1: validate the headers and size the decode buffer for the compressed chunks.
  struct Located {
    ChunkHeader header;
    size_t payload;
  };
  std::vector<Located> located;
  located.reserve(range.chunks.size());
  size_t to_decode = 0;
  for (size_t pos = 0; pos < bytes.size();) {
    if (located.size() == range.chunks.size()) {
      return Error::io("fetched range holds more than " + std::to_string(range.chunks.size()) +
                       " chunks");
    }
    auto header = parseChunkHeader(bytes.subspan(pos));
    if (!header) return Error::io("fetched chunk: " + header.error().message());
    const size_t payload = pos + kChunkHeaderSize;
    if (header->compressed_size > bytes.size() - payload) {
      return Error::io("fetched chunk truncated");
    }
    if (header->scheme != CompressionScheme::kNone) to_decode += header->uncompressed_size;
    located.push_back({*header, payload});
    pos = payload + header->compressed_size;
  }
  if (located.size() != range.chunks.size()) {
    return Error::io("fetched range holds " + std::to_string(located.size()) +
                     " chunks, expected " + std::to_string(range.chunks.size()));
  }
  // Pass 2: views; uncompressed chunks alias `bytes`, the others decode into one buffer.
  static util::BufferPool decode_buffers(4);
  DecodedRange out;
  if (to_decode > 0) out.decoded = decode_buffers.take(to_decode);
  out.chunks.reserve(located.size());
  size_t used = 0;
  for (const auto& [header, payload] : located) {
    const auto stored = bytes.subspan(payload, header.compressed_size);
    if (header.scheme == CompressionScheme::kNone) {  // sizes equal: parseChunkHeader checked
      out.chunks.push_back(stored);
      continue;
    }
    const std::span<uint8_t> dst(out.decoded.data() + used, header.uncompressed_size);
    auto st = decodeChunkPayloadInto(header, stored, dst);
    if (!st) return Error::io("fetched chunk: " + st.error().message());
    out.chunks.emplace_back(dst);
    used += header.uncompressed_size;
  }
  return out;
}

}  // namespace hfm::xet
