// NfsServer: the event loop. Threads and ownership:
//
//  loop thread (one)   owns listen_fd_, event_fd_ (read side), conns_ and every libnfs
//                      rpc_context. It accepts, reads and frames records (readFrom), checks
//                      the call header, hands the record to libnfs (rpc_process_pdu), whose
//                      dispatch calls onCall; onCall answers NULL inline and queues every
//                      other call to the worker pool with a shared copy of the record. It
//                      sends finished replies (rpc_send_reply) and writes them out
//                      (rpc_service(POLLOUT)). Nothing on this thread calls the Vfs.
//  workers (N)         run Nfs3Service::call on the record bytes and push the encoded reply
//                      to done_ (guarded by done_mu_), then wake the loop through event_fd_.
//
// A reply for a connection that has been closed meanwhile is dropped (connections are found
// by id, never by pointer). libnfs 4.0 crashes when a server context is destroyed with unsent
// replies (it calls their NULL callbacks), so closeConnection first flushes them into a
// socketpair that nobody reads.
#include "hfm/nfs/nfs_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <thread>
#include <unordered_map>

#include "hfm/util/log.h"
#include "hfm/vfs/vfs.h"
#include "hfm/vfs/worker_pool.h"
#include "libnfs_shim.h"
#include "nfs3_service.h"

