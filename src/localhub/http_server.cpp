#include "hfm/localhub/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "hfm/util/log.h"

namespace hfm::localhub {
namespace {

constexpr uint64_t kMiB = uint64_t{1024} * 1024;

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Per-connection request state, created by the URI-log callback (so the raw URI is kept)
// and freed when MHD reports the request finished.
struct RequestState {
  std::string raw_uri;
  std::string body;
  uint64_t limit = 0;
  bool too_large = false;
  bool started = false;
};

// Streams an HttpResponse's pieces (bytes and file slices) to MHD. `cut_at` < total makes
// the stream end early with an error, which is the truncate fault.
struct PieceReader {
  std::vector<BodyPiece> pieces;
  std::vector<uint64_t> starts;  // absolute offset of each piece
  uint64_t total = 0;
  uint64_t cut_at = UINT64_MAX;
  size_t cursor = 0;  // piece index hint for sequential reads
  int fd = -1;
  size_t fd_piece = SIZE_MAX;

  ~PieceReader() {
    if (fd >= 0) ::close(fd);
  }

  ssize_t read(uint64_t pos, char* buf, size_t max) {
    if (pos >= cut_at) return MHD_CONTENT_READER_END_WITH_ERROR;
    if (pos >= total) return MHD_CONTENT_READER_END_OF_STREAM;
    max = static_cast<size_t>(std::min<uint64_t>(max, cut_at - pos));
    while (cursor + 1 < pieces.size() && starts[cursor + 1] <= pos) ++cursor;
    while (cursor > 0 && starts[cursor] > pos) --cursor;
    size_t written = 0;
    size_t idx = cursor;
    while (written < max && idx < pieces.size()) {
      uint64_t in_piece = pos + written - starts[idx];
      if (const auto* s = std::get_if<std::string>(&pieces[idx])) {
        if (in_piece < s->size()) {
          size_t n = std::min(max - written, s->size() - static_cast<size_t>(in_piece));
          // NOLINTNEXTLINE(bugprone-not-null-terminated-result): bytes of a body, not a C string
          std::memcpy(buf + written, s->data() + in_piece, n);
          written += n;
        }
      } else {
        const auto& slice = std::get<FileSlice>(pieces[idx]);
        if (in_piece < slice.length) {
          if (fd_piece != idx) {
            if (fd >= 0) ::close(fd);
            fd = ::open(slice.path.c_str(), O_RDONLY | O_CLOEXEC);
            fd_piece = idx;
            if (fd < 0) {
              spdlog::error("http: cannot open {} for a response: {}", slice.path,
                            std::strerror(errno));
              return MHD_CONTENT_READER_END_WITH_ERROR;
            }
          }
          size_t n =
              static_cast<size_t>(std::min<uint64_t>(max - written, slice.length - in_piece));
          ssize_t got = ::pread(fd, buf + written, n, static_cast<off_t>(slice.offset + in_piece));
          if (got <= 0)
            return written > 0 ? static_cast<ssize_t>(written) : MHD_CONTENT_READER_END_WITH_ERROR;
          written += static_cast<size_t>(got);
          if (static_cast<size_t>(got) < n) break;  // short read: come back for the rest
          continue;
        }
      }
      ++idx;
    }
    if (written == 0) return MHD_CONTENT_READER_END_WITH_ERROR;
    return static_cast<ssize_t>(written);
  }
};

ssize_t pieceRead(void* cls, uint64_t pos, char* buf, size_t max) {
  return static_cast<PieceReader*>(cls)->read(pos, buf, max);
}
void pieceFree(void* cls) { delete static_cast<PieceReader*>(cls); }

ssize_t headOnlyRead(void*, uint64_t, char*, size_t) { return MHD_CONTENT_READER_END_WITH_ERROR; }

bool isManagedHeader(const std::string& name) {
  static const char* kManaged[] = {"content-length", "transfer-encoding", "connection"};
  return std::any_of(std::begin(kManaged), std::end(kManaged),
                     [&](const char* m) { return strcasecmp(m, name.c_str()) == 0; });
}

enum class Fault { kNone, k5xx, kReset, kSlow, kTruncate };

// Unique per process run: a counter mixed with a random salt, as 16 hex digits.
std::string nextRequestId() {
  static std::atomic<uint64_t> counter{1};
  static const uint64_t salt = (uint64_t{std::random_device{}()} << 32) | std::random_device{}();
  char id[24];
  std::snprintf(
      id, sizeof id, "%016llx",
      static_cast<unsigned long long>((counter.fetch_add(1) * 0x9E3779B97F4A7C15ull) ^ salt));
  return id;
}

}  // namespace

struct HttpServer::Impl {
  ServerOptions options;
  HttpHandler handler;
  MHD_Daemon* daemon = nullptr;
  std::mutex rng_mu;
  std::mt19937_64 rng{std::random_device{}()};

