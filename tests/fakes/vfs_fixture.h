// A GoogleTest fixture for Vfs tests over an in-memory Remote (usually FakeRemote): a clock the
// test moves by hand (listings and revalidations age only when it says so), a VfsConfig with fast
// retries, and the lookups, listings and whole-file reads most tests need. `Base` is the gtest
// class to derive from (::testing::Test, or ::testing::TestWithParam<T> for parameterized tests).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "hfm/vfs/vfs.h"

namespace hfm::testing {

template <class Base = ::testing::Test>
class VfsFixture : public Base {
 protected:
  // `c` with the fixture's clock, one-millisecond prefetch retry backoff and two workers.
  vfs::VfsConfig withTestClock(vfs::VfsConfig c = {}) {
    c.now = [this] { return vfs::Clock::time_point(std::chrono::milliseconds(clock_ms_.load())); };
    c.prefetch.retry_backoff = std::chrono::milliseconds(1);
    c.worker_threads = 2;
    return c;
  }

  std::unique_ptr<vfs::Vfs> makeVfsOver(std::shared_ptr<vfs::Remote> remote, vfs::VfsConfig c) {
    return std::make_unique<vfs::Vfs>(std::move(remote), withTestClock(std::move(c)));
  }

  void advance(std::chrono::milliseconds d) { clock_ms_ += d.count(); }

  static vfs::InodeId mustLookup(vfs::Vfs& v, vfs::InodeId parent, const std::string& name) {
    auto r = v.lookup(parent, name);
    EXPECT_TRUE(r.ok()) << name << ": " << (r.ok() ? "" : r.error().message());
    return r.ok() ? r->ino : 0;
  }

  // Every entry of `dir` (".", ".." included), read through one opendir/readdir/releasedir.
  static std::vector<vfs::DirEntry> listEntries(vfs::Vfs& v, vfs::InodeId dir) {
    auto fh = v.opendir(dir);
    EXPECT_TRUE(fh.ok());
    if (!fh.ok()) return {};
    auto got = v.readdir(*fh, 0, 100000);
    v.releasedir(*fh);
    EXPECT_TRUE(got.ok());
    return got.ok() ? *got : std::vector<vfs::DirEntry>{};
  }

  static std::vector<std::string> listNames(vfs::Vfs& v, vfs::InodeId dir) {
    std::vector<std::string> names;
    for (const auto& e : listEntries(v, dir)) names.push_back(e.name);
    return names;
  }

  static const vfs::DirEntry* findEntry(const std::vector<vfs::DirEntry>& list,
                                        const std::string& name) {
    for (const auto& e : list) {
      if (e.name == name) return &e;
    }
    return nullptr;
  }

  // The whole file, read in 64 KiB pieces until a read returns 0 (or fails).
  static std::vector<uint8_t> readAll(vfs::Vfs& v, vfs::InodeId ino) {
    auto o = v.open(ino, O_RDONLY);
    EXPECT_TRUE(o.ok());
    if (!o.ok()) return {};
    std::vector<uint8_t> out;
    std::vector<uint8_t> buf(65536);
    for (uint64_t off = 0;;) {
      auto n = v.read(o->fh, off, buf);
      EXPECT_TRUE(n.ok());
      if (!n.ok() || *n == 0) break;
      out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
      off += *n;
    }
    v.release(o->fh);
    return out;
  }

  std::atomic<int64_t> clock_ms_{1'000'000};
};

}  // namespace hfm::testing