namespace hfm::nfs {
namespace {

// A record may carry one WRITE of kMaxTransfer bytes plus its headers.
constexpr size_t kMaxRecord = kMaxTransfer + 64 * 1024;
constexpr size_t kMaxFragments = 64;
constexpr uint32_t kMaxAuthBytes = 400;  // RFC 5531
constexpr size_t kMaxConnections = 1024;
constexpr size_t kReadBudget = 4 * kMaxRecord;  // per wake-up, so one client cannot starve others

uint32_t be32(const char* p) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(p[0])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(p[1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(p[2])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(p[3]));
}

struct CallHeader {
  uint32_t xid = 0;
  uint32_t prog = 0;
  uint32_t vers = 0;
  uint32_t proc = 0;
  size_t args_offset = 0;  // within the record, after the record mark
  CallCredential cred;
};

// Checks that `p[0..n)` starts with a well-formed ONC RPC v2 CALL header and finds its
// arguments. nullopt for anything else: the connection is then closed.
std::optional<CallHeader> parseCallHeader(const char* p, size_t n) {
  size_t pos = 0;
  auto u32 = [&](uint32_t& out) {
    if (n - pos < 4) return false;
    out = be32(p + pos);
    pos += 4;
    return true;
  };
  CallHeader h;
  uint32_t type = 0;
  uint32_t rpcvers = 0;
  if (!u32(h.xid) || !u32(type) || type != CALL || !u32(rpcvers) || rpcvers != RPC_MSG_VERSION ||
      !u32(h.prog) || !u32(h.vers) || !u32(h.proc)) {
    return std::nullopt;
  }
  for (int which = 0; which < 2; ++which) {  // credential, then verifier
    uint32_t flavor = 0;
    uint32_t len = 0;
    if (!u32(flavor) || !u32(len) || len > kMaxAuthBytes) return std::nullopt;
    const size_t padded = (static_cast<size_t>(len) + 3) & ~size_t{3};
    if (n - pos < padded) return std::nullopt;
    if (which == 0 && flavor == AUTH_UNIX && len >= 20) {
      // stamp, machinename<255>, uid, gid, gids<16>
      const char* body = p + pos;
      const uint32_t name_len = be32(body + 4);
      const size_t name_padded = (static_cast<size_t>(name_len) + 3) & ~size_t{3};
      if (name_len <= 255 && 8 + name_padded + 8 <= len) {
        h.cred.uid = be32(body + 8 + name_padded);
        h.cred.gid = be32(body + 12 + name_padded);
      }
    }
    pos += padded;
  }
  h.args_offset = pos;
  return h;
}

// A pre-encoded XDR body handed to rpc_send_reply.
struct Blob {
  char* data = nullptr;
  uint32_t size = 0;
};

uint32_t encodeBlob(ZDR* zdr, void* obj, ...) {
  auto* blob = static_cast<Blob*>(obj);
  if (blob->size == 0) return TRUE;
  return zdr_opaque(zdr, blob->data, blob->size);
}

uint32_t decodeNothing(ZDR*, void*, ...) { return TRUE; }

// libnfs hands the decoder uninitialised memory, but the generated codecs treat non-null
// pointers in it (strings, arrays) as buffers to decode into: zero it first.
template <typename T, uint32_t (*Fn)(ZDR*, T*)>
uint32_t decodeWith(ZDR* zdr, void* obj, ...) {
  std::memset(obj, 0, sizeof(T));
  return Fn(zdr, static_cast<T*>(obj));
}

int onCall(struct rpc_context* rpc, struct rpc_msg* call);

template <typename T, uint32_t (*Fn)(ZDR*, T*)>
constexpr service_proc proc(int number) {
  return service_proc{number, onCall, decodeWith<T, Fn>, static_cast<int>(sizeof(T))};
}
constexpr service_proc voidProc(int number) {
  return service_proc{number, onCall, decodeNothing, 0};
}

service_proc g_nfs3_procs[] = {
    voidProc(NFS3_NULL),
    proc<GETATTR3args, zdr_GETATTR3args>(NFS3_GETATTR),
    proc<SETATTR3args, zdr_SETATTR3args>(NFS3_SETATTR),
    proc<LOOKUP3args, zdr_LOOKUP3args>(NFS3_LOOKUP),
    proc<ACCESS3args, zdr_ACCESS3args>(NFS3_ACCESS),
    proc<READLINK3args, zdr_READLINK3args>(NFS3_READLINK),
    proc<READ3args, zdr_READ3args>(NFS3_READ),
    proc<WRITE3args, zdr_WRITE3args>(NFS3_WRITE),
    proc<CREATE3args, zdr_CREATE3args>(NFS3_CREATE),
    proc<MKDIR3args, zdr_MKDIR3args>(NFS3_MKDIR),
    proc<SYMLINK3args, zdr_SYMLINK3args>(NFS3_SYMLINK),
    proc<MKNOD3args, zdr_MKNOD3args>(NFS3_MKNOD),
    proc<REMOVE3args, zdr_REMOVE3args>(NFS3_REMOVE),
    proc<RMDIR3args, zdr_RMDIR3args>(NFS3_RMDIR),
    proc<RENAME3args, zdr_RENAME3args>(NFS3_RENAME),
    proc<LINK3args, zdr_LINK3args>(NFS3_LINK),
    proc<READDIR3args, zdr_READDIR3args>(NFS3_READDIR),
    proc<READDIRPLUS3args, zdr_READDIRPLUS3args>(NFS3_READDIRPLUS),
    proc<FSSTAT3args, zdr_FSSTAT3args>(NFS3_FSSTAT),
    proc<FSINFO3args, zdr_FSINFO3args>(NFS3_FSINFO),
    proc<PATHCONF3args, zdr_PATHCONF3args>(NFS3_PATHCONF),
    proc<COMMIT3args, zdr_COMMIT3args>(NFS3_COMMIT),
};

service_proc g_mount3_procs[] = {
    voidProc(MOUNT3_NULL),    proc<dirpath, zdr_dirpath>(MOUNT3_MNT),
    voidProc(MOUNT3_DUMP),    proc<dirpath, zdr_dirpath>(MOUNT3_UMNT),
    voidProc(MOUNT3_UMNTALL), voidProc(MOUNT3_EXPORT),
};

}  // namespace

class NfsServer::Impl {
 public:
  Impl(vfs::Vfs& vfs, NfsServerConfig config) : vfs_(vfs), config_(std::move(config)) {}
  ~Impl() { stop(); }

  Result<uint16_t> start();
  void stop();
  NfsServerStats stats() const {
    std::lock_guard<std::mutex> lock(stats_mu_);
    return stats_;
  }

