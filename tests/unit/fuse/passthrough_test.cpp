#include "hfm/fuse/passthrough.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <vector>

namespace hfm::fuse {
namespace {

using namespace passthrough_abi;

template <typename T>
void put(std::vector<uint8_t>& buf, size_t at, T v) {
  std::memcpy(buf.data() + at, &v, sizeof v);
}
template <typename T>
T get(const std::vector<uint8_t>& buf, size_t at) {
  T v;
  std::memcpy(&v, buf.data() + at, sizeof v);
  return v;
}

// A FUSE_INIT request as Linux 6.9+ sends it: fuse_in_header (40 bytes) + fuse_init_in.
std::vector<uint8_t> initRequest(uint64_t unique, uint32_t flags, uint32_t flags2) {
  std::vector<uint8_t> req(40 + 64, 0);
  put<uint32_t>(req, 0, static_cast<uint32_t>(req.size()));
  put<uint32_t>(req, 4, kOpInit);
  put<uint64_t>(req, 8, unique);
  put<uint32_t>(req, 40, 7);   // major
  put<uint32_t>(req, 44, 45);  // minor
  put<uint32_t>(req, 40 + 12, flags);
  put<uint32_t>(req, 40 + 16, flags2);
  return req;
}

TEST(PassthroughAbiTest, RecognisesTheInitRequestAndTheKernelsOffer) {
  auto offered = initRequest(1, kInitExt | 0x1234, kPassthroughFlag2);
  auto init = parseInitRequest(offered);
  ASSERT_TRUE(init.has_value());
  EXPECT_EQ(init->unique, 1u);
  EXPECT_TRUE(init->offers_passthrough);

  auto old_kernel = initRequest(2, 0x1234, kPassthroughFlag2);  // no FUSE_INIT_EXT: no flags2
  ASSERT_TRUE(parseInitRequest(old_kernel).has_value());
  EXPECT_FALSE(parseInitRequest(old_kernel)->offers_passthrough);

  auto lookup = initRequest(3, kInitExt, kPassthroughFlag2);
  put<uint32_t>(lookup, 4, 1);  // FUSE_LOOKUP
  EXPECT_FALSE(parseInitRequest(lookup).has_value());
  EXPECT_FALSE(parseInitRequest(std::span<const uint8_t>(lookup.data(), 12)).has_value());
}

TEST(PassthroughAbiTest, InitReplyGetsTheFlagAndAStackDepth) {
  std::vector<uint8_t> header(16, 0);
  put<uint64_t>(header, 8, 77);
  std::vector<uint8_t> out(64, 0);
  put<uint32_t>(out, 12, 0x10);  // flags libfuse chose
  iovec iov[2] = {{header.data(), header.size()}, {out.data(), out.size()}};
  EXPECT_EQ(replyUnique(iov, 2), 77u);
  ASSERT_TRUE(enableInInitReply(iov, 2));
  EXPECT_EQ(get<uint32_t>(out, 12), 0x10u | kInitExt);
  EXPECT_EQ(get<uint32_t>(out, 32), kPassthroughFlag2);
  EXPECT_EQ(get<uint32_t>(out, 36), 1u);
  // A reply too short for max_stack_depth (an old protocol) is left alone.
  std::vector<uint8_t> short_out(24, 0);
  iovec short_iov[2] = {{header.data(), header.size()}, {short_out.data(), short_out.size()}};
  EXPECT_FALSE(enableInInitReply(short_iov, 2));
  EXPECT_EQ(short_out, std::vector<uint8_t>(24, 0));
}

TEST(PassthroughAbiTest, OpenReplyCarriesTheBackingIdAndOnlyAllowedFlags) {
  std::vector<uint8_t> header(16, 0);
  std::vector<uint8_t> out(16, 0);
  put<uint64_t>(out, 0, 42);                        // fh
  put<uint32_t>(out, 8, (1u << 1) | kOpenNoFlush);  // keep-cache + noflush
  iovec iov[2] = {{header.data(), header.size()}, {out.data(), out.size()}};
  ASSERT_TRUE(setInOpenReply(iov, 2, 9));
  EXPECT_EQ(get<uint64_t>(out, 0), 42u);
  EXPECT_EQ(get<uint32_t>(out, 8), kOpenPassthrough | kOpenNoFlush);
  EXPECT_EQ(get<int32_t>(out, 12), 9);
  // An error reply is not touched.
  put<int32_t>(header, 4, -2);
  std::vector<uint8_t> err_out(16, 0);
  iovec err_iov[2] = {{header.data(), header.size()}, {err_out.data(), err_out.size()}};
  EXPECT_FALSE(setInOpenReply(err_iov, 2, 9));
  EXPECT_EQ(get<int32_t>(err_out, 12), 0);
}

class FakeBacking : public BackingFiles {
 public:
  Result<int32_t> open(int fd) override {
    if (fail) return Error(EPERM, "not permitted");
    opened.push_back(fd);
    live.insert(next);
    return next++;
  }
  void close(int32_t id) override {
    EXPECT_EQ(live.erase(id), 1u) << "closing unknown backing id " << id;
  }
  bool fail = false;
  int32_t next = 1;
  std::vector<int> opened;
  std::set<int32_t> live;
};

TEST(PassthroughTableTest, ALocalCopyOpensInPassthroughAndSharesOneBackingFile) {
  FakeBacking backing;
  PassthroughTable table(backing);
  auto a = table.open(5, 100, "v1", 30);
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->passthrough);
  // A second open of the same content: same backing file (the kernel requires it), even
  // without a copy of its own (the cache evicted it meanwhile).
  auto b = table.open(5, 101, "v1", -1);
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->passthrough);
  EXPECT_EQ(b->backing_id, a->backing_id);
  EXPECT_EQ(backing.opened.size(), 1u);
  EXPECT_EQ(table.passthroughOpens(), 2u);
  table.release(100);
  EXPECT_EQ(backing.live.size(), 1u);
  table.release(101);
  EXPECT_TRUE(backing.live.empty());  // the last close unregisters it
  table.release(101);                 // unknown handles are ignored
}

