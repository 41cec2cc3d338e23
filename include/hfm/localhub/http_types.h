// Transport-neutral HTTP request/response for hf-local-hub handlers.
//
// The HTTP server (libmicrohttpd) parses requests into HttpRequest and serialises
// HttpResponse; handlers (Hub API, CAS API) never see the server library. A body is a list of
// pieces, each in-memory bytes or a slice of a file on disk, so large xorb ranges are sent
// with sendfile and multipart/byteranges answers interleave part headers with file slices.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace hfm::localhub {

// Case-insensitive header map (keys are stored lowercased).
struct HeaderLess {
  bool operator()(const std::string& a, const std::string& b) const;
};
using Headers = std::map<std::string, std::string, HeaderLess>;

struct HttpRequest {
  std::string method;                             // "GET", "HEAD", "POST", ...
  std::string path;                               // percent-decoded path, without the query string
  std::string raw_path;                           // path exactly as sent (still percent-encoded)
  std::multimap<std::string, std::string> query;  // decoded query parameters
  Headers headers;
  std::string body;
  std::string remote_addr;

  // First value of a query parameter, or `fallback`.
  std::string queryParam(const std::string& key, const std::string& fallback = {}) const;
  // Header value, or `fallback`.
  std::string header(const std::string& key, const std::string& fallback = {}) const;
};

struct FileSlice {
  std::string path;
  uint64_t offset = 0;
  uint64_t length = 0;
};

using BodyPiece = std::variant<std::string, FileSlice>;

struct HttpResponse {
  int status = 200;
  Headers headers;
  std::vector<BodyPiece> body;

  uint64_t contentLength() const;

  static HttpResponse text(int status, std::string body,
                           std::string content_type = "text/plain; charset=utf-8");
  static HttpResponse json(int status, const std::string& json_body);
};

}  // namespace hfm::localhub