  // The call being dispatched by rpc_process_pdu on the loop thread (libnfs 4.0 handlers get
  // no user pointer). Only touched by the loop thread.
  struct Dispatch {
    Impl* impl = nullptr;
    uint64_t conn_id = 0;
    std::shared_ptr<std::vector<char>> record;  // with its 4-byte record mark
    CallHeader header;
  };
  static thread_local Dispatch* current_;

  int handleCall(struct rpc_context* rpc, struct rpc_msg* call);

 private:
  struct Connection {
    uint64_t id = 0;
    int fd = -1;
    struct rpc_context* rpc = nullptr;
    char mark[4] = {};
    size_t mark_have = 0;
    bool in_fragment = false;
    bool last_fragment = false;
    size_t fragment_left = 0;
    size_t fragments = 0;
    std::shared_ptr<std::vector<char>> record;  // 4 bytes reserved for the mark, then data
    size_t inflight = 0;
  };
  struct Completion {
    uint64_t conn_id = 0;
    uint32_t xid = 0;
    std::optional<std::vector<char>> body;
  };
  enum class ReadOutcome { kOpen, kClosed, kMalformed };

  void loop();
  void acceptAll();
  ReadOutcome readFrom(Connection& c);
  bool dispatchRecord(Connection& c);
  void closeConnection(uint64_t id, bool malformed);
  void sendCompletions();
  void wake();
  bool wantsInput(const Connection& c) const;

  vfs::Vfs& vfs_;
  const NfsServerConfig config_;
  std::unique_ptr<HandleTable> handles_;
  std::unique_ptr<Nfs3Service> service_;
  std::unique_ptr<vfs::WorkerPool> pool_;
  std::thread thread_;
  int listen_fd_ = -1;
  int event_fd_ = -1;
  std::atomic<bool> stopping_{false};
  bool started_ = false;

  std::unordered_map<uint64_t, std::unique_ptr<Connection>> conns_;  // Loop thread only.
  uint64_t next_conn_id_ = 1;                                        // Loop thread only.

  std::mutex done_mu_;
  std::deque<Completion> done_;  // Guarded by done_mu_.

  mutable std::mutex stats_mu_;
  NfsServerStats stats_;  // Guarded by stats_mu_.
};

thread_local NfsServer::Impl::Dispatch* NfsServer::Impl::current_ = nullptr;

namespace {
int onCall(struct rpc_context* rpc, struct rpc_msg* call) {
  NfsServer::Impl::Dispatch* d = NfsServer::Impl::current_;
  if (d == nullptr) return -1;
  return d->impl->handleCall(rpc, call);
}
}  // namespace

Result<uint16_t> NfsServer::Impl::start() {
  handles_ = HandleTable::open(config_.handle_dir, config_.handle_key);
  service_ = std::make_unique<Nfs3Service>(vfs_, *handles_, config_.open_file_cache,
                                           config_.write_idle_release, config_.on_unmount);

  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return Error(errno, std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(config_.port);
  if (::inet_pton(AF_INET, config_.bind_address.c_str(), &addr.sin_addr) != 1) {
    return Error(EINVAL, "bad NFS bind address '" + config_.bind_address + "'");
  }
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    return Error(err, "binding " + config_.bind_address + ":" + std::to_string(config_.port) +
                          ": " + std::strerror(err));
  }
  if (::listen(listen_fd_, 128) != 0)
    return Error(errno, std::string("listen: ") + std::strerror(errno));
  socklen_t len = sizeof(addr);
  if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Error(errno, std::string("getsockname: ") + std::strerror(errno));
  }
  event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) return Error(errno, std::string("eventfd: ") + std::strerror(errno));

  vfs_.setInvalidationSink(service_.get());
  pool_ = std::make_unique<vfs::WorkerPool>(std::max<size_t>(config_.worker_threads, 1));
  started_ = true;
  thread_ = std::thread([this] { loop(); });
  const uint16_t port = ntohs(addr.sin_port);
  spdlog::info("nfs: serving NFSv3 and MOUNTv3 on {}:{} ({} handles known{})", config_.bind_address,
               port, handles_->size(),
               handles_->persistent() ? ", persistent" : ", in memory only");
  return port;
}

