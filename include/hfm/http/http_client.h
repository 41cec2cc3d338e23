// HttpClient: the one HTTP/1.1 client every network-facing layer (hub, xet) goes through.
//
// Contract:
// - Thread-safe. One HttpClient is shared by the whole process; any thread may call send(),
//   sendStreaming() or sendAll() concurrently. Each call borrows a libcurl easy handle from a
//   pool and returns it afterwards, so keep-alive connections (kept inside the handle) are
//   reused by later requests from any thread. DNS results are shared across handles.
// - Every attempt uses HTTP/1.1, TCP_NODELAY, TCP keep-alive, a connect timeout and a
//   per-attempt timeout (ClientOptions, or Request::timeout). Responses are never decoded
//   (no Accept-Encoding), so range bodies are the raw stored bytes.
// - Retries (RetryPolicy): connect failures, resets, timeouts, truncated bodies (fewer bytes
//   than Content-Length) and HTTP 408, 429, 500, 502, 503, 504 are retried with jittered
//   exponential backoff. A `Retry-After: <secs|HTTP-date>` header or the IETF `RateLimit:
//   ...;t=<secs>` header replaces the backoff (capped by max_server_delay). Attempts and the
//   total time including sleeps are bounded. Every method is retried, POST included: callers
//   only POST idempotent operations (batch, xorb and shard uploads).
// - Errors: statusError() is the single place an HTTP status becomes an errno:
//   404 → ENOENT, 401/403 → EACCES, 416 → kRangeNotSatisfiable (treat as EOF), 429 → EAGAIN,
//   413/507 → ENOSPC, 409 → EEXIST, 400/422 → EINVAL, anything else → EIO. Transport
//   failures that survive the retries → EIO, with the cause in the message ("ETIMEDOUT:
//   ...", "ECONNREFUSED: ...", "truncated body: ..."). A callback abort → ECANCELED.
//   Messages include the method, the URL without its query string (presigned URLs carry
//   signatures) and, for HTTP errors, X-Error-Code / X-Error-Message or a short body excerpt.
//   Authorization headers are never logged.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "hfm/util/result.h"

namespace hfm::http {

// errno reported for HTTP 416: the requested range starts at or past the end of the resource.
// Callers reading a file treat it as end-of-file.
inline constexpr int kRangeNotSatisfiable = ERANGE;

struct CaseInsensitiveLess {
  bool operator()(std::string_view a, std::string_view b) const;
  using is_transparent = void;
};
// Header names compare case-insensitively. Repeated response headers are joined with ", ".
using Headers = std::map<std::string, std::string, CaseInsensitiveLess>;

// An HTTP byte range, both ends inclusive: "bytes=start-end", or "bytes=start-" when open.
struct ByteRange {
  uint64_t start = 0;
  std::optional<uint64_t> end_inclusive;

  std::string headerValue() const;  // "bytes=0-99"
};

struct RetryPolicy {
  int max_attempts = 3;  // total attempts, the first included; 1 disables retries
  std::chrono::milliseconds initial_backoff{500};  // before the 2nd attempt; doubles after
  std::chrono::milliseconds max_backoff{8000};
  // Upper bound on a delay the server asks for (Retry-After, RateLimit t=).
  std::chrono::milliseconds max_server_delay{30000};
  // No new attempt starts once this much time has passed since the first one began; a sleep
  // that would cross it is not taken (the last failure is reported instead). 0 = unbounded.
  std::chrono::milliseconds max_total{120000};
};

struct Request {
  std::string method = "GET";  // GET, HEAD, POST, PUT, DELETE, ...
  std::string url;
  Headers headers;   // sent as given (the caller adds Authorization, Content-Type, ...)
  std::string body;  // sent for any method when non-empty or when method is POST/PUT
  // Sent instead of `body` when set, without copying (xorb uploads); the bytes must stay
  // valid until the call returns.
  std::optional<std::string_view> body_view;
  std::optional<ByteRange> range;  // adds a Range header (or set headers["Range"] yourself)
  // Per-attempt limit for the whole exchange; defaults to ClientOptions::request_timeout.
  std::optional<std::chrono::milliseconds> timeout;
  bool follow_redirects = true;
  // Overrides ClientOptions::retry for this request.
  std::optional<RetryPolicy> retry;
};

struct Response {
  long status = 0;
  Headers headers;
  std::string body;           // empty for sendStreaming() successes (bytes went to the callback)
  std::string effective_url;  // after redirects
  int attempts = 1;           // how many attempts this result took
  // When a redirect was followed: the headers of the first response (e.g. the Hub's own
  // X-Linked-Etag / X-Repo-Commit before the CDN answered); empty otherwise.
  Headers redirect_headers;