  Fault pickFault() {
    if (!options.faults.any()) return Fault::kNone;
    std::lock_guard lock(rng_mu);
    if (std::uniform_real_distribution<double>(0, 1)(rng) >= options.faults.rate) {
      return Fault::kNone;
    }
    std::vector<Fault> kinds;
    if (options.faults.error_5xx) kinds.push_back(Fault::k5xx);
    if (options.faults.reset) kinds.push_back(Fault::kReset);
    if (options.faults.slow) kinds.push_back(Fault::kSlow);
    if (options.faults.truncate) kinds.push_back(Fault::kTruncate);
    return kinds[std::uniform_int_distribution<size_t>(0, kinds.size() - 1)(rng)];
  }
  int pick(int lo, int hi) {
    std::lock_guard lock(rng_mu);
    return std::uniform_int_distribution<int>(lo, hi)(rng);
  }

  static MHD_Result queue(MHD_Connection* conn, const HttpRequest& req, HttpResponse resp,
                          Fault fault) {
    bool head = req.method == "HEAD";
    bool no_body = head || resp.status == 204 || resp.status == 304;
    uint64_t total = resp.contentLength();
    if (head) {
      if (auto it = resp.headers.find("content-length"); it != resp.headers.end()) {
        total = std::strtoull(it->second.c_str(), nullptr, 10);
      }
    }
    MHD_Response* mr = nullptr;
    if (no_body) {
      if (head && total > 0) {
        mr = MHD_create_response_from_callback(total, 4096, &headOnlyRead, nullptr, nullptr);
      } else {
        mr = MHD_create_response_from_buffer(0, nullptr, MHD_RESPMEM_PERSISTENT);
      }
    } else if (fault == Fault::kTruncate && total > 0) {
      auto* reader = new PieceReader();
      reader->pieces = std::move(resp.body);
      reader->cut_at = total / 2;
      uint64_t off = 0;
      for (const auto& p : reader->pieces) {
        reader->starts.push_back(off);
        off += std::holds_alternative<std::string>(p) ? std::get<std::string>(p).size()
                                                      : std::get<FileSlice>(p).length;
      }
      reader->total = off;
      mr = MHD_create_response_from_callback(total, size_t{64} * 1024, &pieceRead, reader,
                                             &pieceFree);
    } else if (resp.body.size() == 1 && std::holds_alternative<FileSlice>(resp.body[0])) {
      const auto& slice = std::get<FileSlice>(resp.body[0]);
      int fd = ::open(slice.path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        spdlog::error("http: cannot open {}: {}", slice.path, std::strerror(errno));
        resp = HttpResponse::json(500, R"({"error":"internal storage error"})");
        const auto& s = std::get<std::string>(resp.body[0]);
        mr = MHD_create_response_from_buffer(s.size(), const_cast<char*>(s.data()),
                                             MHD_RESPMEM_MUST_COPY);
      } else {
        // sendfile path: MHD owns and closes the descriptor.
        mr = MHD_create_response_from_fd_at_offset64(slice.length, fd, slice.offset);
      }
    } else if (resp.body.size() <= 1) {
      const std::string empty;
      const std::string& s = resp.body.empty() ? empty : std::get<std::string>(resp.body[0]);
      mr = MHD_create_response_from_buffer(s.size(), const_cast<char*>(s.data()),
                                           MHD_RESPMEM_MUST_COPY);
    } else {
      auto* reader = new PieceReader();
      reader->pieces = std::move(resp.body);
      uint64_t off = 0;
      for (const auto& p : reader->pieces) {
        reader->starts.push_back(off);
        off += std::holds_alternative<std::string>(p) ? std::get<std::string>(p).size()
                                                      : std::get<FileSlice>(p).length;
      }
      reader->total = off;
      mr = MHD_create_response_from_callback(total, size_t{256} * 1024, &pieceRead, reader,
                                             &pieceFree);
    }
    if (mr == nullptr) return MHD_NO;
    for (const auto& [name, value] : resp.headers) {
      if (isManagedHeader(name)) continue;
      MHD_add_response_header(mr, name.c_str(), value.c_str());
    }
    if (resp.headers.find("x-request-id") == resp.headers.end()) {
      // Clients quote it in error messages; it ties a failure to the server's debug log.
      MHD_add_response_header(mr, "X-Request-Id", nextRequestId().c_str());
    }
    if (fault == Fault::kTruncate) MHD_add_response_header(mr, "Connection", "close");
    MHD_Result ret = MHD_queue_response(conn, static_cast<unsigned>(resp.status), mr);
    MHD_destroy_response(mr);
    return ret;
  }