void NfsServer::Impl::stop() {
  if (started_) {
    stopping_ = true;
    wake();
    if (thread_.joinable()) thread_.join();
    pool_.reset();  // runs what is queued; their replies are dropped
    vfs_.setInvalidationSink(nullptr);
    started_ = false;
  }
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (event_fd_ >= 0) ::close(event_fd_);
  listen_fd_ = event_fd_ = -1;
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    done_.clear();
  }
  service_.reset();
}

void NfsServer::Impl::wake() {
  const uint64_t one = 1;
  if (event_fd_ >= 0) {
    [[maybe_unused]] ssize_t n = ::write(event_fd_, &one, sizeof(one));
  }
}

bool NfsServer::Impl::wantsInput(const Connection& c) const {
  const size_t queued = static_cast<size_t>(std::max(rpc_queue_length(c.rpc), 0));
  return c.inflight + queued < std::max<size_t>(config_.max_requests_per_connection, 1);
}

void NfsServer::Impl::loop() {
  std::vector<pollfd> fds;
  std::vector<uint64_t> ids;
  while (!stopping_) {
    fds.clear();
    ids.clear();
    fds.push_back({event_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (const auto& [id, c] : conns_) {
      short events = 0;
      if (wantsInput(*c)) events |= POLLIN;
      if ((rpc_which_events(c->rpc) & POLLOUT) != 0) events |= POLLOUT;
      fds.push_back({c->fd, events, 0});
      ids.push_back(id);
    }
    const int n = ::poll(fds.data(), fds.size(), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      spdlog::error("nfs: poll failed: {}", std::strerror(errno));
      break;
    }
    if ((fds[0].revents & POLLIN) != 0) {
      uint64_t count = 0;
      while (::read(event_fd_, &count, sizeof(count)) > 0) {
      }
    }
    if (stopping_) break;
    for (size_t i = 2; i < fds.size(); ++i) {
      const short rev = fds[i].revents;
      if (rev == 0) continue;
      auto it = conns_.find(ids[i - 2]);
      if (it == conns_.end()) continue;
      Connection& c = *it->second;
      if ((rev & POLLNVAL) != 0 || ((rev & (POLLERR | POLLHUP)) != 0 && (rev & POLLIN) == 0)) {
        closeConnection(c.id, false);
        continue;
      }
      if ((rev & POLLIN) != 0) {
        const ReadOutcome outcome = readFrom(c);
        if (outcome != ReadOutcome::kOpen) {
          closeConnection(c.id, outcome == ReadOutcome::kMalformed);
          continue;
        }
      }
      if ((rev & POLLOUT) != 0 && rpc_service(c.rpc, POLLOUT) != 0) {
        closeConnection(c.id, false);
        continue;
      }
    }
    sendCompletions();
    if ((fds[1].revents & POLLIN) != 0) acceptAll();
  }
  std::vector<uint64_t> all;
  for (const auto& [id, c] : conns_) all.push_back(id);
  for (uint64_t id : all) closeConnection(id, false);
}

void NfsServer::Impl::acceptAll() {
  for (;;) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        spdlog::warn("nfs: accept: {}", std::strerror(errno));
      }
      return;
    }
    if (conns_.size() >= kMaxConnections) {
      spdlog::warn("nfs: refusing a connection: {} already open", conns_.size());
      ::close(fd);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct rpc_context* rpc = rpc_init_server_context(fd);
    if (rpc == nullptr ||
        rpc_register_service(rpc, NFS_PROGRAM, NFS_V3, g_nfs3_procs,
                             static_cast<int>(std::size(g_nfs3_procs))) != 0 ||
        rpc_register_service(rpc, MOUNT_PROGRAM, MOUNT_V3, g_mount3_procs,
                             static_cast<int>(std::size(g_mount3_procs))) != 0) {
      spdlog::error("nfs: cannot set up an RPC context for a connection");
      if (rpc != nullptr)
        rpc_destroy_context(rpc);
      else
        ::close(fd);
      continue;
    }
    auto c = std::make_unique<Connection>();
    c->id = next_conn_id_++;
    c->fd = fd;
    c->rpc = rpc;
    conns_.emplace(c->id, std::move(c));
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.connections_accepted++;
  }
}