  // Header value or `fallback` (names are case-insensitive).
  std::string header(std::string_view name, std::string fallback = {}) const;
  bool ok() const { return status >= 200 && status < 300; }
};

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds request_timeout{60000};  // per attempt; 0 = none
  // An attempt that receives no byte for this long is aborted (and retried). Rounded up to
  // whole seconds by libcurl; 0 disables it.
  std::chrono::milliseconds idle_timeout{30000};
  std::chrono::seconds tcp_keepalive{60};
  std::string user_agent = "hf-mount-cpp/0.1";
  RetryPolicy retry;
  // Idle connections each pooled handle keeps open (to distinct hosts).
  long max_connections_per_handle = 8;
  // sendAll() runs at most this many requests at once.
  std::size_t max_parallel = 16;
};

// Receives body bytes as they arrive: `offset` is the position of `data` in the response
// body. If an attempt fails after delivering bytes, the retry delivers the body again from
// offset 0, so callers writing into a buffer at `offset` need no special handling. Return
// false to abort the request (it fails with ECANCELED and is not retried).
using BodyCallback = std::function<bool(uint64_t offset, std::string_view data)>;

class HttpClient {
 public:
  explicit HttpClient(ClientOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Performs the request with retries. 2xx (and 3xx when follow_redirects is false) is a
  // Response; any other final status becomes statusError(); transport failures become EIO.
  Result<Response> send(const Request& request);

  // Like send() but returns the final Response whatever its status (retries still apply to
  // 408/429/5xx). Only transport failures are Errors. For callers that branch on status.
  Result<Response> exchange(const Request& request);

  // Like send(), but a successful body is handed to `on_body` instead of being kept in
  // Response::body (error bodies are still kept, for the message).
  Result<Response> sendStreaming(const Request& request, const BodyCallback& on_body);

  // Like exchange() (any final status is a Response), with a 2xx body streamed as in
  // sendStreaming(); a non-2xx body is kept in Response::body.
  Result<Response> exchangeStreaming(const Request& request, const BodyCallback& on_body);

  // Runs the requests concurrently (at most ClientOptions::max_parallel at once) and returns
  // one result per request, in order. Each behaves like send().
  std::vector<Result<Response>> sendAll(std::span<const Request> requests);

  const ClientOptions& options() const { return options_; }

 private:
  struct Impl;
  ClientOptions options_;
  std::unique_ptr<Impl> impl_;
};

// The single HTTP-status → Error mapping (see the contract above). `context` is typically
// "GET https://host/path"; the message gets the status, X-Error-Code, X-Error-Message (or a
// JSON "error" field, or a short body excerpt) and X-Request-Id when present.
Error statusError(const Response& response, std::string_view context);
int errnoForStatus(long status);

// Removes the query string and fragment: what may be logged of a (possibly presigned) URL.
std::string urlForLog(std::string_view url);

// Percent-encodes `text` for a URL path. '/' is kept unless `encode_slash` (revisions).
std::string percentEncode(std::string_view text, bool encode_slash = false);

// Parses a `Link` header and returns the target whose rel list contains `rel`, or nullopt.
std::optional<std::string> linkWithRel(std::string_view link_header, std::string_view rel);
// linkWithRel(header, "next"): the pagination cursor URL.
std::optional<std::string> nextLink(std::string_view link_header);

// Delay the server asks for: Retry-After (seconds or HTTP-date) or the IETF RateLimit
// header's t=<seconds> (used when r=0 or when it is the only hint). nullopt when absent.
std::optional<std::chrono::milliseconds> serverRetryDelay(const Headers& headers);

}  // namespace hfm::http
