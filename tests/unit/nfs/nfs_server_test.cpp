// NfsServer against libnfs's client over 127.0.0.1, on a Vfs over the FakeRemote.
#include "hfm/nfs/nfs_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "fake_remote.h"
#include "hfm/vfs/vfs.h"
#include "rpc_test_client.h"

namespace hfm::nfs {
namespace {

using hfm::testing::FakeRemote;
using hfm::testing::patternBytes;
using testing::DirPage;
using testing::Fh;
using testing::kNoReply;
using testing::RpcTestClient;

constexpr uint64_t kBigSize = 5 * 1024 * 1024 + 12345;

class NfsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("hfm-nfs-test-" + std::to_string(::getpid()) +
                                                     "-" + std::to_string(std::random_device()()));
    std::filesystem::create_directories(dir_);
    remote_ = std::make_shared<FakeRemote>();
    putTree();
  }

  void TearDown() override {
    stopServer();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // The same tree on a writable remote (a bucket).
  void makeWritable() {
    remote_ = std::make_shared<FakeRemote>(false);
    putTree();
  }
  void putTree() {
    remote_->putFile("README.md", "hello nfs\n");
    remote_->putFile("data/big.bin", patternBytes(kBigSize, 7));
    remote_->putFile("data/nested/deep/leaf.txt", "leaf\n");
    remote_->putFile("empty.txt", std::string_view());
  }

  // What the NFS backend runs: advanced writes, short debounce so commits land quickly.
  static vfs::VfsConfig advanced() {
    vfs::VfsConfig vc;
    vc.writes.advanced = true;
    vc.writes.flush_debounce = std::chrono::milliseconds(20);
    vc.writes.flush_max_batch_window = std::chrono::milliseconds(500);
    return vc;
  }

  // Stops the server (releasing its handles schedules their commits) and commits everything.
  void stopAndFlush() {
    if (server_) server_->stop();
    server_.reset();
    if (vfs_) {
      auto st = vfs_->flushAll(std::chrono::seconds(20));
      EXPECT_TRUE(st.ok()) << st.error().message();
    }
    vfs_.reset();
  }

  // Polls until `pred` holds (at most `timeout`).
  static bool eventually(const std::function<bool()>& pred,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return pred();
  }

  void startServer(const vfs::VfsConfig& vc = {}, std::string key = "bucket test/one",
                   bool persistent = true) {
    vfs_ = std::make_unique<vfs::Vfs>(remote_, vc);
    NfsServerConfig c;
    c.worker_threads = 8;
    c.write_idle_release = write_idle_;
    c.handle_dir = persistent ? dir_ / "handles" : std::filesystem::path();
    c.handle_key = std::move(key);
    c.on_unmount = [this] { unmounts_++; };
    server_ = std::make_unique<NfsServer>(*vfs_, c);
    ASSERT_TRUE(server_->start().ok());
    ASSERT_NE(server_->port(), 0);
  }

  void stopServer() {
    if (server_) server_->stop();
    server_.reset();
    vfs_.reset();
  }

  Fh mountRoot(RpcTestClient& client) {
    Fh root;
    EXPECT_EQ(client.mount("/", &root), static_cast<uint32_t>(MNT3_OK));
    return root;
  }

  std::filesystem::path dir_;
  std::shared_ptr<FakeRemote> remote_;
  std::unique_ptr<vfs::Vfs> vfs_;
  std::unique_ptr<NfsServer> server_;
  std::atomic<int> unmounts_{0};
  std::chrono::milliseconds write_idle_{60000};  // tests that want idle release lower it
};

// A raw TCP connection for the malformed-RPC tests.
int connectRaw(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// True when the server closed `fd` within `timeout` (EOF or reset, after draining replies).
bool closedByPeer(int fd, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return true;
  }
  return false;
}

void sendAll(int fd, const std::vector<uint8_t>& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

void putBe32(std::vector<uint8_t>& out, uint32_t v) {
  out.push_back(static_cast<uint8_t>(v >> 24));
  out.push_back(static_cast<uint8_t>(v >> 16));
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

TEST_F(NfsServerTest, NullMountExportAndUnmount) {
  startServer();
  RpcTestClient client(server_->port());
  ASSERT_TRUE(client.connected());
  EXPECT_TRUE(client.nullCall(MOUNT_PROGRAM));
  EXPECT_TRUE(client.nullCall(NFS_PROGRAM));

  Fh root = mountRoot(client);
  EXPECT_EQ(root.size(), 20u);
  Fh data;
  EXPECT_EQ(client.mount("/data", &data), static_cast<uint32_t>(MNT3_OK));
  Fh via_lookup;
  ASSERT_EQ(client.lookup(root, "data", &via_lookup), static_cast<uint32_t>(NFS3_OK));
  EXPECT_EQ(data, via_lookup);
  EXPECT_EQ(client.mount("/missing", nullptr), static_cast<uint32_t>(MNT3ERR_NOENT));
  EXPECT_EQ(client.mount("/README.md", nullptr), static_cast<uint32_t>(MNT3ERR_NOTDIR));

  std::vector<std::string> export_dirs;
  ASSERT_TRUE(
      client.run([](auto* rpc, rpc_cb cb, void* p) { return rpc_mount3_export_async(rpc, cb, p); },
                 [&](void* d) {
                   for (exportnode* e = *static_cast<exports*>(d); e != nullptr; e = e->ex_next) {
                     export_dirs.emplace_back(e->ex_dir);
                   }
                 }));
  EXPECT_EQ(export_dirs, std::vector<std::string>{"/"});

  std::string arg = "/";
  ASSERT_TRUE(client.run(
      [&](auto* rpc, rpc_cb cb, void* p) { return rpc_mount3_umnt_async(rpc, cb, arg.data(), p); },
      [](void*) {}));
  EXPECT_EQ(unmounts_.load(), 1);
}

TEST_F(NfsServerTest, GetattrLookupAccessAndFsInfo) {
  startServer();
  RpcTestClient client(server_->port());
  Fh root = mountRoot(client);

  fattr3 ra{};
  ASSERT_EQ(client.getattr(root, &ra), static_cast<uint32_t>(NFS3_OK));
  EXPECT_EQ(ra.type, NF3DIR);
  EXPECT_EQ(ra.fileid, 1u);
  EXPECT_EQ(ra.mode, 0555u);

  Fh readme;
  fattr3 fa{};
  ASSERT_EQ(client.lookup(root, "README.md", &readme, &fa), static_cast<uint32_t>(NFS3_OK));
  EXPECT_EQ(fa.type, NF3REG);
  EXPECT_EQ(fa.size, 10u);
  EXPECT_EQ(fa.mode, 0444u);
  EXPECT_NE(fa.fileid, 1u);
  fattr3 again{};
  ASSERT_EQ(client.getattr(readme, &again), static_cast<uint32_t>(NFS3_OK));
  EXPECT_EQ(again.fileid, fa.fileid);
  Fh readme2;
  ASSERT_EQ(client.lookup(root, "README.md", &readme2), static_cast<uint32_t>(NFS3_OK));
  EXPECT_EQ(readme, readme2);  // one path, one handle

  EXPECT_EQ(client.lookup(root, "nope", nullptr), static_cast<uint32_t>(NFS3ERR_NOENT));
  EXPECT_EQ(client.lookup(readme, "x", nullptr), static_cast<uint32_t>(NFS3ERR_NOTDIR));
  Fh leaf;
  ASSERT_EQ(client.lookupPath(root, "data/nested/deep/leaf.txt", &leaf),
            static_cast<uint32_t>(NFS3_OK));
  Fh dotdot;
  Fh deep;
  ASSERT_EQ(client.lookupPath(root, "data/nested/deep", &deep), static_cast<uint32_t>(NFS3_OK));
  ASSERT_EQ(client.lookup(deep, "..", &dotdot), static_cast<uint32_t>(NFS3_OK));
  Fh nested;
  ASSERT_EQ(client.lookupPath(root, "data/nested", &nested), static_cast<uint32_t>(NFS3_OK));
  EXPECT_EQ(dotdot, nested);

  // ACCESS: read and lookup/execute granted by the 0444/0555 modes, never modify.
  Fh copy = readme;
  ACCESS3args aa{};
  RpcTestClient::setFh(aa.object, copy);
  aa.access = 0x3f;
  uint32_t granted = 0;
  ASSERT_TRUE(client.run(
      [&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_access_async(rpc, cb, &aa, p); },
      [&](void* d) {
        auto* res = static_cast<ACCESS3res*>(d);
        ASSERT_EQ(res->status, NFS3_OK);
        granted = res->ACCESS3res_u.resok.access;
      }));
  EXPECT_EQ(granted, 0x1u);  // READ only: files are 0444
  Fh rcopy = root;
  RpcTestClient::setFh(aa.object, rcopy);
  ASSERT_TRUE(client.run(
      [&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_access_async(rpc, cb, &aa, p); },
      [&](void* d) { granted = static_cast<ACCESS3res*>(d)->ACCESS3res_u.resok.access; }));
  EXPECT_EQ(granted, 0x3u);  // READ | LOOKUP

  FSINFO3args fi{};
  RpcTestClient::setFh(fi.fsroot, rcopy);
  ASSERT_TRUE(client.run(
      [&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_fsinfo_async(rpc, cb, &fi, p); },
      [&](void* d) {
        auto* res = static_cast<FSINFO3res*>(d);
        ASSERT_EQ(res->status, NFS3_OK);
        EXPECT_EQ(res->FSINFO3res_u.resok.rtmax, 1u << 20);
        EXPECT_EQ(res->FSINFO3res_u.resok.wtmax, 1u << 20);
      }));
  FSSTAT3args fs{};
  RpcTestClient::setFh(fs.fsroot, rcopy);
  ASSERT_TRUE(client.run(
      [&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_fsstat_async(rpc, cb, &fs, p); },
      [&](void* d) {
        auto* res = static_cast<FSSTAT3res*>(d);
        ASSERT_EQ(res->status, NFS3_OK);
        EXPECT_EQ(res->FSSTAT3res_u.resok.tbytes, 42'000'000'000'000'000ull);
        EXPECT_EQ(res->FSSTAT3res_u.resok.abytes, res->FSSTAT3res_u.resok.tbytes);
      }));
  PATHCONF3args pc{};
  RpcTestClient::setFh(pc.object, rcopy);
  ASSERT_TRUE(client.run(
      [&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_pathconf_async(rpc, cb, &pc, p); },
      [&](void* d) {
        auto* res = static_cast<PATHCONF3res*>(d);
        ASSERT_EQ(res->status, NFS3_OK);
        EXPECT_EQ(res->PATHCONF3res_u.resok.name_max, 255u);
        EXPECT_TRUE(res->PATHCONF3res_u.resok.case_preserving);
      }));
  // READLINK of a regular file.
  Fh fcopy = readme;
  READLINK3args rl{};
  RpcTestClient::setFh(rl.symlink, fcopy);
  EXPECT_EQ(client.status([&](auto* rpc, rpc_cb cb, void* p) {
    return rpc_nfs3_readlink_async(rpc, cb, &rl, p);
  }),
            static_cast<uint32_t>(NFS3ERR_INVAL));
}

TEST_F(NfsServerTest, ReadsAreByteIdentical) {
  startServer();
  RpcTestClient client(server_->port());
  Fh root = mountRoot(client);
  Fh big;
  ASSERT_EQ(client.lookupPath(root, "data/big.bin", &big), static_cast<uint32_t>(NFS3_OK));
  const auto expected = patternBytes(kBigSize, 7);

  // Sequential 1 MiB reads.
  std::vector<uint8_t> all;
  bool eof = false;
  for (uint64_t off = 0; !eof; off += 1u << 20) {
    std::vector<uint8_t> chunk;
    ASSERT_EQ(client.read(big, off, 1u << 20, &chunk, &eof), static_cast<uint32_t>(NFS3_OK));
    ASSERT_EQ(chunk.size(), std::min<uint64_t>(1u << 20, kBigSize - off));
    all.insert(all.end(), chunk.begin(), chunk.end());
  }
  ASSERT_EQ(all.size(), expected.size());
  EXPECT_TRUE(all == expected);

  // Random offsets and sizes, including ones crossing EOF and a count above rtmax.
  std::mt19937_64 rng(42);
  for (int i = 0; i < 60; ++i) {
    const uint64_t off = rng() % (kBigSize + 10);
    const auto count = static_cast<uint32_t>(1 + rng() % (1u << 20));
    std::vector<uint8_t> chunk;
    bool e = false;
    ASSERT_EQ(client.read(big, off, count, &chunk, &e), static_cast<uint32_t>(NFS3_OK));
    const uint64_t want = off >= kBigSize ? 0 : std::min<uint64_t>(count, kBigSize - off);
    ASSERT_EQ(chunk.size(), want) << "offset " << off;
    EXPECT_EQ(e, off + want >= kBigSize);
    if (want > 0) {
      ASSERT_EQ(0, std::memcmp(chunk.data(), expected.data() + off, want)) << "offset " << off;
    }
  }
  std::vector<uint8_t> capped;
  ASSERT_EQ(client.read(big, 0, 4u << 20, &capped), static_cast<uint32_t>(NFS3_OK));
  EXPECT_EQ(capped.size(), 1u << 20);

  Fh empty;
  ASSERT_EQ(client.lookup(root, "empty.txt", &empty), static_cast<uint32_t>(NFS3_OK));
  std::vector<uint8_t> nothing;
  ASSERT_EQ(client.read(empty, 0, 4096, &nothing, &eof), static_cast<uint32_t>(NFS3_OK));
  EXPECT_TRUE(nothing.empty());
  EXPECT_TRUE(eof);
  EXPECT_EQ(client.read(root, 0, 10, &nothing), static_cast<uint32_t>(NFS3ERR_ISDIR));
}

TEST_F(NfsServerTest, RemoteChangeIsServedAfterRevalidation) {
  vfs::VfsConfig vc;
  vc.metadata_ttl = std::chrono::milliseconds(0);  // every GETATTR revalidates
  startServer(vc);
  RpcTestClient client(server_->port());
  Fh root = mountRoot(client);
  Fh readme;
  ASSERT_EQ(client.lookup(root, "README.md", &readme), static_cast<uint32_t>(NFS3_OK));
  std::vector<uint8_t> bytes;
  ASSERT_EQ(client.read(readme, 0, 100, &bytes), static_cast<uint32_t>(NFS3_OK));
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "hello nfs\n");
  remote_->putFile("README.md", "HELLO NFS\n");  // same size, new version (#160/#161)
  fattr3 a{};
  ASSERT_EQ(client.getattr(readme, &a), static_cast<uint32_t>(NFS3_OK));
  ASSERT_EQ(client.read(readme, 0, 100, &bytes), static_cast<uint32_t>(NFS3_OK));
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "HELLO NFS\n");
}

TEST_F(NfsServerTest, ReaddirAndReaddirplusPageThroughTenThousandEntries) {
  constexpr int kFiles = 10000;
  for (int i = 0; i < kFiles; ++i) {
    remote_->putFile("many/f" + std::to_string(i) + ".txt",
                     std::string(static_cast<size_t>(i % 7), 'x'));
  }
  startServer();
  RpcTestClient client(server_->port());
  Fh root = mountRoot(client);
  Fh many;
  ASSERT_EQ(client.lookup(root, "many", &many), static_cast<uint32_t>(NFS3_OK));

  // READDIR, 4 KiB pages.
  std::set<std::string> names;
  std::set<uint64_t> ids;
  uint64_t cookie = 0;
  char verf[NFS3_COOKIEVERFSIZE] = {};
  int pages = 0;
  for (bool eof = false; !eof; ++pages) {
    DirPage page = client.readdir(many, cookie, verf, 4096);
    ASSERT_EQ(page.status, static_cast<uint32_t>(NFS3_OK)) << "page " << pages;
    ASSERT_TRUE(!page.entries.empty() || page.eof);
    for (const auto& e : page.entries) {
      EXPECT_TRUE(names.insert(e.name).second) << e.name;
      if (e.name != "..") {
        EXPECT_TRUE(ids.insert(e.fileid).second) << e.name;
      }
      EXPECT_GT(e.cookie, cookie);
      cookie = e.cookie;
    }
    std::memcpy(verf, page.verf, sizeof(verf));
    eof = page.eof;
    ASSERT_LT(pages, 5000);
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(kFiles + 2));
  EXPECT_GT(pages, 20);
  EXPECT_TRUE(names.count(".") && names.count("..") && names.count("f9999.txt"));

  // READDIRPLUS, 32 KiB pages: every entry has a handle that resolves to its attributes.
  std::map<std::string, testing::DirEntryOut> plus;
  cookie = 0;
  std::memset(verf, 0, sizeof(verf));
  pages = 0;
  for (bool eof = false; !eof; ++pages) {
    DirPage page = client.readdirplus(many, cookie, verf, 8192, 32768);
    ASSERT_EQ(page.status, static_cast<uint32_t>(NFS3_OK));
    for (auto& e : page.entries) {
      cookie = e.cookie;
      plus[e.name] = std::move(e);
    }
    std::memcpy(verf, page.verf, sizeof(verf));
    eof = page.eof;
    ASSERT_LT(pages, 5000);
  }
  ASSERT_EQ(plus.size(), static_cast<size_t>(kFiles + 2));
  for (int i : {0, 1, 4242, 9999}) {
    const auto& e = plus["f" + std::to_string(i) + ".txt"];
    ASSERT_TRUE(e.fh && e.attr);
    EXPECT_EQ(e.attr->size, static_cast<uint64_t>(i % 7));
    EXPECT_EQ(e.attr->fileid, e.fileid);
    fattr3 a{};
    ASSERT_EQ(client.getattr(*e.fh, &a), static_cast<uint32_t>(NFS3_OK));
    EXPECT_EQ(a.fileid, e.fileid);
    EXPECT_EQ(a.size, static_cast<uint64_t>(i % 7));
  }
  // The ids READDIR gave are the ones READDIRPLUS gives.
  EXPECT_TRUE(ids.count(plus["f4242.txt"].fileid));

  // A cookie with a verifier of another listing: NFS3ERR_BAD_COOKIE. Too small: TOOSMALL.
  char bogus[NFS3_COOKIEVERFSIZE] = {1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(client.readdir(many, 10, bogus, 4096).status,
            static_cast<uint32_t>(NFS3ERR_BAD_COOKIE));
  EXPECT_EQ(client.readdir(many, 0, nullptr, 100).status, static_cast<uint32_t>(NFS3ERR_TOOSMALL));
  Fh readme;
  ASSERT_EQ(client.lookup(root, "README.md", &readme), static_cast<uint32_t>(NFS3_OK));
  EXPECT_EQ(client.readdir(readme, 0, nullptr, 4096).status, static_cast<uint32_t>(NFS3ERR_NOTDIR));
}

TEST_F(NfsServerTest, EveryMutationAnswersRofsWithWccData) {
  startServer();
  RpcTestClient client(server_->port());
  Fh root = mountRoot(client);
  Fh readme;
  ASSERT_EQ(client.lookup(root, "README.md", &readme), static_cast<uint32_t>(NFS3_OK));
  Fh r = root;
  Fh f = readme;
  std::string name = "new.txt";
  std::string name2 = "other.txt";
  std::string target = "README.md";
  const auto kRofs = static_cast<uint32_t>(NFS3ERR_ROFS);

  SETATTR3args sa{};
  RpcTestClient::setFh(sa.object, f);
  sa.new_attributes.size.set_it = 1;
  bool wcc_after = false;
  ASSERT_TRUE(client.run(
      [&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_setattr_async(rpc, cb, &sa, p); },
      [&](void* d) {
        auto* res = static_cast<SETATTR3res*>(d);
        EXPECT_EQ(res->status, NFS3ERR_ROFS);
        wcc_after = res->SETATTR3res_u.resfail.obj_wcc.after.attributes_follow != 0 &&
                    res->SETATTR3res_u.resfail.obj_wcc.before.attributes_follow != 0;
      }));
  EXPECT_TRUE(wcc_after);

  std::vector<char> payload(1000, 'z');
  WRITE3args wa{};
  RpcTestClient::setFh(wa.file, f);
  wa.offset = 0;
  wa.count = static_cast<count3>(payload.size());
  wa.stable = FILE_SYNC;
  wa.data.data_len = static_cast<u_int>(payload.size());
  wa.data.data_val = payload.data();
  ASSERT_TRUE(client.run(
      [&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_write_async(rpc, cb, &wa, p); },
      [&](void* d) {
        auto* res = static_cast<WRITE3res*>(d);
        EXPECT_EQ(res->status, NFS3ERR_ROFS);
        EXPECT_TRUE(res->WRITE3res_u.resfail.file_wcc.after.attributes_follow);
      }));
  // A full 1 MiB WRITE (the largest record the server accepts) is answered, not dropped.
  std::vector<char> mib(1u << 20, 'q');
  wa.count = static_cast<count3>(mib.size());
  wa.data.data_len = static_cast<u_int>(mib.size());
  wa.data.data_val = mib.data();
  EXPECT_EQ(client.status([&](auto* rpc, rpc_cb cb, void* p) {
    return rpc_nfs3_write_async(rpc, cb, &wa, p);
  }),
            kRofs);

  CREATE3args ca{};
  RpcTestClient::setFh(ca.where.dir, r);
  ca.where.name = name.data();
  ca.how.mode = UNCHECKED;
  ASSERT_TRUE(client.run(
      [&](auto* rpc, rpc_cb cb, void* p) { return rpc_nfs3_create_async(rpc, cb, &ca, p); },
      [&](void* d) {
        auto* res = static_cast<CREATE3res*>(d);
        EXPECT_EQ(res->status, NFS3ERR_ROFS);
        EXPECT_TRUE(res->CREATE3res_u.resfail.dir_wcc.before.attributes_follow);
        EXPECT_TRUE(res->CREATE3res_u.resfail.dir_wcc.after.attributes_follow);
      }));
  MKDIR3args ma{};
  RpcTestClient::setFh(ma.where.dir, r);
  ma.where.name = name.data();
  EXPECT_EQ(client.status([&](auto* rpc, rpc_cb cb, void* p) {
    return rpc_nfs3_mkdir_async(rpc, cb, &ma, p);
  }),
            kRofs);
  SYMLINK3args sy{};
  RpcTestClient::setFh(sy.where.dir, r);
  sy.where.name = name.data();
  sy.symlink.symlink_data = target.data();
  EXPECT_EQ(client.status([&](auto* rpc, rpc_cb cb, void* p) {
    return rpc_nfs3_symlink_async(rpc, cb, &sy, p);
  }),
            kRofs);
  MKNOD3args mk{};
  RpcTestClient::setFh(mk.where.dir, r);
  mk.where.name = name.data();
  mk.what.type = NF3FIFO;
  EXPECT_EQ(client.status([&](auto* rpc, rpc_cb cb, void* p) {
    return rpc_nfs3_mknod_async(rpc, cb, &mk, p);
  }),
            kRofs);
  REMOVE3args rm{};
  RpcTestClient::setFh(rm.object.dir, r);
  rm.object.name = target.data();
  EXPECT_EQ(client.status([&](auto* rpc, rpc_cb cb, void* p) {
    return rpc_nfs3_remove_async(rpc, cb, &rm, p);
  }),
            kRofs);
  std::string data_dir = "data";
  RMDIR3args rd{};
  RpcTestClient::setFh(rd.object.dir, r);
  rd.object.name = data_dir.data();
  EXPECT_EQ(client.status([&](auto* rpc, rpc_cb cb, void* p) {
    return rpc_nfs3_rmdir_async(rpc, cb, &rd, p);
  }),
            kRofs);
  Fh r2 = root;
  RENAME3args rn{};
  RpcTestClient::setFh(rn.from.dir, r);
  rn.from.name = target.data();
  RpcTestClient::setFh(rn.to.dir, r2);
  rn.to.name = name2.data();
  EXPECT_EQ(client.status([&](auto* rpc, rpc_cb cb, void* p) {
    return rpc_nfs3_rename_async(rpc, cb, &rn, p);
  }),
            kRofs);
  LINK3args ln{};
  RpcTestClient::setFh(ln.file, f);
  RpcTestClient::setFh(ln.link.dir, r);
  ln.link.name = name2.data();
  EXPECT_EQ(client.status([&](auto* rpc, rpc_cb cb, void* p) {
    return rpc_nfs3_link_async(rpc, cb, &ln, p);
  }),
            kRofs);
  // OS junk names are refused with EACCES first, as on FUSE.
  std::string junk = ".DS_Store";
  ca.where.name = junk.data();
  EXPECT_EQ(client.status([&](auto* rpc, rpc_cb cb, void* p) {
    return rpc_nfs3_create_async(rpc, cb, &ca, p);
  }),
            static_cast<uint32_t>(NFS3ERR_ACCES));
  // A name with a slash never reaches the Vfs.
  std::string slashed = "a/b";
  ca.where.name = slashed.data();
  EXPECT_EQ(client.status([&](auto* rpc, rpc_cb cb, void* p) {
    return rpc_nfs3_create_async(rpc, cb, &ca, p);
  }),
            static_cast<uint32_t>(NFS3ERR_INVAL));

  COMMIT3args co{};
  RpcTestClient::setFh(co.file, f);
  EXPECT_EQ(client.status([&](auto* rpc, rpc_cb cb, void* p) {
    return rpc_nfs3_commit_async(rpc, cb, &co, p);
  }),
            static_cast<uint32_t>(NFS3_OK));
  // Nothing changed remotely.
  EXPECT_EQ(remote_->contents("README.md").size(), 10u);
}

TEST_F(NfsServerTest, UnknownAndRemovedHandlesAreStale) {
  vfs::VfsConfig vc;
  vc.metadata_ttl = std::chrono::milliseconds(0);
  vc.negative_ttl = std::chrono::milliseconds(0);
  startServer(vc);
  RpcTestClient client(server_->port());
  Fh root = mountRoot(client);

  Fh garbage(20, 'x');
  EXPECT_EQ(client.getattr(garbage), static_cast<uint32_t>(NFS3ERR_STALE));
  Fh short_fh(3, 'x');
  EXPECT_EQ(client.getattr(short_fh), static_cast<uint32_t>(NFS3ERR_STALE));
  Fh unknown_id = root;
  unknown_id[19] = 0x7f;  // an id never handed out
  EXPECT_EQ(client.getattr(unknown_id), static_cast<uint32_t>(NFS3ERR_STALE));
  Fh other_epoch = root;
  other_epoch[5] ^= 0x55;
  EXPECT_EQ(client.getattr(other_epoch), static_cast<uint32_t>(NFS3ERR_STALE));

  Fh readme;
  ASSERT_EQ(client.lookup(root, "README.md", &readme), static_cast<uint32_t>(NFS3_OK));
  std::vector<uint8_t> bytes;
  ASSERT_EQ(client.read(readme, 0, 100, &bytes), static_cast<uint32_t>(NFS3_OK));
  ASSERT_TRUE(remote_->removeFile("README.md"));
  EXPECT_EQ(client.getattr(readme), static_cast<uint32_t>(NFS3ERR_STALE));
  EXPECT_EQ(client.read(readme, 0, 100, &bytes), static_cast<uint32_t>(NFS3ERR_STALE));
  EXPECT_EQ(client.lookup(root, "README.md", nullptr), static_cast<uint32_t>(NFS3ERR_NOENT));
  // Re-created: the same path comes back under the same handle.
  remote_->putFile("README.md", "back again\n");
  EXPECT_EQ(client.lookup(root, "README.md", nullptr), static_cast<uint32_t>(NFS3_OK));
  ASSERT_EQ(client.read(readme, 0, 100, &bytes), static_cast<uint32_t>(NFS3_OK));
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "back again\n");
}

TEST_F(NfsServerTest, HandlesSurviveARestart) {
  Fh root, leaf, big;
  fattr3 leaf_attr{};
  {
    startServer();
    RpcTestClient client(server_->port());
    root = mountRoot(client);
    ASSERT_EQ(client.lookupPath(root, "data/nested/deep/leaf.txt", &leaf),
              static_cast<uint32_t>(NFS3_OK));
    ASSERT_EQ(client.getattr(leaf, &leaf_attr), static_cast<uint32_t>(NFS3_OK));
    ASSERT_EQ(client.lookupPath(root, "data/big.bin", &big), static_cast<uint32_t>(NFS3_OK));
  }
  stopServer();
  startServer();  // a new Vfs (new inode numbers) and a new server on the same cache dir
  {
    RpcTestClient client(server_->port());
    fattr3 a{};
    ASSERT_EQ(client.getattr(leaf, &a), static_cast<uint32_t>(NFS3_OK));
    EXPECT_EQ(a.fileid, leaf_attr.fileid);
    std::vector<uint8_t> bytes;
    ASSERT_EQ(client.read(leaf, 0, 100, &bytes), static_cast<uint32_t>(NFS3_OK));
    EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "leaf\n");
    ASSERT_EQ(client.read(big, 4096, 8192, &bytes), static_cast<uint32_t>(NFS3_OK));
    const auto expected = patternBytes(kBigSize, 7);
    EXPECT_EQ(0, std::memcmp(bytes.data(), expected.data() + 4096, 8192));
    Fh mounted = mountRoot(client);
    EXPECT_EQ(mounted, root);
  }
  // Removed while the server was down: stale after the restart.
  stopServer();
  ASSERT_TRUE(remote_->removeFile("data/nested/deep/leaf.txt"));
  startServer();
  {
    RpcTestClient client(server_->port());
    EXPECT_EQ(client.getattr(leaf), static_cast<uint32_t>(NFS3ERR_STALE));
    EXPECT_EQ(client.getattr(big), static_cast<uint32_t>(NFS3_OK));
  }
  // Another source (or a lost table) never resolves the old handles.
  stopServer();
  startServer({}, "bucket test/two");
  {
    RpcTestClient client(server_->port());
    EXPECT_EQ(client.getattr(big), static_cast<uint32_t>(NFS3ERR_STALE));
  }
}

TEST_F(NfsServerTest, ConcurrentClientsAndASlowReadDoNotBlockOthers) {
  for (int i = 0; i < 8; ++i) {
    remote_->putFile("c/file" + std::to_string(i), patternBytes(300'000 + static_cast<uint64_t>(i),
                                                                100 + static_cast<uint64_t>(i)));
  }
  startServer();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      RpcTestClient client(server_->port());
      Fh root;
      if (client.mount("/", &root) != MNT3_OK) {
        failures++;
        return;
      }
      const uint64_t size = 300'000 + static_cast<uint64_t>(t);
      const auto expected = patternBytes(size, 100 + static_cast<uint64_t>(t));
      Fh fh;
      if (client.lookupPath(root, "c/file" + std::to_string(t), &fh) != NFS3_OK) {
        failures++;
        return;
      }
      std::mt19937_64 rng(static_cast<uint64_t>(t));
      for (int i = 0; i < 40; ++i) {
        const uint64_t off = rng() % size;
        const auto count = static_cast<uint32_t>(1 + rng() % 65536);
        std::vector<uint8_t> got;
        if (client.read(fh, off, count, &got) != NFS3_OK ||
            got.size() != std::min<uint64_t>(count, size - off) ||
            std::memcmp(got.data(), expected.data() + off, got.size()) != 0) {
          failures++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);

  // A READ stuck on the remote parks a worker, not the server.
  RpcTestClient slow(server_->port());
  RpcTestClient fast(server_->port());
  Fh root = mountRoot(slow);
  Fh fh;
  ASSERT_EQ(slow.lookup(root, "README.md", &fh), static_cast<uint32_t>(NFS3_OK));
  remote_->pauseReads(true);
  Fh copy = fh;
  READ3args ra{};
  RpcTestClient::setFh(ra.file, copy);
  ra.count = 100;
  bool slow_done = false;
  std::string slow_bytes;
  auto cb = [](struct rpc_context*, int status, void* data, void* priv) {
    auto* out = static_cast<std::pair<bool*, std::string*>*>(priv);
    *out->first = true;
    if (status == RPC_STATUS_SUCCESS) {
      auto* res = static_cast<READ3res*>(data);
      if (res->status == NFS3_OK) {
        out->second->assign(res->READ3res_u.resok.data.data_val,
                            res->READ3res_u.resok.data.data_len);
      }
    }
  };
  std::pair<bool*, std::string*> ctx{&slow_done, &slow_bytes};
  ASSERT_EQ(rpc_nfs3_read_async(slow.rpc(), cb, &ra, &ctx), 0);
  for (int i = 0; i < 5; ++i) rpc_service(slow.rpc(), POLLOUT);  // push the request out
  const auto start = std::chrono::steady_clock::now();
  Fh froot = mountRoot(fast);
  EXPECT_EQ(fast.getattr(froot), static_cast<uint32_t>(NFS3_OK));
  EXPECT_EQ(fast.lookup(froot, "data", nullptr), static_cast<uint32_t>(NFS3_OK));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_FALSE(slow_done);
  remote_->pauseReads(false);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!slow_done && std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{rpc_get_fd(slow.rpc()), static_cast<short>(rpc_which_events(slow.rpc())), 0};
    if (::poll(&pfd, 1, 100) > 0) rpc_service(slow.rpc(), pfd.revents);
  }
  EXPECT_TRUE(slow_done);
  EXPECT_EQ(slow_bytes, "hello nfs\n");
}

TEST_F(NfsServerTest, MalformedRpcClosesOnlyThatConnection) {
  startServer();
  RpcTestClient good(server_->port());
  Fh root = mountRoot(good);

  // Garbage bytes ("GET / HTTP/1.1" reads as a 1.2 GB non-final fragment).
  int fd = connectRaw(server_->port());
  ASSERT_GE(fd, 0);
  const std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  sendAll(fd, std::vector<uint8_t>(http.begin(), http.end()));
  EXPECT_TRUE(closedByPeer(fd, std::chrono::seconds(10)));
  ::close(fd);

  // A 2 GiB record length.
  fd = connectRaw(server_->port());
  std::vector<uint8_t> huge;
  putBe32(huge, 0xffffffffu);
  huge.resize(64, 0);
  sendAll(fd, huge);
  EXPECT_TRUE(closedByPeer(fd, std::chrono::seconds(10)));
  ::close(fd);

  // A well-framed record that is not an RPC call (random words).
  fd = connectRaw(server_->port());
  std::vector<uint8_t> junk;
  putBe32(junk, 0x80000000u | 32);
  for (int i = 0; i < 8; ++i) putBe32(junk, 0xdeadbeefu + static_cast<uint32_t>(i));
  sendAll(fd, junk);
  EXPECT_TRUE(closedByPeer(fd, std::chrono::seconds(10)));
  ::close(fd);

  // A call whose credential length runs past the record.
  fd = connectRaw(server_->port());
  std::vector<uint8_t> bad_cred;
  putBe32(bad_cred, 0x80000000u | 32);
  for (uint32_t w : {1u, 0u, 2u, 100003u, 3u, 1u, 1u, 300u}) putBe32(bad_cred, w);
  sendAll(fd, bad_cred);
  EXPECT_TRUE(closedByPeer(fd, std::chrono::seconds(10)));
  ::close(fd);

  // A truncated record, then the client goes away: nothing to answer, nothing leaks.
  fd = connectRaw(server_->port());
  std::vector<uint8_t> truncated;
  putBe32(truncated, 0x80000000u | 1000);
  truncated.resize(100, 7);
  sendAll(fd, truncated);
  ::close(fd);

  // A call with undecodable arguments gets GARBAGE_ARGS and the connection stays usable;
  // an unknown program gets PROG_UNAVAIL.
  fd = connectRaw(server_->port());
  std::vector<uint8_t> garbage_args;
  putBe32(garbage_args, 0x80000000u | 40);
  for (uint32_t w : {7u, 0u, 2u, 100003u, 3u, 1u /*GETATTR*/, 0u, 0u, 0u, 0u}) {
    putBe32(garbage_args, w);
  }
  std::vector<uint8_t> null_call;
  putBe32(null_call, 0x80000000u | 40);
  for (uint32_t w : {8u, 0u, 2u, 100003u, 3u, 0u, 0u, 0u, 0u, 0u}) putBe32(null_call, w);
  std::vector<uint8_t> both = garbage_args;
  both.insert(both.end(), null_call.begin(), null_call.end());
  sendAll(fd, both);
  // Expect two replies: xid 7 with accept_stat GARBAGE_ARGS (4), xid 8 SUCCESS (0).
  std::vector<uint8_t> in;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (in.size() < 56 && std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    uint8_t buf[256];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    in.insert(in.end(), buf, buf + n);
  }
  ASSERT_EQ(in.size(), 56u);  // 2 × (mark + xid, REPLY, MSG_ACCEPTED, verf(2), stat)
  auto word = [&](size_t i) {
    return (static_cast<uint32_t>(in[i * 4]) << 24) | (static_cast<uint32_t>(in[i * 4 + 1]) << 16) |
           (static_cast<uint32_t>(in[i * 4 + 2]) << 8) | in[i * 4 + 3];
  };
  EXPECT_EQ(word(1), 7u);
  EXPECT_EQ(word(6), 4u);  // GARBAGE_ARGS
  EXPECT_EQ(word(8), 8u);
  EXPECT_EQ(word(13), 0u);  // SUCCESS
  ::close(fd);

  // The good client never noticed.
  EXPECT_EQ(good.getattr(root), static_cast<uint32_t>(NFS3_OK));
  RpcTestClient fresh(server_->port());
  EXPECT_EQ(fresh.getattr(root), static_cast<uint32_t>(NFS3_OK));
  EXPECT_GE(server_->stats().connections_rejected, 4u);
}

TEST_F(NfsServerTest, ClientVanishingWithRepliesInFlightIsHarmless) {
  startServer();
  for (int round = 0; round < 5; ++round) {
    RpcTestClient client(server_->port());
    Fh root = mountRoot(client);
    Fh big;
    ASSERT_EQ(client.lookupPath(root, "data/big.bin", &big), static_cast<uint32_t>(NFS3_OK));
    Fh copy = big;
    READ3args ra{};
    RpcTestClient::setFh(ra.file, copy);
    ra.count = 1u << 20;
    auto ignore = [](struct rpc_context*, int, void*, void*) {};
    for (int i = 0; i < 16; ++i) {
      ra.offset = static_cast<uint64_t>(i) * 65536;
      ASSERT_EQ(rpc_nfs3_read_async(client.rpc(), ignore, &ra, nullptr), 0);
    }
    for (int i = 0; i < 20; ++i) rpc_service(client.rpc(), POLLOUT);
    // The client never reads: the replies (16 MiB) fill the socket and queue up on the
    // server. Then `client` goes away with them unsent.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  RpcTestClient after(server_->port());
  Fh root = mountRoot(after);
  EXPECT_EQ(after.getattr(root), static_cast<uint32_t>(NFS3_OK));
  EXPECT_GT(server_->stats().closed_with_unsent_replies, 0u);
}

std::string str(const std::vector<uint8_t>& v) { return {v.begin(), v.end()}; }
std::vector<uint8_t> bytesOf(std::string_view s) { return {s.begin(), s.end()}; }
constexpr auto kOk = static_cast<uint32_t>(NFS3_OK);

TEST_F(NfsServerTest, RandomOffsetWritesMatchALocalModelAndReachTheRemote) {
  makeWritable();
  startServer(advanced());
  std::vector<uint8_t> model;
  uint64_t verf = 0;
  {
    RpcTestClient client(server_->port());
    Fh root = mountRoot(client);
    Fh f;
    ASSERT_EQ(client.create(root, "w.bin", UNCHECKED, &f), kOk);
    ASSERT_FALSE(f.empty());
    std::mt19937_64 rng(1234);
    for (int i = 0; i < 150; ++i) {
      const uint64_t off = rng() % 400000;
      std::vector<uint8_t> chunk(1 + rng() % 30000);
      for (auto& b : chunk) b = static_cast<uint8_t>(rng());
      const auto w = client.write(f, off, chunk, i % 50 == 49 ? FILE_SYNC : UNSTABLE);
      ASSERT_EQ(w.status, kOk) << "write " << i;
      ASSERT_EQ(w.count, chunk.size());
      EXPECT_EQ(w.committed, i % 50 == 49 ? FILE_SYNC : UNSTABLE);
      if (verf == 0) verf = w.verf;
      EXPECT_EQ(w.verf, verf);
      if (model.size() < off + chunk.size()) model.resize(off + chunk.size(), 0);
      std::copy(chunk.begin(), chunk.end(), model.begin() + static_cast<std::ptrdiff_t>(off));
      ASSERT_TRUE(w.after.has_value());
      EXPECT_EQ(w.after->size, model.size());
      if (i % 30 == 0) {
        // READ goes through the handle opened for writing and sees the staged bytes.
        std::vector<uint8_t> back;
        ASSERT_EQ(client.readAll(f, &back, 65536), kOk);
        ASSERT_TRUE(back == model) << "after write " << i;
      }
    }
    uint64_t commit_verf = 0;
    ASSERT_EQ(client.commit(f, &commit_verf), kOk);
    EXPECT_EQ(commit_verf, verf);
    fattr3 a{};
    ASSERT_EQ(client.getattr(f, &a), kOk);
    EXPECT_EQ(a.size, model.size());
  }
  stopAndFlush();
  EXPECT_TRUE(remote_->contents("w.bin") == model);
  // A fresh server (new Vfs, empty caches) reads the committed bytes back.
  startServer(advanced());
  RpcTestClient client(server_->port());
  Fh root = mountRoot(client);
  Fh f;
  ASSERT_EQ(client.lookup(root, "w.bin", &f), kOk);
  std::vector<uint8_t> back;
  ASSERT_EQ(client.readAll(f, &back), kOk);
  EXPECT_TRUE(back == model);
}

TEST_F(NfsServerTest, AppendTruncateExtendAndGuardedSetattr) {
  makeWritable();
  startServer(advanced());
  {
    RpcTestClient client(server_->port());
    Fh root = mountRoot(client);
    Fh f;
    ASSERT_EQ(client.lookup(root, "README.md", &f), kOk);
    ASSERT_EQ(client.write(f, 10, bytesOf("more\n")).status, kOk);  // append
    std::vector<uint8_t> back;
    ASSERT_EQ(client.readAll(f, &back), kOk);
    EXPECT_EQ(str(back), "hello nfs\nmore\n");

    fattr3 a{};
    ASSERT_EQ(client.getattr(f, &a), kOk);
    EXPECT_EQ(a.size, 15u);
    sattr3 shrink{};
    shrink.size.set_it = 1;
    shrink.size.set_size3_u.size = 5;
    nfstime3 wrong = a.ctime;
    wrong.seconds += 1;
    EXPECT_EQ(client.setattr(f, shrink, wrong), static_cast<uint32_t>(NFS3ERR_NOT_SYNC));
    fattr3 after{};
    ASSERT_EQ(client.setattr(f, shrink, a.ctime, &after), kOk);
    EXPECT_EQ(after.size, 5u);
    ASSERT_EQ(client.readAll(f, &back), kOk);
    EXPECT_EQ(str(back), "hello");

    sattr3 extend{};
    extend.size.set_it = 1;
    extend.size.set_size3_u.size = 8;
    extend.mode.set_it = 1;
    extend.mode.set_mode3_u.mode = 0600;
    ASSERT_EQ(client.setattr(f, extend), kOk);
    ASSERT_EQ(client.readAll(f, &back), kOk);
    EXPECT_EQ(back, (std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o', 0, 0, 0}));
    ASSERT_EQ(client.getattr(f, &a), kOk);
    EXPECT_EQ(a.mode & 07777, 0600u);
    EXPECT_EQ(a.size, 8u);
    ASSERT_EQ(client.commit(f), kOk);
    // A size on a directory is refused.
    EXPECT_EQ(client.setattr(root, shrink), static_cast<uint32_t>(NFS3ERR_INVAL));
  }
  stopAndFlush();
  EXPECT_EQ(remote_->contents("README.md"),
            (std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o', 0, 0, 0}));
}

TEST_F(NfsServerTest, WriteAfterReadOrTruncateUsesAWritableHandle) {
  makeWritable();
  startServer(advanced());
  const auto expected_big = patternBytes(kBigSize, 7);
  {
    RpcTestClient client(server_->port());
    Fh root = mountRoot(client);
    Fh big;
    ASSERT_EQ(client.lookupPath(root, "data/big.bin", &big), kOk);
    std::vector<uint8_t> bytes;
    ASSERT_EQ(client.read(big, 0, 4096, &bytes), kOk);  // pools a read-only handle
    // #178: the WRITE must not go through that read-only handle.
    ASSERT_EQ(client.write(big, 100, bytesOf("XYZ"), FILE_SYNC).status, kOk);
    ASSERT_EQ(client.read(big, 98, 7, &bytes), kOk);
    EXPECT_EQ(bytes, (std::vector<uint8_t>{expected_big[98], expected_big[99], 'X', 'Y', 'Z',
                                           expected_big[103], expected_big[104]}));
    // #185 (VS Code saving): SETATTR size=0, then WRITE with no pooled handle.
    Fh readme;
    ASSERT_EQ(client.lookup(root, "README.md", &readme), kOk);
    sattr3 zero{};
    zero.size.set_it = 1;
    ASSERT_EQ(client.setattr(readme, zero), kOk);
    ASSERT_EQ(client.write(readme, 0, bytesOf("saved\n")).status, kOk);
    ASSERT_EQ(client.readAll(readme, &bytes), kOk);
    EXPECT_EQ(str(bytes), "saved\n");
    // A size change with only a read-only handle around: the next READ sees the new length
    // (the old handle would stop at the old end of file).
    Fh leaf;
    ASSERT_EQ(client.lookupPath(root, "data/nested/deep/leaf.txt", &leaf), kOk);
    ASSERT_EQ(client.readAll(leaf, &bytes), kOk);
    EXPECT_EQ(str(bytes), "leaf\n");
    sattr3 longer{};
    longer.size.set_it = 1;
    longer.size.set_size3_u.size = 8;
    ASSERT_EQ(client.setattr(leaf, longer), kOk);
    ASSERT_EQ(client.readAll(leaf, &bytes), kOk);
    EXPECT_EQ(bytes, (std::vector<uint8_t>{'l', 'e', 'a', 'f', '\n', 0, 0, 0}));
  }
  stopAndFlush();
  EXPECT_EQ(str(remote_->contents("README.md")), "saved\n");
  EXPECT_EQ(remote_->contents("data/nested/deep/leaf.txt"),
            (std::vector<uint8_t>{'l', 'e', 'a', 'f', '\n', 0, 0, 0}));
  auto big = remote_->contents("data/big.bin");
  ASSERT_EQ(big.size(), expected_big.size());
  EXPECT_EQ(std::string(big.begin() + 100, big.begin() + 103), "XYZ");
  EXPECT_EQ(0, std::memcmp(big.data() + 103, expected_big.data() + 103, kBigSize - 103));
}

TEST_F(NfsServerTest, CreateModesAndEmptyFilesCommit) {
  makeWritable();
  startServer(advanced());
  {
    RpcTestClient client(server_->port());
    Fh root = mountRoot(client);
    const auto kExist = static_cast<uint32_t>(NFS3ERR_EXIST);
    EXPECT_EQ(client.create(root, "README.md", GUARDED, nullptr), kExist);
    EXPECT_EQ(client.create(root, "data", UNCHECKED, nullptr), kExist);
    Fh readme;
    ASSERT_EQ(client.create(root, "README.md", UNCHECKED, &readme), kOk);  // no truncation
    std::vector<uint8_t> bytes;
    ASSERT_EQ(client.readAll(readme, &bytes), kOk);
    EXPECT_EQ(str(bytes), "hello nfs\n");

    Fh g, x1, x2;
    sattr3 mode{};
    mode.mode.set_it = 1;
    mode.mode.set_mode3_u.mode = 0640;
    ASSERT_EQ(client.create(root, "guarded.txt", GUARDED, &g, mode), kOk);
    fattr3 a{};
    ASSERT_EQ(client.getattr(g, &a), kOk);
    EXPECT_EQ(a.size, 0u);
    EXPECT_EQ(a.mode & 07777, 0640u);
    EXPECT_EQ(client.create(root, "guarded.txt", GUARDED, nullptr), kExist);
    ASSERT_EQ(client.create(root, "excl.txt", EXCLUSIVE, &x1, {}, 0x1122334455667788ULL), kOk);
    // A retransmission (same verifier) succeeds with the same handle; another one is EEXIST.
    ASSERT_EQ(client.create(root, "excl.txt", EXCLUSIVE, &x2, {}, 0x1122334455667788ULL), kOk);
    EXPECT_EQ(x1, x2);
    EXPECT_EQ(client.create(root, "excl.txt", EXCLUSIVE, nullptr, {}, 0x99), kExist);
    Fh sub;
    ASSERT_EQ(client.mkdir(root, "newdir", &sub), kOk);
    Fh inner;
    ASSERT_EQ(client.create(sub, "inner.txt", UNCHECKED, &inner), kOk);
    ASSERT_EQ(client.write(inner, 0, bytesOf("in\n")).status, kOk);
  }
  stopAndFlush();
  // Created and never written: committed empty all the same.
  ASSERT_TRUE(remote_->stat("guarded.txt").ok());
  EXPECT_TRUE(remote_->contents("guarded.txt").empty());
  ASSERT_TRUE(remote_->stat("excl.txt").ok());
  EXPECT_EQ(str(remote_->contents("newdir/inner.txt")), "in\n");
  EXPECT_EQ(str(remote_->contents("README.md")), "hello nfs\n");
}

TEST_F(NfsServerTest, IdleWritableHandlesAreReleasedSoWritesCommitWithoutAClose) {
  makeWritable();
  write_idle_ = std::chrono::milliseconds(100);
  startServer(advanced());
  RpcTestClient client(server_->port());
  Fh root = mountRoot(client);
  Fh f;
  ASSERT_EQ(client.create(root, "idle.txt", UNCHECKED, &f), kOk);
  const auto w = client.write(f, 0, bytesOf("committed by idleness\n"));
  ASSERT_EQ(w.status, kOk);
  EXPECT_TRUE(eventually([&] {
    return str(remote_->contents("idle.txt")) == "committed by idleness\n";
  })) << "the write was not committed while the server kept running";
  // The handle was released: COMMIT has nothing left and answers the same verifier.
  uint64_t verf = 0;
  ASSERT_EQ(client.commit(f, &verf), kOk);
  EXPECT_EQ(verf, w.verf);
  // Writing again opens a new handle on the committed file.
  ASSERT_EQ(client.write(f, 22, bytesOf("again\n"), FILE_SYNC).status, kOk);
  EXPECT_TRUE(eventually(
      [&] { return str(remote_->contents("idle.txt")) == "committed by idleness\nagain\n"; }));
}

TEST_F(NfsServerTest, RenamedFilesAndDirectoriesKeepTheirHandlesAcrossARestart) {
  makeWritable();
  remote_->putFile("data/nested/keep.txt", "keeps the directory\n");
  remote_->putFile("target.txt", "old target\n");
  vfs::VfsConfig vc = advanced();
  vc.negative_ttl = std::chrono::milliseconds(0);
  vc.metadata_ttl = std::chrono::milliseconds(0);  // a lookup miss lists again (re-creation)
  startServer(vc);
  Fh root, readme, leaf, nested, target;
  {
    RpcTestClient client(server_->port());
    root = mountRoot(client);
    ASSERT_EQ(client.lookup(root, "README.md", &readme), kOk);
    ASSERT_EQ(client.lookupPath(root, "data/nested/deep/leaf.txt", &leaf), kOk);
    ASSERT_EQ(client.lookupPath(root, "data/nested", &nested), kOk);
    Fh data;
    ASSERT_EQ(client.lookup(root, "data", &data), kOk);

    ASSERT_EQ(client.rename(root, "README.md", root, "moved.md"), kOk);
    std::vector<uint8_t> bytes;
    ASSERT_EQ(client.readAll(readme, &bytes), kOk);
    EXPECT_EQ(str(bytes), "hello nfs\n");
    EXPECT_EQ(client.lookup(root, "README.md", nullptr), static_cast<uint32_t>(NFS3ERR_NOENT));

    ASSERT_EQ(client.rename(data, "nested", root, "n2"), kOk);
    ASSERT_EQ(client.readAll(leaf, &bytes), kOk);
    EXPECT_EQ(str(bytes), "leaf\n");
    EXPECT_EQ(client.lookup(data, "nested", nullptr), static_cast<uint32_t>(NFS3ERR_NOENT));
    Fh via_new;
    ASSERT_EQ(client.lookupPath(root, "n2/deep/leaf.txt", &via_new), kOk);
    EXPECT_EQ(via_new, leaf);  // one object, one handle
    Fh deep;
    ASSERT_EQ(client.lookup(nested, "deep", &deep), kOk);  // the moved directory's handle

    // Renaming over a file: the replaced file's handle turns stale.
    ASSERT_EQ(client.lookup(root, "target.txt", &target), kOk);
    ASSERT_EQ(client.rename(deep, "leaf.txt", root, "target.txt"), kOk);
    EXPECT_EQ(client.getattr(target), static_cast<uint32_t>(NFS3ERR_STALE));
    ASSERT_EQ(client.readAll(leaf, &bytes), kOk);
    EXPECT_EQ(str(bytes), "leaf\n");
  }
  stopAndFlush();
  EXPECT_EQ(str(remote_->contents("moved.md")), "hello nfs\n");
  EXPECT_EQ(str(remote_->contents("target.txt")), "leaf\n");
  startServer(vc);
  {
    RpcTestClient client(server_->port());
    std::vector<uint8_t> bytes;
    ASSERT_EQ(client.readAll(readme, &bytes), kOk);
    EXPECT_EQ(str(bytes), "hello nfs\n");
    ASSERT_EQ(client.readAll(leaf, &bytes), kOk);
    EXPECT_EQ(str(bytes), "leaf\n");
    EXPECT_EQ(client.getattr(nested), kOk);
    EXPECT_EQ(client.getattr(target), static_cast<uint32_t>(NFS3ERR_STALE));

    // Removed: stale, even when the name comes back.
    ASSERT_EQ(client.remove(root, "moved.md"), kOk);
    EXPECT_EQ(client.getattr(readme), static_cast<uint32_t>(NFS3ERR_STALE));
    EXPECT_EQ(client.read(readme, 0, 10, &bytes), static_cast<uint32_t>(NFS3ERR_STALE));
    Fh fresh;
    ASSERT_EQ(client.create(root, "moved.md", GUARDED, &fresh), kOk);
    EXPECT_NE(fresh, readme);
    EXPECT_EQ(client.getattr(readme), static_cast<uint32_t>(NFS3ERR_STALE));
    ASSERT_EQ(client.mkdir(root, "emptydir"), kOk);
    ASSERT_EQ(client.remove(root, "emptydir", true), kOk);
    EXPECT_EQ(client.lookup(root, "emptydir", nullptr), static_cast<uint32_t>(NFS3ERR_NOENT));
    EXPECT_EQ(client.remove(root, "nothing-here"), static_cast<uint32_t>(NFS3ERR_NOENT));
  }
}

TEST_F(NfsServerTest, MovingADirectoryWithUncommittedFilesMovesThem) {
  makeWritable();
  startServer(advanced());
  RpcTestClient client(server_->port());
  Fh root = mountRoot(client);
  Fh dir, f;
  ASSERT_EQ(client.mkdir(root, "src", &dir), kOk);
  ASSERT_EQ(client.create(dir, "a.txt", UNCHECKED, &f), kOk);
  ASSERT_EQ(client.write(f, 0, bytesOf("pending\n")).status, kOk);
  // Not committed yet: the file moves with the directory, no JUKEBOX.
  EXPECT_EQ(client.rename(root, "src", root, "dst"), kOk);
  std::vector<uint8_t> bytes;
  ASSERT_EQ(client.readAll(f, &bytes), kOk);  // the handle followed the directory
  EXPECT_EQ(str(bytes), "pending\n");
  stopAndFlush();
  EXPECT_EQ(str(remote_->contents("dst/a.txt")), "pending\n");
  EXPECT_FALSE(remote_->stat("src/a.txt").ok());
}

TEST_F(NfsServerTest, ExclusiveCreateVerifiersSurviveARestart) {
  makeWritable();
  constexpr uint64_t kVerf = 0x0badc0ffee15600dULL;
  Fh made, recreated;
  startServer(advanced());
  {
    RpcTestClient client(server_->port());
    Fh root = mountRoot(client);
    ASSERT_EQ(client.create(root, "excl.txt", EXCLUSIVE, &made, {}, kVerf), kOk);
    // Removed and made again (GUARDED): the old verifier went with the old file.
    ASSERT_EQ(client.create(root, "again.txt", EXCLUSIVE, nullptr, {}, kVerf), kOk);
    ASSERT_EQ(client.remove(root, "again.txt"), kOk);
    ASSERT_EQ(client.create(root, "again.txt", GUARDED, &recreated), kOk);
  }
  stopAndFlush();
  ASSERT_TRUE(remote_->stat("excl.txt").ok());
  // A new Vfs and server: the retransmission still finds its verifier.
  startServer(advanced());
  {
    RpcTestClient client(server_->port());
    Fh root = mountRoot(client);
    Fh again;
    ASSERT_EQ(client.create(root, "excl.txt", EXCLUSIVE, &again, {}, kVerf), kOk);
    EXPECT_EQ(again, made);
    EXPECT_EQ(client.create(root, "excl.txt", EXCLUSIVE, nullptr, {}, kVerf + 1),
              static_cast<uint32_t>(NFS3ERR_EXIST));
    EXPECT_EQ(client.create(root, "again.txt", EXCLUSIVE, nullptr, {}, kVerf),
              static_cast<uint32_t>(NFS3ERR_EXIST));
    fattr3 a{};
    ASSERT_EQ(client.getattr(recreated, &a), kOk);
    EXPECT_EQ(a.size, 0u);
  }
}

TEST_F(NfsServerTest, SymlinksAreMadeReadListedAndRemoved) {
  makeWritable();
  startServer(advanced());
  RpcTestClient client(server_->port());
  Fh root = mountRoot(client);
  const std::string target = "data/nested/deep/leaf.txt";
  Fh link;
  fattr3 made{};
  ASSERT_EQ(client.symlink(root, "to-leaf", target, &link, &made), kOk);
  ASSERT_FALSE(link.empty());
  EXPECT_EQ(made.type, NF3LNK);
  EXPECT_EQ(made.size, target.size());
  std::string read_back;
  ASSERT_EQ(client.readlink(link, &read_back), kOk);
  EXPECT_EQ(read_back, target);
  fattr3 a{};
  ASSERT_EQ(client.getattr(link, &a), kOk);
  EXPECT_EQ(a.type, NF3LNK);
  EXPECT_EQ(a.fileid, made.fileid);
  Fh looked;
  fattr3 la{};
  ASSERT_EQ(client.lookup(root, "to-leaf", &looked, &la), kOk);
  EXPECT_EQ(looked, link);
  EXPECT_EQ(la.type, NF3LNK);
  // Listed as a symlink, files and directories as before.
  DirPage page = client.readdirplus(root, 0, nullptr, 64 * 1024, 256 * 1024);
  ASSERT_EQ(page.status, kOk);
  std::map<std::string, ftype3> types;
  for (const auto& e : page.entries) {
    if (e.attr) types[e.name] = e.attr->type;
  }
  EXPECT_EQ(types["to-leaf"], NF3LNK);
  EXPECT_EQ(types["README.md"], NF3REG);
  EXPECT_EQ(types["data"], NF3DIR);

  const auto kInval = static_cast<uint32_t>(NFS3ERR_INVAL);
  Fh readme;
  ASSERT_EQ(client.lookup(root, "README.md", &readme), kOk);
  EXPECT_EQ(client.readlink(readme, nullptr), kInval);
  EXPECT_EQ(client.readlink(root, nullptr), kInval);
  std::vector<uint8_t> bytes;
  EXPECT_EQ(client.read(link, 0, 100, &bytes), kInval);
  EXPECT_EQ(client.write(link, 0, bytesOf("x")).status, kInval);
  const auto kExist = static_cast<uint32_t>(NFS3ERR_EXIST);
  EXPECT_EQ(client.symlink(root, "README.md", "x"), kExist);
  EXPECT_EQ(client.symlink(root, "to-leaf", "y"), kExist);
  EXPECT_EQ(client.create(root, "to-leaf", UNCHECKED, nullptr), kExist);

  // A symlink in a subdirectory, renamed: its handle follows.
  Fh data;
  ASSERT_EQ(client.lookup(root, "data", &data), kOk);
  Fh rel;
  ASSERT_EQ(client.symlink(data, "up", "../README.md", &rel), kOk);
  ASSERT_EQ(client.rename(data, "up", root, "up-moved"), kOk);
  ASSERT_EQ(client.readlink(rel, &read_back), kOk);
  EXPECT_EQ(read_back, "../README.md");
  // Removed: its handle turns stale.
  ASSERT_EQ(client.remove(root, "to-leaf"), kOk);
  EXPECT_EQ(client.getattr(link), static_cast<uint32_t>(NFS3ERR_STALE));
  EXPECT_EQ(client.lookup(root, "to-leaf", nullptr), static_cast<uint32_t>(NFS3ERR_NOENT));
}

TEST_F(NfsServerTest, LinkMakesAServerSideCopyUnderTheNewName) {
  makeWritable();
  startServer(advanced());
  {
    RpcTestClient client(server_->port());
    Fh root = mountRoot(client);
    Fh readme, data;
    ASSERT_EQ(client.lookup(root, "README.md", &readme), kOk);
    ASSERT_EQ(client.lookup(root, "data", &data), kOk);
    ASSERT_EQ(client.link(readme, data, "readme-link.md"), kOk);
    Fh copy;
    fattr3 a{}, b{};
    ASSERT_EQ(client.lookup(data, "readme-link.md", &copy, &b), kOk);
    ASSERT_EQ(client.getattr(readme, &a), kOk);
    EXPECT_EQ(b.type, NF3REG);
    EXPECT_EQ(b.size, a.size);
    EXPECT_NE(copy, readme);  // a copy, not the same inode
    std::vector<uint8_t> bytes;
    ASSERT_EQ(client.readAll(copy, &bytes), kOk);
    EXPECT_EQ(str(bytes), "hello nfs\n");
    EXPECT_EQ(client.link(readme, data, "readme-link.md"), static_cast<uint32_t>(NFS3ERR_EXIST));
    EXPECT_NE(client.link(data, root, "dir-link"), kOk);  // directories cannot be linked
    EXPECT_EQ(client.link(readme, readme, "x"), static_cast<uint32_t>(NFS3ERR_NOTDIR));
  }
  stopAndFlush();
  EXPECT_EQ(str(remote_->contents("data/readme-link.md")), "hello nfs\n");
  EXPECT_EQ(str(remote_->contents("README.md")), "hello nfs\n");
}

}  // namespace
}  // namespace hfm::nfs