NfsServer::Impl::ReadOutcome NfsServer::Impl::readFrom(Connection& c) {
  size_t budget = kReadBudget;
  while (budget > 0) {
    if (!c.in_fragment) {
      const ssize_t n = ::recv(c.fd, c.mark + c.mark_have, 4 - c.mark_have, MSG_DONTWAIT);
      if (n == 0) return ReadOutcome::kClosed;
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? ReadOutcome::kOpen : ReadOutcome::kClosed;
      }
      c.mark_have += static_cast<size_t>(n);
      if (c.mark_have < 4) continue;
      c.mark_have = 0;
      const uint32_t mark = be32(c.mark);
      const size_t len = mark & 0x7fffffffu;
      if (!c.record) c.record = std::make_shared<std::vector<char>>(4);
      ++c.fragments;
      if (c.record->size() - 4 + len > kMaxRecord || c.fragments > kMaxFragments) {
        spdlog::warn(
            "nfs: closing connection {}: RPC record of {}+ bytes in {} fragments "
            "exceeds the limit",
            c.id, c.record->size() - 4 + len, c.fragments);
        return ReadOutcome::kMalformed;
      }
      c.last_fragment = (mark & 0x80000000u) != 0;
      c.fragment_left = len;
      c.in_fragment = true;
      c.record->resize(c.record->size() + len);
    }
    if (c.fragment_left > 0) {
      char* dst = c.record->data() + (c.record->size() - c.fragment_left);
      const ssize_t n = ::recv(c.fd, dst, c.fragment_left, MSG_DONTWAIT);
      if (n == 0) return ReadOutcome::kClosed;  // truncated record: the peer went away
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? ReadOutcome::kOpen : ReadOutcome::kClosed;
      }
      c.fragment_left -= static_cast<size_t>(n);
      budget -= std::min(budget, static_cast<size_t>(n));
      if (c.fragment_left > 0) continue;
    }
    c.in_fragment = false;
    if (!c.last_fragment) continue;
    if (!dispatchRecord(c)) return ReadOutcome::kMalformed;
    c.record.reset();
    c.fragments = 0;
    if (!wantsInput(c)) break;  // back-pressure: resume once replies drain
  }
  return ReadOutcome::kOpen;
}

bool NfsServer::Impl::dispatchRecord(Connection& c) {
  std::vector<char>& rec = *c.record;
  const size_t len = rec.size() - 4;
  auto header = parseCallHeader(rec.data() + 4, len);
  if (!header) {
    spdlog::warn("nfs: closing connection {}: not an ONC RPC v2 call ({} bytes)", c.id, len);
    return false;
  }
  const uint32_t mark = 0x80000000u | static_cast<uint32_t>(len);
  rec[0] = static_cast<char>(mark >> 24);
  rec[1] = static_cast<char>((mark >> 16) & 0xff);
  rec[2] = static_cast<char>((mark >> 8) & 0xff);
  rec[3] = static_cast<char>(mark & 0xff);
  Dispatch d{this, c.id, c.record, *header};
  current_ = &d;
  const int rc = rpc_process_pdu(c.rpc, rec.data(), static_cast<int>(rec.size()));
  current_ = nullptr;
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.calls++;
  }
  if (rc != 0) {
    spdlog::warn("nfs: closing connection {}: {}", c.id, rpc_get_error(c.rpc));
    return false;
  }
  return true;
}