  MHD_Result onRequest(MHD_Connection* conn, const char* url, const char* method,
                       const char* upload_data, size_t* upload_data_size, void** con_cls) {
    auto* state = static_cast<RequestState*>(*con_cls);
    if (state == nullptr) {  // no URI-log callback ran (should not happen): keep going
      state = new RequestState();
      state->raw_uri = url;
      *con_cls = state;
    }
    std::string_view uri = state->raw_uri;
    auto qpos = uri.find('?');
    std::string_view raw_path = uri.substr(0, qpos);
    if (!state->started) {
      state->started = true;
      auto decoded_path = percentDecode(raw_path, false);
      std::string decoded = decoded_path.value_or("");
      state->limit = maxBodyBytes(method, decoded);
      const char* cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
      uint64_t announced = cl != nullptr ? std::strtoull(cl, nullptr, 10) : 0;
      if (announced > state->limit) {
        HttpRequest req;
        req.method = method;
        auto r = HttpResponse::json(413, R"({"error":"Request body too large"})");
        r.headers["X-Error-Message"] = "Request body too large";
        return queue(conn, req, std::move(r), Fault::kNone);
      }
      state->body.reserve(static_cast<size_t>(announced));  // one allocation for big uploads
      return MHD_YES;  // MHD calls back with the body (if any), then once more with size 0
    }
    if (*upload_data_size > 0) {
      if (!state->too_large) {
        if (state->body.size() + *upload_data_size > state->limit) {
          state->too_large = true;
          std::string().swap(state->body);
        } else {
          state->body.append(upload_data, *upload_data_size);
        }
      }
      *upload_data_size = 0;
      return MHD_YES;
    }

    HttpRequest req;
    req.method = method;
    req.raw_path = std::string(raw_path);
    req.body = std::move(state->body);
    MHD_get_connection_values(
        conn, MHD_HEADER_KIND,
        [](void* cls, MHD_ValueKind, const char* key, const char* value) -> MHD_Result {
          auto* headers = static_cast<Headers*>(cls);
          headers->emplace(key, value != nullptr ? value : "");
          return MHD_YES;
        },
        &req.headers);
    if (const auto* info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        info != nullptr && info->client_addr != nullptr) {
      char buf[INET6_ADDRSTRLEN] = {};
      const sockaddr* sa = info->client_addr;
      if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
      } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof buf);
      }
      req.remote_addr = buf;
    }

    Fault fault = pickFault();
    if (options.faults.latency_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(options.faults.latency_ms));
    }
    if (fault == Fault::kReset) {
      spdlog::debug("http: fault reset {} {}", req.method, req.raw_path);
      return MHD_NO;  // MHD closes the connection without an answer
    }
    if (fault == Fault::kSlow) {
      std::this_thread::sleep_for(std::chrono::milliseconds(pick(200, 1500)));
    }
    if (fault == Fault::k5xx) {
      static const int kCodes[] = {500, 502, 503};
      int code = kCodes[pick(0, 2)];
      spdlog::debug("http: fault {} {} {}", code, req.method, req.raw_path);
      auto r = HttpResponse::json(code, R"({"error":"injected fault"})");
      return queue(conn, req, std::move(r), Fault::kNone);
    }

    HttpResponse resp;
    auto path = percentDecode(raw_path, false);
    bool bad_query = false;
    if (qpos != std::string_view::npos) {
      std::string_view q = uri.substr(qpos + 1);
      while (!q.empty()) {
        auto amp = q.find('&');
        std::string_view part = q.substr(0, amp);
        q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
        if (part.empty()) continue;
        auto eq = part.find('=');
        auto key = percentDecode(part.substr(0, eq), true);
        auto value = percentDecode(
            eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1), true);
        if (!key || !value) {
          bad_query = true;
          break;
        }
        req.query.emplace(std::move(*key), std::move(*value));
      }
    }
    if (state->too_large) {
      resp = HttpResponse::json(413, R"({"error":"Request body too large"})");
      resp.headers["X-Error-Message"] = "Request body too large";
    } else if (!path || bad_query) {
      resp = HttpResponse::json(400, R"({"error":"Malformed percent-encoding in URL"})");
      resp.headers["X-Error-Message"] = "Malformed percent-encoding in URL";
    } else {
      req.path = std::move(*path);
      try {
        resp = handler(req);
      } catch (const std::exception& e) {
        spdlog::error("http: handler failed on {} {}: {}", req.method, req.raw_path, e.what());
        resp = HttpResponse::json(500, R"({"error":"Internal server error"})");
      }
    }
    if (resp.headers.find("x-request-id") == resp.headers.end()) {
      resp.headers["X-Request-Id"] = nextRequestId();
    }
    spdlog::debug("http: {} {} -> {} [{}]", req.method, req.raw_path, resp.status,
                  resp.headers["X-Request-Id"]);
    return queue(conn, req, std::move(resp), fault);
  }
};

