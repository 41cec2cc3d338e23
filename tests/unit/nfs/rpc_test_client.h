// RpcTestClient: a synchronous NFSv3/MOUNTv3 client for the tests, on libnfs's raw async
// client API (rpc_nfs3_*_async / rpc_mount3_*_async) driven by a poll loop with a deadline.
// Every helper returns the nfsstat3 (or mountstat3) of the reply, or kNoReply when the call
// failed at the RPC level (connection closed, timeout, PROC_UNAVAIL...).
#pragma once

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

// libnfs headers must come in this order: libnfs.h defines EXTERN for the raw ones.
// clang-format off
#include <nfsc/libnfs-zdr.h>
#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-mount.h>
#include <nfsc/libnfs-raw-nfs.h>
// clang-format on

namespace hfm::nfs::testing {

using Fh = std::vector<char>;
inline constexpr uint32_t kNoReply = 0xffffffffu;

struct DirEntryOut {
  std::string name;
  uint64_t fileid = 0;
  uint64_t cookie = 0;
  std::optional<Fh> fh;
  std::optional<fattr3> attr;
};

struct DirPage {
  uint32_t status = kNoReply;
  std::vector<DirEntryOut> entries;
  char verf[NFS3_COOKIEVERFSIZE] = {};
  bool eof = false;
};

class RpcTestClient {
 public:
  explicit RpcTestClient(uint16_t port) {
    rpc_ = rpc_init_context();
    Pending p;
    if (rpc_connect_port_async(rpc_, "127.0.0.1", port, NFS_PROGRAM, NFS_V3, &RpcTestClient::done,
                               &p) != 0) {
      return;
    }
    connected_ = wait(p, std::chrono::seconds(10)) && p.status == RPC_STATUS_SUCCESS;
  }
  ~RpcTestClient() {
    if (rpc_ != nullptr) rpc_destroy_context(rpc_);
  }
  RpcTestClient(const RpcTestClient&) = delete;
  RpcTestClient& operator=(const RpcTestClient&) = delete;

  bool connected() const { return connected_; }
  struct rpc_context* rpc() {
    return rpc_;
  }

  // Issues one call and waits for its reply; `on_reply` sees the decoded reply.
  bool run(const std::function<int(struct rpc_context*, rpc_cb, void*)>& issue,
           const std::function<void(void*)>& on_reply,
           std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    if (!connected_) return false;
    Pending p;
    p.on_reply = on_reply;
    if (issue(rpc_, &RpcTestClient::done, &p) != 0) return false;
    return wait(p, timeout) && p.status == RPC_STATUS_SUCCESS;
  }

  uint32_t status(const std::function<int(struct rpc_context*, rpc_cb, void*)>& issue) {
    uint32_t st = kNoReply;
    run(issue, [&](void* data) { st = *static_cast<uint32_t*>(data); });
    return st;
  }

  bool nullCall(int program) {
    if (program == MOUNT_PROGRAM) {
      return run([](auto* rpc, rpc_cb cb, void* p) { return rpc_mount3_null_async(rpc, cb, p); },
                 [](void*) {});
    }
    return run([](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_null_async(rpc, cb, p); },
               [](void*) {});
  }

  uint32_t mount(const std::string& path, Fh* fh) {
    uint32_t st = kNoReply;
    std::string arg = path;
    run([&](auto* rpc, rpc_cb cb, void* p) { return rpc_mount3_mnt_async(rpc, cb, arg.data(), p); },
        [&](void* data) {
          auto* res = static_cast<mountres3*>(data);
          st = res->fhs_status;
          if (st == MNT3_OK && fh != nullptr) {
            const auto& h = res->mountres3_u.mountinfo.fhandle;
            fh->assign(h.fhandle3_val, h.fhandle3_val + h.fhandle3_len);
          }
        });
    return st;
  }

