#include "hfm/http/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "hfm/util/log.h"

namespace hfm::http {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Error bodies are kept only this long (they feed error messages, nothing else).
constexpr std::size_t kMaxErrorBody = std::size_t{64} * 1024;
constexpr long kMaxRedirects = 10;
// Upper bound on what a Content-Length may make us reserve up front (a lying server cannot
// make us allocate more than this before sending the bytes).
constexpr uint64_t kMaxReserve = 256ull << 20;
// libcurl's receive buffer: 16 KiB by default; larger means fewer callbacks on bulk reads.
constexpr long kReceiveBufferSize = 512L * 1024;

void globalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool isRetryableStatus(long status) {
  return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
         status == 504;
}

bool isRetryableCurlCode(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

// The errno-style name of a transport failure, so logs and messages say what happened.
std::string_view causeName(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
      return "ECONNREFUSED";
    case CURLE_OPERATION_TIMEDOUT:
      return "ETIMEDOUT";
    case CURLE_COULDNT_RESOLVE_HOST:
      return "EHOSTUNREACH (name resolution failed)";
    case CURLE_PARTIAL_FILE:
      return "truncated body (fewer bytes than Content-Length)";
    case CURLE_GOT_NOTHING:
      return "ECONNRESET (connection closed without a response)";
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
      return "ECONNRESET";
    default:
      return "EIO";
  }
}

// Per-attempt state shared with libcurl's callbacks.
struct Attempt {
  Response response;
  const BodyCallback* sink = nullptr;
  uint64_t delivered = 0;
  bool aborted_by_sink = false;
  bool in_headers = false;
};

std::size_t onHeader(char* data, std::size_t size, std::size_t count, void* user) {
  auto* attempt = static_cast<Attempt*>(user);
  const std::size_t n = size * count;
  std::string_view line(data, n);
  if (line.starts_with("HTTP/")) {
    // A new response begins (redirect hop, 100 Continue): forget the previous one's headers,
    // but keep the first redirect's (they describe the resource; the CDN's may not).
    const long previous = attempt->response.status;
    if (previous >= 300 && previous < 400 && attempt->response.redirect_headers.empty()) {
      attempt->response.redirect_headers = std::move(attempt->response.headers);
    }
    attempt->response.headers.clear();
    attempt->response.body.clear();
    const auto sp = line.find(' ');
    attempt->response.status =
        sp == std::string_view::npos
            ? 0
            : std::strtol(std::string(line.substr(sp + 1, 3)).c_str(), nullptr, 10);
    return n;
  }
  const auto colon = line.find(':');
  if (colon == std::string_view::npos) return n;  // blank line or folded continuation
  std::string name(trim(line.substr(0, colon)));
  std::string value(trim(line.substr(colon + 1)));
  auto [it, inserted] = attempt->response.headers.emplace(name, value);
  if (!inserted) it->second += ", " + value;
  return n;
}

std::size_t onBody(char* data, std::size_t size, std::size_t count, void* user) {
  auto* attempt = static_cast<Attempt*>(user);
  const std::size_t n = size * count;
  const long status = attempt->response.status;
  if (attempt->sink != nullptr && status >= 200 && status < 300) {
    if (!(*attempt->sink)(attempt->delivered, std::string_view(data, n))) {
      attempt->aborted_by_sink = true;
      return 0;  // makes libcurl fail the transfer with CURLE_WRITE_ERROR
    }
    attempt->delivered += n;
    return n;
  }
  if (attempt->sink != nullptr) {
    const std::size_t room = kMaxErrorBody - std::min(kMaxErrorBody, attempt->response.body.size());
    attempt->response.body.append(data, std::min(n, room));
    return n;
  }
  if (attempt->response.body.empty()) {
    // Reserve the announced length once, so large range bodies are not copied while growing.
    const auto length = attempt->response.headers.find("Content-Length");
    if (length != attempt->response.headers.end()) {
      const uint64_t announced = std::strtoull(length->second.c_str(), nullptr, 10);
      if (announced > 0 && announced <= kMaxReserve) attempt->response.body.reserve(announced);
    }
  }
  attempt->response.body.append(data, n);
  return n;
}

milliseconds jitteredBackoff(const RetryPolicy& policy, int failed_attempts) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  auto delay = policy.initial_backoff;
  for (int i = 1; i < failed_attempts && delay < policy.max_backoff; ++i) delay *= 2;
  delay = std::min(delay, policy.max_backoff);
  // Jitter in [50%, 100%] spreads out clients that failed together.
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  return milliseconds(static_cast<int64_t>(static_cast<double>(delay.count()) * jitter(rng)));
}