int NfsServer::Impl::handleCall(struct rpc_context* rpc, struct rpc_msg* call) {
  Dispatch& d = *current_;
  const uint32_t prog = call->body.cbody.prog;
  const uint32_t proc = call->body.cbody.proc;
  if (proc == 0) {  // NULL of either program
    Blob empty;
    return rpc_send_reply(rpc, call, &empty, encodeBlob, 0);
  }
  auto it = conns_.find(d.conn_id);
  if (it == conns_.end()) return -1;
  it->second->inflight++;
  const uint64_t conn_id = d.conn_id;
  const uint32_t xid = call->xid;
  std::shared_ptr<std::vector<char>> record = d.record;
  const size_t offset = 4 + d.header.args_offset;
  const CallCredential cred = d.header.cred;
  const bool queued = pool_->submit([this, conn_id, xid, prog, proc, record, offset, cred] {
    Completion done{
        conn_id, xid,
        service_->call(prog, proc, record->data() + offset, record->size() - offset, cred)};
    {
      std::lock_guard<std::mutex> lock(done_mu_);
      done_.push_back(std::move(done));
    }
    wake();
  });
  if (!queued) {
    it->second->inflight--;
    return -1;
  }
  return 0;
}

void NfsServer::Impl::sendCompletions() {
  std::deque<Completion> batch;
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    batch.swap(done_);
  }
  for (Completion& done : batch) {
    auto it = conns_.find(done.conn_id);
    if (it == conns_.end()) continue;  // the client went away meanwhile
    Connection& c = *it->second;
    c.inflight--;
    if (!done.body) {
      spdlog::error("nfs: closing connection {}: a reply could not be built", c.id);
      closeConnection(c.id, false);
      continue;
    }
    struct rpc_msg msg {};
    msg.xid = done.xid;
    Blob blob{done.body->data(), static_cast<uint32_t>(done.body->size())};
    if (rpc_send_reply(c.rpc, &msg, &blob, encodeBlob, static_cast<int>(blob.size)) != 0) {
      spdlog::warn("nfs: closing connection {}: {}", c.id, rpc_get_error(c.rpc));
      closeConnection(c.id, false);
      continue;
    }
    // Try to write at once; the loop polls for POLLOUT if the socket is full.
    if (rpc_service(c.rpc, POLLOUT) != 0) closeConnection(c.id, false);
  }
}

void NfsServer::Impl::closeConnection(uint64_t id, bool malformed) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  std::unique_ptr<Connection> c = std::move(it->second);
  conns_.erase(it);
  bool destroyable = rpc_queue_length(c->rpc) == 0;
  const bool had_unsent = !destroyable;
  if (!destroyable) {
    // libnfs 4.0 would call the (NULL) callbacks of unsent replies: write them into a
    // socketpair instead, then destroy.
    int sp[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) == 0) {
      ::close(c->fd);
      rpc_set_fd(c->rpc, sp[0]);
      char sink[65536];
      for (int round = 0; round < 100000 && rpc_queue_length(c->rpc) > 0; ++round) {
        if (rpc_service(c->rpc, POLLOUT) != 0) break;
        while (::recv(sp[1], sink, sizeof(sink), MSG_DONTWAIT) > 0) {
        }
      }
      ::close(sp[1]);
      destroyable = rpc_queue_length(c->rpc) == 0;
      if (!destroyable) {
        spdlog::error("nfs: leaking an RPC context with unsent replies");
        ::close(sp[0]);
      }
    } else {
      ::close(c->fd);
      spdlog::error("nfs: leaking an RPC context with unsent replies: socketpair: {}",
                    std::strerror(errno));
    }
  }
  if (destroyable) rpc_destroy_context(c->rpc);
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_.connections_closed++;
  if (malformed) stats_.connections_rejected++;
  if (had_unsent) stats_.closed_with_unsent_replies++;
}

NfsServer::NfsServer(vfs::Vfs& vfs, NfsServerConfig config)
    : impl_(std::make_unique<Impl>(vfs, std::move(config))) {}

NfsServer::~NfsServer() { stop(); }

Status NfsServer::start() {
  auto port = impl_->start();
  if (!port.ok()) {
    impl_->stop();
    return port.error();
  }
  port_ = *port;
  return okStatus();
}

void NfsServer::stop() { impl_->stop(); }

NfsServerStats NfsServer::stats() const { return impl_->stats(); }

}  // namespace hfm::nfs