  uint32_t getattr(const Fh& fh, fattr3* out = nullptr) {
    Fh copy = fh;
    GETATTR3args args{};
    setFh(args.object, copy);
    uint32_t st = kNoReply;
    run([&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_getattr_async(rpc, cb, &args, p); },
        [&](void* data) {
          auto* res = static_cast<GETATTR3res*>(data);
          st = res->status;
          if (st == NFS3_OK && out != nullptr) *out = res->GETATTR3res_u.resok.obj_attributes;
        });
    return st;
  }

  uint32_t lookup(const Fh& dir, const std::string& name, Fh* out, fattr3* attr = nullptr) {
    Fh copy = dir;
    std::string n = name;
    LOOKUP3args args{};
    setFh(args.what.dir, copy);
    args.what.name = n.data();
    uint32_t st = kNoReply;
    run([&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_lookup_async(rpc, cb, &args, p); },
        [&](void* data) {
          auto* res = static_cast<LOOKUP3res*>(data);
          st = res->status;
          if (st != NFS3_OK) return;
          const auto& h = res->LOOKUP3res_u.resok.object.data;
          if (out != nullptr) out->assign(h.data_val, h.data_val + h.data_len);
          if (attr != nullptr && res->LOOKUP3res_u.resok.obj_attributes.attributes_follow) {
            *attr = res->LOOKUP3res_u.resok.obj_attributes.post_op_attr_u.attributes;
          }
        });
    return st;
  }

  // Walks "a/b/c" from `root`.
  uint32_t lookupPath(const Fh& root, const std::string& path, Fh* out) {
    Fh cur = root;
    size_t start = 0;
    while (start < path.size()) {
      size_t slash = path.find('/', start);
      if (slash == std::string::npos) slash = path.size();
      Fh next;
      const uint32_t st = lookup(cur, path.substr(start, slash - start), &next);
      if (st != NFS3_OK) return st;
      cur = next;
      start = slash + 1;
    }
    *out = cur;
    return NFS3_OK;
  }

  uint32_t read(const Fh& fh, uint64_t offset, uint32_t count, std::vector<uint8_t>* data,
                bool* eof = nullptr) {
    Fh copy = fh;
    READ3args args{};
    setFh(args.file, copy);
    args.offset = offset;
    args.count = count;
    uint32_t st = kNoReply;
    run([&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_read_async(rpc, cb, &args, p); },
        [&](void* data_ptr) {
          auto* res = static_cast<READ3res*>(data_ptr);
          st = res->status;
          if (st != NFS3_OK) return;
          const auto& d = res->READ3res_u.resok.data;
          data->assign(reinterpret_cast<uint8_t*>(d.data_val),
                       reinterpret_cast<uint8_t*>(d.data_val) + d.data_len);
          if (eof != nullptr) *eof = res->READ3res_u.resok.eof != 0;
        });
    return st;
  }

  DirPage readdir(const Fh& fh, uint64_t cookie, const char* verf, uint32_t count) {
    Fh copy = fh;
    READDIR3args args{};
    setFh(args.dir, copy);
    args.cookie = cookie;
    if (verf != nullptr) std::memcpy(args.cookieverf, verf, NFS3_COOKIEVERFSIZE);
    args.count = count;
    DirPage page;
    run([&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_readdir_async(rpc, cb, &args, p); },
        [&](void* data) {
          auto* res = static_cast<READDIR3res*>(data);
          page.status = res->status;
          if (page.status != NFS3_OK) return;
          std::memcpy(page.verf, res->READDIR3res_u.resok.cookieverf, NFS3_COOKIEVERFSIZE);
          page.eof = res->READDIR3res_u.resok.reply.eof != 0;
          for (entry3* e = res->READDIR3res_u.resok.reply.entries; e != nullptr; e = e->nextentry) {
            page.entries.push_back({e->name, e->fileid, e->cookie, std::nullopt, std::nullopt});
          }
        });
    return page;
  }

