#include "fake_http_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>

namespace hfm::testing {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string percentDecode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && std::isxdigit(static_cast<unsigned char>(in[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else if (plus_is_space && in[i] == '+') {
      out += ' ';
    } else {
      out += in[i];
    }
  }
  return out;
}

// Keeps URLs and arguments exactly as sent, so tests can see how the client encoded them.
size_t keepEscaped(void*, MHD_Connection*, char* s) { return std::strlen(s); }

struct PerRequest {
  RecordedRequest request;
};

struct TruncatedBody {
  std::string body;
  std::size_t truncate_at = 0;
};

ssize_t readTruncated(void* cls, uint64_t pos, char* buf, size_t max) {
  auto* state = static_cast<TruncatedBody*>(cls);
  if (pos >= state->truncate_at) return MHD_CONTENT_READER_END_WITH_ERROR;
  const std::size_t n =
      std::min<std::size_t>(max, state->truncate_at - static_cast<std::size_t>(pos));
  std::memcpy(buf, state->body.data() + pos, n);
  return static_cast<ssize_t>(n);
}

void freeTruncated(void* cls) { delete static_cast<TruncatedBody*>(cls); }

MHD_Result collect(void* cls, MHD_ValueKind, const char* key, const char* value) {
  auto* out = static_cast<std::map<std::string, std::string>*>(cls);
  auto [it, inserted] = out->emplace(lower(key), value != nullptr ? value : "");
  if (!inserted) it->second += std::string(", ") + (value != nullptr ? value : "");
  return MHD_YES;
}

MHD_Result collectArg(void* cls, MHD_ValueKind, const char* key, const char* value) {
  auto* out = static_cast<std::multimap<std::string, std::string>*>(cls);
  out->emplace(percentDecode(key, true), value != nullptr ? percentDecode(value, true) : "");
  return MHD_YES;
}

void onConnection(void* cls, MHD_Connection*, void** socket_context,
                  MHD_ConnectionNotificationCode code) {
  auto* server = static_cast<FakeHttpServer*>(cls);
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    *socket_context = new uint64_t(server->nextConnectionId());
  } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
    delete static_cast<uint64_t*>(*socket_context);
    *socket_context = nullptr;
  }
}

void onCompleted(void*, MHD_Connection*, void** con_cls, MHD_RequestTerminationCode) {
  delete static_cast<PerRequest*>(*con_cls);
  *con_cls = nullptr;
}

MHD_Result onRequest(void* cls, MHD_Connection* connection, const char* url, const char* method,
                     const char*, const char* upload_data, size_t* upload_data_size,
                     void** con_cls) {
  auto* server = static_cast<FakeHttpServer*>(cls);
  if (*con_cls == nullptr) {
    auto state = std::make_unique<PerRequest>();
    state->request.method = method;
    state->request.raw_path = url;
    state->request.path = percentDecode(url, false);
    MHD_get_connection_values(connection, MHD_HEADER_KIND, &collect, &state->request.headers);
    MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, &collectArg,
                              &state->request.query);
    if (const auto* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        info != nullptr && info->socket_context != nullptr) {
      state->request.connection_id = *static_cast<uint64_t*>(info->socket_context);
    }
    *con_cls = state.release();
    return MHD_YES;
  }
  auto* state = static_cast<PerRequest*>(*con_cls);
  if (*upload_data_size != 0) {
    state->request.body.append(upload_data, *upload_data_size);
    *upload_data_size = 0;
    return MHD_YES;
  }

  FakeResponse answer = server->respond(state->request);
  if (answer.delay.count() > 0) std::this_thread::sleep_for(answer.delay);
  if (answer.fault == FakeResponse::Fault::kCloseBeforeResponse) return MHD_NO;

  MHD_Response* response = nullptr;
  if (answer.fault == FakeResponse::Fault::kCloseMidBody) {
    auto* body = new TruncatedBody{answer.body, std::min(answer.truncate_at, answer.body.size())};
    response = MHD_create_response_from_callback(answer.body.size(), 4096, &readTruncated, body,
                                                 &freeTruncated);
  } else {
    response = MHD_create_response_from_buffer(answer.body.size(), answer.body.data(),
                                               MHD_RESPMEM_MUST_COPY);
  }
  for (const auto& [name, value] : answer.headers) {
    MHD_add_response_header(response, name.c_str(), value.c_str());
  }
  const MHD_Result queued =
      MHD_queue_response(connection, static_cast<unsigned int>(answer.status), response);
  MHD_destroy_response(response);
  return queued;
}

}  // namespace

std::string RecordedRequest::header(const std::string& lowercase_name) const {
  auto it = headers.find(lowercase_name);
  return it == headers.end() ? std::string() : it->second;
}

std::string RecordedRequest::queryParam(const std::string& key) const {
  auto it = query.find(key);
  return it == query.end() ? std::string() : it->second;
}

FakeResponse FakeResponse::text(int status, std::string body) {
  FakeResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers.emplace_back("Content-Type", "text/plain");
  return r;
}

FakeResponse FakeResponse::json(int status, std::string body) {
  FakeResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers.emplace_back("Content-Type", "application/json");
  return r;
}

FakeResponse& FakeResponse::withHeader(std::string name, std::string value) {
  headers.emplace_back(std::move(name), std::move(value));
  return *this;
}

FakeHttpServer::FakeHttpServer(Handler handler) : handler_(std::move(handler)) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  daemon_ = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
                             nullptr, nullptr, &onRequest, this, MHD_OPTION_SOCK_ADDR,
                             reinterpret_cast<const sockaddr*>(&addr), MHD_OPTION_UNESCAPE_CALLBACK,
                             &keepEscaped, nullptr, MHD_OPTION_NOTIFY_CONNECTION, &onConnection,
                             this, MHD_OPTION_NOTIFY_COMPLETED, &onCompleted, nullptr,
                             MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
  if (daemon_ == nullptr) throw std::runtime_error("FakeHttpServer: MHD_start_daemon failed");
  const auto* info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
  port_ = info != nullptr ? info->port : 0;
  if (port_ == 0) {
    MHD_stop_daemon(daemon_);
    throw std::runtime_error("FakeHttpServer: no bound port");
  }
}

FakeHttpServer::~FakeHttpServer() { MHD_stop_daemon(daemon_); }

std::string FakeHttpServer::url() const { return "http://127.0.0.1:" + std::to_string(port_); }

void FakeHttpServer::setHandler(Handler handler) {
  std::lock_guard lock(mu_);
  handler_ = std::move(handler);
}

void FakeHttpServer::enqueue(FakeResponse response) {
  std::lock_guard lock(mu_);
  queue_.push_back(std::move(response));
}

std::vector<RecordedRequest> FakeHttpServer::requests() const {
  std::lock_guard lock(mu_);
  return log_;
}

std::size_t FakeHttpServer::requestCount() const {
  std::lock_guard lock(mu_);
  return log_.size();
}

bool FakeHttpServer::waitForRequests(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return log_.size() >= n; });
}

FakeResponse FakeHttpServer::respond(const RecordedRequest& request) {
  Handler handler;
  {
    std::lock_guard lock(mu_);
    log_.push_back(request);
    cv_.notify_all();
    if (!queue_.empty()) {
      FakeResponse next = std::move(queue_.front());
      queue_.pop_front();
      return next;
    }
    handler = handler_;
  }
  if (handler) return handler(request);
  return FakeResponse::text(404, "no handler for " + request.method + " " + request.raw_path);
}

}  // namespace hfm::testing
