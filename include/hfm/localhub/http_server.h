// hf-local-hub's HTTP/1.1 server, on libmicrohttpd: a pool of internal polling threads,
// keep-alive, request bodies buffered up to a per-path limit (413 past it, nothing read
// further), and responses streamed from HttpResponse pieces. A response whose body is a single
// FileSlice goes out with sendfile; HEAD answers carry headers and Content-Length only (a
// handler may answer HEAD with no body and an explicit Content-Length header).
//
// Paths and query parameters are percent-decoded here (a bad escape is a 400 before any
// handler runs). The optional fault injector applies to every request, so client retries are
// exercised: 5xx answers, connection resets without an answer, slow answers, and truncated
// bodies (Content-Length announced, fewer bytes sent, connection closed).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "hfm/localhub/http_types.h"
#include "hfm/util/result.h"

namespace hfm::localhub {

struct FaultOptions {
  double rate = 0.0;  // probability in [0, 1] that a request gets one of the enabled faults
  bool error_5xx = false;
  bool reset = false;
  bool slow = false;
  bool truncate = false;
  int latency_ms = 0;  // added to every request, fault or not

  bool any() const { return rate > 0 && (error_5xx || reset || slow || truncate); }
  // Parses "5xx,reset,slow,truncate" (any subset); error on an unknown name.
  static Result<FaultOptions> parseKinds(const std::string& list, double rate, int latency_ms);
};

struct ServerOptions {
  std::string host = "127.0.0.1";  // "127.0.0.1", "::1", "0.0.0.0", "::" or another literal
  uint16_t port = 0;               // 0 picks a free port
  unsigned threads = 8;
  FaultOptions faults;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// Largest body accepted for a request path: 80 MiB for CAS uploads (xorbs are at most
// 64 MiB), 64 MiB for repo commits (inline base64 files), 8 MiB elsewhere.
uint64_t maxBodyBytes(const std::string& method, const std::string& path);

// Percent-decodes `text`; `plus_is_space` for query strings. nullopt on a malformed escape.
std::optional<std::string> percentDecode(std::string_view text, bool plus_is_space);

class HttpServer {
 public:
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  static Result<std::unique_ptr<HttpServer>> start(const ServerOptions& options,
                                                   HttpHandler handler);

  uint16_t port() const { return port_; }
  // "http://127.0.0.1:PORT" (IPv6 hosts bracketed).
  std::string baseUrl() const;
  // Stops accepting, closes connections and joins the threads. Idempotent.
  void stop();

  struct Impl;

 private:
  HttpServer() = default;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
  std::string host_;
};

}  // namespace hfm::localhub