std::string describe(const Request& request) {
  return request.method + " " + urlForLog(request.url);
}

}  // namespace

bool CaseInsensitiveLess::operator()(std::string_view a, std::string_view b) const {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) <
           std::tolower(static_cast<unsigned char>(y));
  });
}

std::string ByteRange::headerValue() const {
  std::string value = "bytes=" + std::to_string(start) + "-";
  if (end_inclusive) value += std::to_string(*end_inclusive);
  return value;
}

std::string Response::header(std::string_view name, std::string fallback) const {
  auto it = headers.find(name);
  if (it == headers.end()) return fallback;
  return it->second;
}

int errnoForStatus(long status) {
  switch (status) {
    case 400:
    case 422:
      return EINVAL;
    case 401:
    case 403:
      return EACCES;
    case 404:
    case 410:
      return ENOENT;
    case 409:
      return EEXIST;
    case 413:
    case 507:
      return ENOSPC;
    case 416:
      return kRangeNotSatisfiable;
    case 429:
      return EAGAIN;
    default:
      return EIO;
  }
}

Error statusError(const Response& response, std::string_view context) {
  std::string message(context);
  message += ": HTTP " + std::to_string(response.status);
  const std::string code = response.header("X-Error-Code");
  if (!code.empty()) message += " " + code;
  std::string detail = response.header("X-Error-Message");
  if (detail.empty() && !response.body.empty()) {
    // Hub error bodies: {"error": "..."} or {"error": [..]} or {"errors": [{"message"}]}.
    const auto json = nlohmann::json::parse(response.body, nullptr, false);
    if (!json.is_discarded() && json.is_object()) {
      if (auto it = json.find("error"); it != json.end()) {
        detail = it->is_string() ? it->get<std::string>() : it->dump();
      } else if (auto errs = json.find("errors"); errs != json.end() && errs->is_array() &&
                                                  !errs->empty() && (*errs)[0].is_object()) {
        detail = (*errs)[0].value("message", std::string());
      }
    }
    if (detail.empty()) detail = response.body.substr(0, 200);
  }
  if (!detail.empty()) message += ": " + util::redactToken(std::string(trim(detail)));
  if (response.attempts > 1)
    message += " (after " + std::to_string(response.attempts) + " attempts)";
  const std::string request_id = response.header("X-Request-Id");
  if (!request_id.empty()) message += " [request id " + request_id + "]";
  return {errnoForStatus(response.status), message};
}

std::string urlForLog(std::string_view url) {
  const auto cut = url.find_first_of("?#");
  return std::string(url.substr(0, cut));
}

std::string percentEncode(std::string_view text, bool encode_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    const bool unreserved = std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved || (c == '/' && !encode_slash)) {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xF];
    }
  }
  return out;
}

std::optional<std::string> nextLink(std::string_view link_header) {
  return linkWithRel(link_header, "next");
}

std::optional<std::string> linkWithRel(std::string_view link_header, std::string_view wanted) {
  // Link: <url1>; rel="next", <url2>; rel="last". URLs may contain ',' only percent-encoded.
  std::size_t pos = 0;
  while (pos < link_header.size()) {
    const auto open = link_header.find('<', pos);
    if (open == std::string_view::npos) break;
    const auto close = link_header.find('>', open);
    if (close == std::string_view::npos) break;
    const auto next_open = link_header.find('<', close);
    const std::string_view params = link_header.substr(close + 1, next_open - (close + 1));
    // rel may be quoted or not, and may list several relations ("next last").
    const auto rel = params.find("rel=");
    if (rel != std::string_view::npos) {
      std::string_view value = params.substr(rel + 4);
      value = value.substr(0, value.find(';'));
      value = trim(value);
      if (!value.empty() && value.front() == '"') value.remove_prefix(1);
      value = value.substr(0, value.find('"'));
      std::size_t start = 0;
      while (start <= value.size()) {
        const auto end = std::min(value.find(' ', start), value.size());
        if (value.substr(start, end - start) == wanted) {
          return std::string(link_header.substr(open + 1, close - open - 1));
        }
        start = end + 1;
      }
    }
    pos = close + 1;
  }
  return std::nullopt;
}

