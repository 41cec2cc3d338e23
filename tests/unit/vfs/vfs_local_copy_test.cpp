// --cache-mode file at the Vfs level: opens of a version with a local copy read the copy (no
// remote read), other opens read the remote and ask for a copy.
#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <mutex>

#include "fake_remote.h"
#include "temp_dir.h"
#include "vfs_fixture.h"

namespace hfm::vfs {
namespace {

using hfm::testing::FakeRemote;

std::vector<uint8_t> patternBytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(size_t{seed} * 13 + i * 7 + i / 509);
  return v;
}

// Copies in a temporary directory; requests are kept until run() makes them.
class TestCopies : public LocalCopyStore {
 public:
  std::optional<LocalCopy> open(const std::string& hash, uint64_t size) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = files_.find(hash);
    if (it == files_.end()) return std::nullopt;
    const int fd = ::open(it->second.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    auto owner = std::shared_ptr<int>(new int(fd), [](int* p) {
      ::close(*p);
      delete p;
    });
    return LocalCopy{fd, size, owner};
  }
  void request(const std::string& hash, uint64_t size,
               std::function<Status(uint64_t, std::span<uint8_t>)> read) override {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back({hash, size, std::move(read)});
  }
  // Makes every requested copy; returns how many.
  size_t run() {
    std::vector<Request> todo;
    {
      std::lock_guard<std::mutex> lock(mu_);
      todo.swap(requests_);
    }
    for (auto& r : todo) {
      std::vector<uint8_t> bytes(r.size);
      EXPECT_TRUE(r.read(0, bytes).ok());
      const std::string path = (dir_.path() / r.hash).string();
      const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      EXPECT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
      ::close(fd);
      std::lock_guard<std::mutex> lock(mu_);
      files_[r.hash] = path;
    }
    return todo.size();
  }

 private:
  struct Request {
    std::string hash;
    uint64_t size;
    std::function<Status(uint64_t, std::span<uint8_t>)> read;
  };
  hfm::testing::TempDir dir_{"hfm-copies"};
  std::mutex mu_;
  std::map<std::string, std::string> files_;
  std::vector<Request> requests_;
};

class VfsLocalCopyTest : public hfm::testing::VfsFixture<> {
 protected:
  void SetUp() override {
    remote_ = std::make_shared<FakeRemote>();
    bytes_ = patternBytes(300000, 3);
    remote_->putFile("data/train.bin", bytes_);
    copies_ = std::make_shared<TestCopies>();
    VfsConfig c;
    c.local_copies = copies_;
    vfs_ = makeVfsOver(remote_, c);
    ino_ = mustLookup(*vfs_, mustLookup(*vfs_, 1, "data"), "train.bin");
  }

  std::shared_ptr<FakeRemote> remote_;
  std::vector<uint8_t> bytes_;
  std::shared_ptr<TestCopies> copies_;
  std::unique_ptr<Vfs> vfs_;
  InodeId ino_ = 0;
};

TEST_F(VfsLocalCopyTest, FirstOpenReadsRemotelyAndRequestsACopyThatLaterOpensRead) {
  auto first = vfs_->open(ino_, O_RDONLY);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->local_fd, -1);
  EXPECT_FALSE(first->version.empty());
  EXPECT_EQ(readAll(*vfs_, ino_), bytes_);
  vfs_->release(first->fh);
  EXPECT_EQ(copies_->run(), 2u);  // one request per open without a copy

  const auto remote_reads = remote_->counts().read;
  auto second = vfs_->open(ino_, O_RDONLY);
  ASSERT_TRUE(second.ok());
  EXPECT_GE(second->local_fd, 0);
  EXPECT_EQ(second->version, first->version);
  std::vector<uint8_t> piece(1000);
  auto n = vfs_->read(second->fh, 299500, piece);
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(*n, 500u);  // up to the end of the file, then 0
  EXPECT_TRUE(std::equal(piece.begin(), piece.begin() + 500, bytes_.begin() + 299500));
  EXPECT_EQ(*vfs_->read(second->fh, 300000, piece), 0u);
  EXPECT_EQ(readAll(*vfs_, ino_), bytes_);
  EXPECT_EQ(remote_->counts().read, remote_reads);  // nothing fetched once the copy exists
  // The copy serves reads while the remote fails.
  remote_->failAlways(FakeRemote::kAll, EIO);
  EXPECT_EQ(readAll(*vfs_, ino_), bytes_);
  vfs_->release(second->fh);
}

TEST_F(VfsLocalCopyTest, ANewRemoteVersionIsNotServedFromTheOldCopy) {
  EXPECT_EQ(readAll(*vfs_, ino_), bytes_);
  copies_->run();
  const auto newer = patternBytes(300000, 9);
  remote_->putFile("data/train.bin", newer);
  advance(std::chrono::minutes(1));  // past the metadata TTL: the next lookup sees it
  mustLookup(*vfs_, mustLookup(*vfs_, 1, "data"), "train.bin");
  auto o = vfs_->open(ino_, O_RDONLY);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->local_fd, -1);  // the copy is of the old version
  vfs_->release(o->fh);
  EXPECT_EQ(readAll(*vfs_, ino_), newer);
}

TEST_F(VfsLocalCopyTest, AHandleOnACopyIsStaleOnceTheFileIsReplaced) {
  EXPECT_EQ(readAll(*vfs_, ino_), bytes_);
  copies_->run();
  auto o = vfs_->open(ino_, O_RDONLY);
  ASSERT_TRUE(o.ok());
  ASSERT_GE(o->local_fd, 0);
  remote_->putFile("data/train.bin", patternBytes(1000, 4));
  advance(std::chrono::minutes(1));
  mustLookup(*vfs_, mustLookup(*vfs_, 1, "data"), "train.bin");
  std::vector<uint8_t> buf(100);
  auto r = vfs_->read(o->fh, 0, buf);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ESTALE);  // as for a handle reading over the network
  vfs_->release(o->fh);
}

// A store whose "copies" cannot be read (a directory): the disk failing under a copy.
class UnreadableCopies : public LocalCopyStore {
 public:
  UnreadableCopies() : fd_(::open(dir_.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {}
  ~UnreadableCopies() override { ::close(fd_); }
  std::optional<LocalCopy> open(const std::string&, uint64_t size) override {
    return LocalCopy{fd_, size, nullptr};
  }
  void request(const std::string&, uint64_t,
               std::function<Status(uint64_t, std::span<uint8_t>)>) override {}

 private:
  hfm::testing::TempDir dir_{"hfm-copies"};
  const int fd_;
};

TEST_F(VfsLocalCopyTest, AFailingCopyReadsAsEio) {
  VfsConfig c;
  c.local_copies = std::make_shared<UnreadableCopies>();
  auto v = makeVfsOver(remote_, c);
  const auto ino = mustLookup(*v, mustLookup(*v, 1, "data"), "train.bin");
  auto o = v->open(ino, O_RDONLY);
  ASSERT_TRUE(o.ok());
  std::vector<uint8_t> buf(100);
  auto r = v->read(o->fh, 0, buf);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), EIO);
  v->release(o->fh);
}

TEST_F(VfsLocalCopyTest, WithoutAStoreNothingChanges) {
  auto v = makeVfsOver(remote_, {});
  const auto ino = mustLookup(*v, mustLookup(*v, 1, "data"), "train.bin");
  auto o = v->open(ino, O_RDONLY);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->local_fd, -1);
  v->release(o->fh);
  EXPECT_EQ(readAll(*v, ino), bytes_);
  EXPECT_EQ(copies_->run(), 0u);
}

}  // namespace
}  // namespace hfm::vfs