  DirPage readdirplus(const Fh& fh, uint64_t cookie, const char* verf, uint32_t dircount,
                      uint32_t maxcount) {
    Fh copy = fh;
    READDIRPLUS3args args{};
    setFh(args.dir, copy);
    args.cookie = cookie;
    if (verf != nullptr) std::memcpy(args.cookieverf, verf, NFS3_COOKIEVERFSIZE);
    args.dircount = dircount;
    args.maxcount = maxcount;
    DirPage page;
    run([&](auto* rpc, rpc_cb cb,
            void* p) { return rpc_nfs3_readdirplus_async(rpc, cb, &args, p); },
        [&](void* data) {
          auto* res = static_cast<READDIRPLUS3res*>(data);
          page.status = res->status;
          if (page.status != NFS3_OK) return;
          std::memcpy(page.verf, res->READDIRPLUS3res_u.resok.cookieverf, NFS3_COOKIEVERFSIZE);
          page.eof = res->READDIRPLUS3res_u.resok.reply.eof != 0;
          for (entryplus3* e = res->READDIRPLUS3res_u.resok.reply.entries; e != nullptr;
               e = e->nextentry) {
            DirEntryOut out{e->name, e->fileid, e->cookie, std::nullopt, std::nullopt};
            if (e->name_handle.handle_follows) {
              const auto& h = e->name_handle.post_op_fh3_u.handle.data;
              out.fh = Fh(h.data_val, h.data_val + h.data_len);
            }
            if (e->name_attributes.attributes_follow) {
              out.attr = e->name_attributes.post_op_attr_u.attributes;
            }
            page.entries.push_back(std::move(out));
          }
        });
    return page;
  }

  struct WriteOut {
    uint32_t status = kNoReply;
    uint32_t count = 0;
    int committed = -1;
    uint64_t verf = 0;
    std::optional<fattr3> after;
  };

  WriteOut write(const Fh& fh, uint64_t offset, const std::vector<uint8_t>& bytes,
                 stable_how stable = UNSTABLE) {
    Fh copy = fh;
    std::vector<uint8_t> data = bytes;
    WRITE3args args{};
    setFh(args.file, copy);
    args.offset = offset;
    args.count = static_cast<count3>(data.size());
    args.stable = stable;
    args.data.data_len = static_cast<u_int>(data.size());
    args.data.data_val = reinterpret_cast<char*>(data.data());
    WriteOut out;
    run([&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_write_async(rpc, cb, &args, p); },
        [&](void* d) {
          auto* res = static_cast<WRITE3res*>(d);
          out.status = res->status;
          if (out.status != NFS3_OK) return;
          out.count = res->WRITE3res_u.resok.count;
          out.committed = res->WRITE3res_u.resok.committed;
          out.verf = verfOf(res->WRITE3res_u.resok.verf);
          if (res->WRITE3res_u.resok.file_wcc.after.attributes_follow) {
            out.after = res->WRITE3res_u.resok.file_wcc.after.post_op_attr_u.attributes;
          }
        });
    return out;
  }

  // COMMIT; `verf` receives the write verifier.
  uint32_t commit(const Fh& fh, uint64_t* verf = nullptr) {
    Fh copy = fh;
    COMMIT3args args{};
    setFh(args.file, copy);
    uint32_t st = kNoReply;
    run([&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_commit_async(rpc, cb, &args, p); },
        [&](void* d) {
          auto* res = static_cast<COMMIT3res*>(d);
          st = res->status;
          if (st == NFS3_OK && verf != nullptr) *verf = verfOf(res->COMMIT3res_u.resok.verf);
        });
    return st;
  }