std::optional<milliseconds> serverRetryDelay(const Headers& headers) {
  // IETF RateLimit draft: `"api";r=0;t=55` — t is the seconds until the window resets.
  if (auto it = headers.find("RateLimit"); it != headers.end()) {
    const std::string& value = it->second;
    const auto t = value.find("t=");
    if (t != std::string::npos && (t == 0 || value[t - 1] == ';' || value[t - 1] == ' ')) {
      char* end = nullptr;
      const long long secs = std::strtoll(value.c_str() + t + 2, &end, 10);
      if (end != value.c_str() + t + 2 && secs >= 0) return milliseconds(secs * 1000);
    }
  }
  if (auto it = headers.find("Retry-After"); it != headers.end()) {
    const std::string value(trim(it->second));
    if (!value.empty() && std::all_of(value.begin(), value.end(), [](char c) {
          return std::isdigit(static_cast<unsigned char>(c));
        })) {
      return milliseconds(std::stoll(value) * 1000);
    }
    const time_t when = curl_getdate(value.c_str(), nullptr);
    if (when > 0) {
      const auto delta = when - std::time(nullptr);
      return milliseconds(std::max<int64_t>(0, static_cast<int64_t>(delta)) * 1000);
    }
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------

struct HttpClient::Impl {
  explicit Impl(const ClientOptions& options) : options_(options) {
    globalInit();
    share_ = curl_share_init();
    curl_share_setopt(share_, CURLSHOPT_LOCKFUNC, &Impl::lock);
    curl_share_setopt(share_, CURLSHOPT_UNLOCKFUNC, &Impl::unlock);
    curl_share_setopt(share_, CURLSHOPT_USERDATA, this);
    // Connections stay in each pooled easy handle: libcurl does not support one connection
    // cache shared by concurrent threads. DNS and TLS sessions are safe to share.
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }

  ~Impl() {
    for (CURL* handle : free_handles_) curl_easy_cleanup(handle);
    curl_share_cleanup(share_);
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  static void lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
    static_cast<Impl*>(user)->locks_[static_cast<std::size_t>(data) % kLockCount].lock();
  }
  static void unlock(CURL*, curl_lock_data data, void* user) {
    static_cast<Impl*>(user)->locks_[static_cast<std::size_t>(data) % kLockCount].unlock();
  }

  CURL* acquire() {
    {
      std::lock_guard lock(pool_mu_);
      if (!free_handles_.empty()) {
        CURL* handle = free_handles_.back();
        free_handles_.pop_back();
        return handle;
      }
    }
    return curl_easy_init();
  }

  void release(CURL* handle) {
    std::lock_guard lock(pool_mu_);
    free_handles_.push_back(handle);
  }

  // One attempt. Returns the curl code; `attempt` holds status, headers and body.
  CURLcode perform(CURL* handle, const Request& request, milliseconds timeout, Attempt& attempt,
                   char* error_buffer) const {
    curl_easy_reset(handle);  // keeps the handle's live connections
    curl_easy_setopt(handle, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(handle, CURLOPT_SHARE, share_);
    curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(handle, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(handle, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    curl_easy_setopt(handle, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(handle, CURLOPT_BUFFERSIZE, kReceiveBufferSize);
    curl_easy_setopt(handle, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(handle, CURLOPT_TCP_KEEPIDLE,
                     static_cast<long>(options_.tcp_keepalive.count()));
    curl_easy_setopt(handle, CURLOPT_TCP_KEEPINTVL,
                     static_cast<long>(options_.tcp_keepalive.count()));
    curl_easy_setopt(handle, CURLOPT_MAXCONNECTS, options_.max_connections_per_handle);
    curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(options_.connect_timeout.count()));
    if (timeout.count() > 0)
      curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    if (options_.idle_timeout.count() > 0) {
      const long secs = static_cast<long>((options_.idle_timeout.count() + 999) / 1000);
      curl_easy_setopt(handle, CURLOPT_LOW_SPEED_LIMIT, 1L);
      curl_easy_setopt(handle, CURLOPT_LOW_SPEED_TIME, secs);
    }
    curl_easy_setopt(handle, CURLOPT_USERAGENT, options_.user_agent.c_str());
    if (request.follow_redirects) {
      curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 1L);
      curl_easy_setopt(handle, CURLOPT_MAXREDIRS, kMaxRedirects);
    }

    curl_slist* header_list = nullptr;
    for (const auto& [name, value] : request.headers) {
      const std::string line = value.empty() ? name + ";" : name + ": " + value;
      header_list = curl_slist_append(header_list, line.c_str());
    }
    if (request.range && request.headers.find("Range") == request.headers.end()) {
      header_list =
          curl_slist_append(header_list, ("Range: " + request.range->headerValue()).c_str());
    }
    // No 100-continue round trip before bodies.
    header_list = curl_slist_append(header_list, "Expect:");
    curl_easy_setopt(handle, CURLOPT_HTTPHEADER, header_list);

    const std::string_view payload =
        request.body_view ? *request.body_view : std::string_view(request.body);
    const bool has_body = !payload.empty() || request.method == "POST" || request.method == "PUT";
    if (request.method == "HEAD") {
      curl_easy_setopt(handle, CURLOPT_NOBODY, 1L);
    } else if (request.method == "GET" && !has_body) {
      curl_easy_setopt(handle, CURLOPT_HTTPGET, 1L);
    } else {
      if (has_body) {
        curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE,
                         static_cast<curl_off_t>(payload.size()));
        // Never NULL: libcurl would then read the body from its default read callback (stdin).
        curl_easy_setopt(handle, CURLOPT_POSTFIELDS,
                         payload.data() != nullptr ? payload.data() : "");
      }
      if (request.method != "POST")
        curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }

    curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, &onHeader);
    curl_easy_setopt(handle, CURLOPT_HEADERDATA, &attempt);
    curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, &onBody);
    curl_easy_setopt(handle, CURLOPT_WRITEDATA, &attempt);

    const CURLcode code = curl_easy_perform(handle);
    long status = 0;
    curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
    if (status != 0) attempt.response.status = status;
    char* effective = nullptr;
    curl_easy_getinfo(handle, CURLINFO_EFFECTIVE_URL, &effective);
    if (effective != nullptr) attempt.response.effective_url = effective;
    // The pooled handle must not keep pointers to this attempt's stack or request data
    // (error buffer, callbacks' state, headers, body); reset keeps its live connections.
    curl_easy_reset(handle);
    curl_slist_free_all(header_list);
    return code;
  }

  // The retry loop shared by every public entry point. Returns the final Response (any
  // status) or a transport Error.
  Result<Response> run(const Request& request, const BodyCallback* sink) {
    const RetryPolicy& policy = request.retry ? *request.retry : options_.retry;
    const int max_attempts = std::max(1, policy.max_attempts);
    const milliseconds base_timeout = request.timeout.value_or(options_.request_timeout);
    const auto started = Clock::now();
    CURL* handle = acquire();
    if (handle == nullptr) return Error(ENOMEM, describe(request) + ": curl_easy_init failed");

    std::optional<Result<Response>> last;
    for (int attempt_no = 1;; ++attempt_no) {
      milliseconds timeout = base_timeout;
      if (policy.max_total.count() > 0) {
        const auto left =
            policy.max_total - std::chrono::duration_cast<milliseconds>(Clock::now() - started);
        const auto bounded = std::max(milliseconds(1), left);
        timeout = timeout.count() > 0 ? std::min(timeout, bounded) : bounded;
      }
      Attempt attempt;
      attempt.sink = sink;
      std::array<char, CURL_ERROR_SIZE> error_buffer{};
      const CURLcode code = perform(handle, request, timeout, attempt, error_buffer.data());
      attempt.response.attempts = attempt_no;

      bool retryable = false;
      std::optional<milliseconds> server_delay;
      if (code == CURLE_OK) {
        retryable = isRetryableStatus(attempt.response.status);
        if (retryable) server_delay = serverRetryDelay(attempt.response.headers);
        last.emplace(std::move(attempt.response));
      } else if (attempt.aborted_by_sink) {
        last.emplace(Error(ECANCELED, describe(request) + ": aborted by the body consumer"));
      } else {
        retryable = isRetryableCurlCode(code);
        std::string detail =
            error_buffer[0] != '\0' ? error_buffer.data() : curl_easy_strerror(code);
        last.emplace(Error(
            EIO,
            describe(request) + ": " + std::string(causeName(code)) + ": " + detail +
                (attempt_no > 1 ? " (after " + std::to_string(attempt_no) + " attempts)" : "")));
      }
      if (!retryable || attempt_no >= max_attempts) break;

      milliseconds delay = server_delay ? std::min(*server_delay, policy.max_server_delay)
                                        : jitteredBackoff(policy, attempt_no);
      if (policy.max_total.count() > 0 && Clock::now() + delay - started >= policy.max_total) break;
      spdlog::debug(
          "http: {} attempt {} failed ({}), retrying in {} ms", describe(request), attempt_no,
          last->ok() ? "HTTP " + std::to_string(last->value().status) : last->error().message(),
          delay.count());
      std::this_thread::sleep_for(delay);
    }
    release(handle);
    if (last->ok()) {
      spdlog::trace("http: {} -> {} ({} attempt(s))", describe(request), last->value().status,
                    last->value().attempts);
    }
    return std::move(*last);
  }

  static constexpr std::size_t kLockCount = CURL_LOCK_DATA_LAST;
  const ClientOptions& options_;
  CURLSH* share_ = nullptr;
  std::array<std::mutex, kLockCount> locks_;
  std::mutex pool_mu_;
  std::vector<CURL*> free_handles_;  // GUARDED_BY(pool_mu_)
};

HttpClient::HttpClient(ClientOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>(options_)) {}

HttpClient::~HttpClient() = default;

namespace {
Result<Response> checked(const Request& request, Result<Response> result) {
  if (!result) return result;
  const Response& response = result.value();
  const bool redirect_ok =
      !request.follow_redirects && response.status >= 300 && response.status < 400;
  if (response.ok() || redirect_ok) return result;
  return statusError(response, describe(request));
}
}  // namespace

Result<Response> HttpClient::send(const Request& request) {
  return checked(request, impl_->run(request, nullptr));
}

Result<Response> HttpClient::exchange(const Request& request) {
  return impl_->run(request, nullptr);
}

Result<Response> HttpClient::sendStreaming(const Request& request, const BodyCallback& on_body) {
  return checked(request, impl_->run(request, &on_body));
}

Result<Response> HttpClient::exchangeStreaming(const Request& request,
                                               const BodyCallback& on_body) {
  return impl_->run(request, &on_body);
}

std::vector<Result<Response>> HttpClient::sendAll(std::span<const Request> requests) {
  std::vector<std::optional<Result<Response>>> slots(requests.size());
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i = next++; i < requests.size(); i = next++)
      slots[i].emplace(send(requests[i]));
  };
  const std::size_t threads =
      std::min(requests.size(), std::max<std::size_t>(1, options_.max_parallel));
  {
    std::vector<std::jthread> pool;
    pool.reserve(threads > 0 ? threads - 1 : 0);
    for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
    worker();  // the calling thread takes a share too
  }
  std::vector<Result<Response>> results;
  results.reserve(requests.size());
  for (auto& slot : slots) results.push_back(std::move(*slot));
  return results;
}

}  // namespace hfm::http
