// FakeHttpServer: a scripted HTTP/1.1 server on 127.0.0.1 for unit tests (libmicrohttpd).
//
// It listens on an ephemeral loopback port from construction until destruction (the
// destructor always stops it, so a failing test cannot leak it). Each request is recorded,
// then answered by the next queued FakeResponse if any, else by the handler (default: 404).
// A response can be delayed, or broken on purpose: the connection closed before any response
// byte (a reset), or closed after part of the body while Content-Length announced all of it
// (a truncated body). Keep-alive is on, and every accepted TCP connection gets an id, so tests
// can check connection reuse. Every connection is served by its own thread, so delays in one
// do not hold up the others. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

struct MHD_Daemon;

namespace hfm::testing {

struct RecordedRequest {
  std::string method;
  std::string raw_path;  // as sent, still percent-encoded, without the query
  std::string path;      // percent-decoded
  std::multimap<std::string, std::string> query;  // decoded
  std::map<std::string, std::string> headers;     // names lowercased
  std::string body;
  uint64_t connection_id = 0;  // 1, 2, ... in accept order

  std::string header(const std::string& lowercase_name) const;
  std::string queryParam(const std::string& key) const;
};

struct FakeResponse {
  enum class Fault {
    kNone,
    kCloseBeforeResponse,  // close the connection without answering
    kCloseMidBody,         // send headers (full Content-Length) + truncate_at bytes, then close
  };

  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds delay{0};  // wait before answering
  Fault fault = Fault::kNone;
  std::size_t truncate_at = 0;

  static FakeResponse text(int status, std::string body);
  static FakeResponse json(int status, std::string body);
  FakeResponse& withHeader(std::string name, std::string value);
};

class FakeHttpServer {
 public:
  using Handler = std::function<FakeResponse(const RecordedRequest&)>;

  explicit FakeHttpServer(Handler handler = {});
  ~FakeHttpServer();
  FakeHttpServer(const FakeHttpServer&) = delete;
  FakeHttpServer& operator=(const FakeHttpServer&) = delete;

  uint16_t port() const { return port_; }
  std::string url() const;  // "http://127.0.0.1:<port>"

  void setHandler(Handler handler);
  // Answers the next request with `response` (before the handler is consulted).
  void enqueue(FakeResponse response);

  std::vector<RecordedRequest> requests() const;
  std::size_t requestCount() const;
  std::size_t connectionCount() const { return connections_.load(); }
  // Waits until at least `n` requests arrived or `timeout` passed; returns whether they did.
  bool waitForRequests(std::size_t n, std::chrono::milliseconds timeout) const;

  // libmicrohttpd callbacks (public so the C trampolines can reach them).
  struct Context;
  FakeResponse respond(const RecordedRequest& request);
  uint64_t nextConnectionId() { return ++connections_; }

 private:
  MHD_Daemon* daemon_ = nullptr;
  uint16_t port_ = 0;
  std::atomic<uint64_t> connections_{0};
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  Handler handler_;                   // GUARDED_BY(mu_)
  std::deque<FakeResponse> queue_;    // GUARDED_BY(mu_)
  std::vector<RecordedRequest> log_;  // GUARDED_BY(mu_)
};

}  // namespace hfm::testing