Result<FaultOptions> FaultOptions::parseKinds(const std::string& list, double rate,
                                              int latency_ms) {
  FaultOptions f;
  if (rate < 0 || rate > 1) return Error::invalid("--fault-rate must be within [0, 1]");
  if (latency_ms < 0) return Error::invalid("--latency-ms must not be negative");
  f.rate = rate;
  f.latency_ms = latency_ms;
  std::stringstream ss(list);
  std::string kind;
  while (std::getline(ss, kind, ',')) {
    if (kind == "5xx") {
      f.error_5xx = true;
    } else if (kind == "reset") {
      f.reset = true;
    } else if (kind == "slow") {
      f.slow = true;
    } else if (kind == "truncate") {
      f.truncate = true;
    } else if (!kind.empty()) {
      return Error::invalid("unknown fault kind '" + kind +
                            "' (expected 5xx, reset, slow or truncate)");
    }
  }
  if (rate > 0 && list.empty()) {  // a rate alone enables every kind
    f.error_5xx = f.reset = f.slow = f.truncate = true;
  }
  return f;
}

uint64_t maxBodyBytes(const std::string& method, const std::string& path) {
  if (method == "GET" || method == "HEAD") return uint64_t{64} * 1024;
  if (path.starts_with("/v1/") || path.starts_with("/v2/")) return 80 * kMiB;
  if (path.starts_with("/api/") && path.find("/commit/") != std::string::npos) return 64 * kMiB;
  return 8 * kMiB;
}