TEST(PassthroughTableTest, CachedAndPassthroughOpensNeverMixOnOneInode) {
  FakeBacking backing;
  PassthroughTable table(backing);
  // Open before the copy existed: caching mode, and then no passthrough until it closes.
  auto cached = table.open(7, 1, "v1", -1);
  ASSERT_TRUE(cached.ok());
  EXPECT_FALSE(cached->passthrough);
  auto second = table.open(7, 2, "v1", 40);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->passthrough);
  EXPECT_TRUE(backing.opened.empty());
  table.release(1);
  table.release(2);
  auto third = table.open(7, 3, "v1", 40);
  ASSERT_TRUE(third.ok());
  EXPECT_TRUE(third->passthrough);
  // Other inodes are independent.
  auto other = table.open(8, 4, "w1", -1);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->passthrough);
}

TEST(PassthroughTableTest, ANewVersionWaitsForThePassthroughOpensOfTheOldOne) {
  FakeBacking backing;
  PassthroughTable table(backing);
  ASSERT_TRUE(table.open(9, 1, "v1", 30).ok());
  auto newer = table.open(9, 2, "v2", 31);
  ASSERT_FALSE(newer.ok());
  EXPECT_EQ(newer.error().code(), EBUSY);
  table.release(2);  // the refused open was never registered
  EXPECT_EQ(backing.live.size(), 1u);
  table.release(1);
  auto later = table.open(9, 3, "v2", 31);
  ASSERT_TRUE(later.ok());
  EXPECT_TRUE(later->passthrough);
}

TEST(PassthroughTableTest, WithoutKernelSupportEveryOpenIsCached) {
  FakeBacking backing;
  backing.fail = true;
  PassthroughTable table(backing);
  for (uint64_t fh = 1; fh <= 3; ++fh) {
    auto d = table.open(4, fh, "v1", 30);
    ASSERT_TRUE(d.ok());
    EXPECT_FALSE(d->passthrough);
  }
  EXPECT_EQ(table.passthroughOpens(), 0u);
}

}  // namespace
}  // namespace hfm::fuse
