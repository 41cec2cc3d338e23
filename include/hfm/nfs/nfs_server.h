// NfsServer: a userspace NFSv3 + MOUNTv3 server over one vfs::Vfs, on ONE TCP port.
//
// Both programs (NFS 100003 v3, MOUNT 100005 v3) are served on the same listening socket, so
// a client needs no portmapper: `mount -o port=P,mountport=P` or libnfs's
// `nfs://127.0.0.1/?nfsport=P&mountport=P&version=3`. The only export is "/" (the mount root;
// MNT also accepts a path to a directory below it).
//
// Threads (see docs in src/nfs/nfs_server.cpp):
//  - one event-loop thread owns the listening socket, every connection and its libnfs
//    rpc_context: it accepts, reads and frames RPC records, lets libnfs decode and dispatch
//    them, queues the encoded replies and writes them;
//  - a worker pool (config.worker_threads) runs the filesystem work (every procedure except
//    NULL), decoding its arguments and encoding its reply itself, so the loop only copies
//    bytes; finished replies are handed back through a queue and an eventfd wake-up.
//  A slow remote therefore parks workers, never the loop: other clients and other requests
//  of the same client keep being served.
//
// Robustness: a connection that sends anything but well-framed ONC RPC calls (garbage, a
// record or fragment larger than 1 MiB + 64 KiB, a non-CALL message, a wrong RPC version) is
// closed; nothing else is affected. Undecodable arguments get GARBAGE_ARGS, unknown programs
// and procedures PROG_UNAVAIL / PROC_UNAVAIL (answered by libnfs). A connection stops being
// read while it has config.max_requests_per_connection requests in flight or queued replies,
// so one client cannot queue unbounded work or memory.
//
// File handles are 20 bytes: "HFM1", the HandleTable epoch, the stable id (see
// handle_table.h). They survive a restart when config.handle_dir is set. Unknown, removed or
// foreign handles answer NFS3ERR_STALE.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "hfm/util/result.h"

namespace hfm::vfs {
class Vfs;
}

namespace hfm::nfs {

struct NfsServerConfig {
  std::string bind_address = "127.0.0.1";
  uint16_t port = 0;  // 0 = any free port (see NfsServer::port())
  size_t worker_threads = 16;
  std::filesystem::path handle_dir;  // where the HandleTable lives; empty = in memory only
  std::string handle_key;            // the mount source ("bucket ns/name", "repo ns/name@rev")
  size_t open_file_cache = 64;       // Vfs file handles kept open across READ/WRITE calls
  // A Vfs handle opened for writing is released (which schedules its commit to the Hub) once
  // no WRITE/READ/COMMIT used it for this long: NFSv3 has no close.
  std::chrono::milliseconds write_idle_release{3000};
  size_t max_requests_per_connection = 64;
  // Called once per MOUNT UMNT (on a worker thread); the binary exits on it like the reference.
  std::function<void()> on_unmount;
};

struct NfsServerStats {
  uint64_t connections_accepted = 0;
  uint64_t connections_closed = 0;
  uint64_t connections_rejected = 0;        // closed for malformed RPC
  uint64_t closed_with_unsent_replies = 0;  // the client left before reading its replies
  uint64_t calls = 0;                       // RPC calls dispatched
};

class NfsServer {
 public:
  NfsServer(vfs::Vfs& vfs, NfsServerConfig config);
  ~NfsServer();  // stop()
  NfsServer(const NfsServer&) = delete;
  NfsServer& operator=(const NfsServer&) = delete;

  // Binds, opens the handle table and starts the loop and the workers. EADDRINUSE etc. on a
  // bind failure.
  Status start();
  // The bound port (after start()).
  uint16_t port() const { return port_; }
  // Stops accepting, closes every connection, waits for the workers. Idempotent.
  void stop();

  NfsServerStats stats() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
};

}  // namespace hfm::nfs