  // CREATE with `how` (UNCHECKED/GUARDED take `attrs`, EXCLUSIVE takes `verf`).
  uint32_t create(const Fh& dir, const std::string& name, createmode3 how, Fh* out,
                  const sattr3& attrs = {}, uint64_t verf = 0) {
    Fh copy = dir;
    std::string n = name;
    CREATE3args args{};
    setFh(args.where.dir, copy);
    args.where.name = n.data();
    args.how.mode = how;
    if (how == EXCLUSIVE) {
      for (int i = 0; i < 8; ++i) {
        args.how.createhow3_u.verf[i] = static_cast<char>((verf >> (56 - 8 * i)) & 0xff);
      }
    } else {
      args.how.createhow3_u.obj_attributes = attrs;
    }
    uint32_t st = kNoReply;
    run([&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_create_async(rpc, cb, &args, p); },
        [&](void* d) {
          auto* res = static_cast<CREATE3res*>(d);
          st = res->status;
          if (st != NFS3_OK || out == nullptr) return;
          if (res->CREATE3res_u.resok.obj.handle_follows) {
            const auto& h = res->CREATE3res_u.resok.obj.post_op_fh3_u.handle.data;
            out->assign(h.data_val, h.data_val + h.data_len);
          }
        });
    return st;
  }

  // SETATTR; `guard_ctime` set means "only if the ctime is this".
  uint32_t setattr(const Fh& fh, const sattr3& attrs,
                   std::optional<nfstime3> guard_ctime = std::nullopt, fattr3* after = nullptr) {
    Fh copy = fh;
    SETATTR3args args{};
    setFh(args.object, copy);
    args.new_attributes = attrs;
    if (guard_ctime) {
      args.guard.check = 1;
      args.guard.sattrguard3_u.obj_ctime = *guard_ctime;
    }
    uint32_t st = kNoReply;
    run([&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_setattr_async(rpc, cb, &args, p); },
        [&](void* d) {
          auto* res = static_cast<SETATTR3res*>(d);
          st = res->status;
          if (st == NFS3_OK && after != nullptr &&
              res->SETATTR3res_u.resok.obj_wcc.after.attributes_follow) {
            *after = res->SETATTR3res_u.resok.obj_wcc.after.post_op_attr_u.attributes;
          }
        });
    return st;
  }

  uint32_t rename(const Fh& from_dir, const std::string& from, const Fh& to_dir,
                  const std::string& to) {
    Fh a = from_dir;
    Fh b = to_dir;
    std::string f = from;
    std::string t = to;
    RENAME3args args{};
    setFh(args.from.dir, a);
    args.from.name = f.data();
    setFh(args.to.dir, b);
    args.to.name = t.data();
    return status(
        [&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_rename_async(rpc, cb, &args, p); });
  }

  uint32_t remove(const Fh& dir, const std::string& name, bool is_dir = false) {
    Fh copy = dir;
    std::string n = name;
    if (is_dir) {
      RMDIR3args args{};
      setFh(args.object.dir, copy);
      args.object.name = n.data();
      return status(
          [&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_rmdir_async(rpc, cb, &args, p); });
    }
    REMOVE3args args{};
    setFh(args.object.dir, copy);
    args.object.name = n.data();
    return status(
        [&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_remove_async(rpc, cb, &args, p); });
  }

  uint32_t mkdir(const Fh& dir, const std::string& name, Fh* out = nullptr) {
    Fh copy = dir;
    std::string n = name;
    MKDIR3args args{};
    setFh(args.where.dir, copy);
    args.where.name = n.data();
    uint32_t st = kNoReply;
    run([&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_mkdir_async(rpc, cb, &args, p); },
        [&](void* d) {
          auto* res = static_cast<MKDIR3res*>(d);
          st = res->status;
          if (st == NFS3_OK && out != nullptr && res->MKDIR3res_u.resok.obj.handle_follows) {
            const auto& h = res->MKDIR3res_u.resok.obj.post_op_fh3_u.handle.data;
            out->assign(h.data_val, h.data_val + h.data_len);
          }
        });
    return st;
  }