std::optional<std::string> percentDecode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      int hi = hexValue(text[i + 1]);
      int lo = hexValue(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::stop() {
  if (impl_ && impl_->daemon != nullptr) {
    MHD_stop_daemon(impl_->daemon);
    impl_->daemon = nullptr;
  }
}

std::string HttpServer::baseUrl() const {
  std::string host = host_;
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(port_);
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const ServerOptions& options,
                                                      HttpHandler handler) {
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->impl_ = std::make_unique<Impl>();
  server->impl_->options = options;
  server->impl_->handler = std::move(handler);
  server->host_ = options.host;

  sockaddr_storage addr{};
  bool v6 = options.host.find(':') != std::string::npos;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(options.port);
    if (inet_pton(AF_INET6, options.host.c_str(), &a->sin6_addr) != 1) {
      return Error::invalid("--host: not an IPv6 address: " + options.host);
    }
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    a->sin_family = AF_INET;
    a->sin_port = htons(options.port);
    if (inet_pton(AF_INET, options.host.c_str(), &a->sin_addr) != 1) {
      return Error::invalid("--host: not an IPv4 address: " + options.host);
    }
  }

  Impl* impl = server->impl_.get();
  auto access = [](void* cls, MHD_Connection* conn, const char* url, const char* method,
                   const char*, const char* upload_data, size_t* upload_data_size,
                   void** con_cls) -> MHD_Result {
    return static_cast<Impl*>(cls)->onRequest(conn, url, method, upload_data, upload_data_size,
                                              con_cls);
  };
  auto uri_log = [](void*, const char* uri, MHD_Connection*) -> void* {
    auto* state = new RequestState();
    state->raw_uri = uri != nullptr ? uri : "/";
    return state;
  };
  auto completed = [](void*, MHD_Connection*, void** con_cls, MHD_RequestTerminationCode) {
    delete static_cast<RequestState*>(*con_cls);
    *con_cls = nullptr;
  };
  // Decoding is done here from the raw URI, so MHD must leave the URL untouched.
  auto no_unescape = [](void*, MHD_Connection*, char* s) -> size_t { return std::strlen(s); };
  auto logger = [](void*, const char* fmt, va_list ap) {
    char buf[512];
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    std::string msg(buf);
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    spdlog::debug("microhttpd: {}", msg);
  };
  using LoggerFn = void (*)(void*, const char*, va_list);
  LoggerFn logger_fn = logger;

  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
  if (v6) flags |= MHD_USE_IPv6;
  MHD_AccessHandlerCallback access_fn = access;
  using UriLogFn = void* (*)(void*, const char*, MHD_Connection*);
  using CompletedFn = void (*)(void*, MHD_Connection*, void**, MHD_RequestTerminationCode);
  using UnescapeFn = size_t (*)(void*, MHD_Connection*, char*);
  UriLogFn uri_log_fn = uri_log;
  CompletedFn completed_fn = completed;
  UnescapeFn unescape_fn = no_unescape;
  impl->daemon = MHD_start_daemon(
      flags, options.port, nullptr, nullptr, access_fn, impl, MHD_OPTION_SOCK_ADDR,
      reinterpret_cast<sockaddr*>(&addr), MHD_OPTION_THREAD_POOL_SIZE,
      static_cast<unsigned>(std::max(1u, options.threads)), MHD_OPTION_URI_LOG_CALLBACK, uri_log_fn,
      nullptr, MHD_OPTION_NOTIFY_COMPLETED, completed_fn, nullptr, MHD_OPTION_UNESCAPE_CALLBACK,
      unescape_fn, nullptr, MHD_OPTION_EXTERNAL_LOGGER, logger_fn, nullptr,
      MHD_OPTION_CONNECTION_TIMEOUT, 300u,
      // MHD zeroes this pool on every request, so it costs small fetches dearly; 64 KiB still
      // holds the longest signed fetch URL (~8 KiB of ranges) and its headers.
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<size_t>(64 * 1024), MHD_OPTION_END);
  if (impl->daemon == nullptr) {
    return Error(EADDRINUSE, "cannot listen on " + options.host + ":" +
                                 std::to_string(options.port) +
                                 " (address in use or not available)");
  }
  const MHD_DaemonInfo* info = MHD_get_daemon_info(impl->daemon, MHD_DAEMON_INFO_BIND_PORT);
  server->port_ = info != nullptr ? info->port : options.port;
  return server;
}

}  // namespace hfm::localhub