  // SYMLINK `name` → `target` in `dir`; `out`/`attr` receive the new handle and attributes.
  uint32_t symlink(const Fh& dir, const std::string& name, const std::string& target,
                   Fh* out = nullptr, fattr3* attr = nullptr) {
    Fh copy = dir;
    std::string n = name;
    std::string t = target;
    SYMLINK3args args{};
    setFh(args.where.dir, copy);
    args.where.name = n.data();
    args.symlink.symlink_data = t.data();
    uint32_t st = kNoReply;
    run([&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_symlink_async(rpc, cb, &args, p); },
        [&](void* d) {
          auto* res = static_cast<SYMLINK3res*>(d);
          st = res->status;
          if (st != NFS3_OK) return;
          const SYMLINK3resok& ok = res->SYMLINK3res_u.resok;
          if (out != nullptr && ok.obj.handle_follows) {
            const auto& h = ok.obj.post_op_fh3_u.handle.data;
            out->assign(h.data_val, h.data_val + h.data_len);
          }
          if (attr != nullptr && ok.obj_attributes.attributes_follow) {
            *attr = ok.obj_attributes.post_op_attr_u.attributes;
          }
        });
    return st;
  }

  uint32_t readlink(const Fh& fh, std::string* target) {
    Fh copy = fh;
    READLINK3args args{};
    setFh(args.symlink, copy);
    uint32_t st = kNoReply;
    run([&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_readlink_async(rpc, cb, &args, p); },
        [&](void* d) {
          auto* res = static_cast<READLINK3res*>(d);
          st = res->status;
          if (st == NFS3_OK && target != nullptr && res->READLINK3res_u.resok.data != nullptr) {
            *target = res->READLINK3res_u.resok.data;
          }
        });
    return st;
  }

  // LINK: `file` gets the new name `name` in `dir`.
  uint32_t link(const Fh& file, const Fh& dir, const std::string& name) {
    Fh f = file;
    Fh d = dir;
    std::string n = name;
    LINK3args args{};
    setFh(args.file, f);
    setFh(args.link.dir, d);
    args.link.name = n.data();
    return status(
        [&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_link_async(rpc, cb, &args, p); });
  }

  // Reads the whole file in `chunk`-sized READs (bounded by `limit` bytes).
  uint32_t readAll(const Fh& fh, std::vector<uint8_t>* out, uint32_t chunk = 1u << 20,
                   uint64_t limit = 1ull << 32) {
    out->clear();
    while (out->size() < limit) {
      std::vector<uint8_t> part;
      bool eof = false;
      const uint32_t st = read(fh, out->size(), chunk, &part, &eof);
      if (st != NFS3_OK) return st;
      out->insert(out->end(), part.begin(), part.end());
      if (eof || part.empty()) return NFS3_OK;
    }
    return NFS3_OK;
  }

  static uint64_t verfOf(const char* v) {
    uint64_t x = 0;
    for (int i = 0; i < 8; ++i) x = (x << 8) | static_cast<uint8_t>(v[i]);
    return x;
  }

  static void setFh(nfs_fh3& out, Fh& fh) {
    out.data.data_len = static_cast<u_int>(fh.size());
    out.data.data_val = fh.data();
  }

 private:
  struct Pending {
    bool done = false;
    int status = -1;
    std::function<void(void*)> on_reply;
  };

  static void done(struct rpc_context*, int status, void* data, void* private_data) {
    auto* p = static_cast<Pending*>(private_data);
    p->done = true;
    p->status = status;
    if (status == RPC_STATUS_SUCCESS && p->on_reply && data != nullptr) p->on_reply(data);
  }

  bool wait(Pending& p, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!p.done) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      pollfd pfd{rpc_get_fd(rpc_), static_cast<short>(rpc_which_events(rpc_)), 0};
      const int n = ::poll(&pfd, 1, 100);
      if (n < 0) return false;
      if (rpc_service(rpc_, n > 0 ? pfd.revents : 0) < 0) {
        if (!p.done) return false;
      }
    }
    return true;
  }

  struct rpc_context* rpc_ = nullptr;
  bool connected_ = false;
};

}  // namespace hfm::nfs::testing
