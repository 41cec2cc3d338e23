#include "hfm/mount/mount_context.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace hfm::mount {
namespace {

// A loopback port nothing listens on: bind, read the port, close.
int closedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST(MountContextTest, RejectsABadIdBeforeAnyNetwork) {
  app::MountOptions options;
  app::MountSource source{app::SourceKind::kBucket, "no-slash", "/mnt", "main"};
  auto ctx = MountContext::open(options, source, std::nullopt);
  ASSERT_FALSE(ctx.ok());
  EXPECT_EQ(ctx.error().code(), EINVAL);
}

TEST(MountContextTest, UnreachableHubFailsWithOneClearLine) {
  app::MountOptions options;
  options.hub_endpoint = "http://127.0.0.1:" + std::to_string(closedPort());
  app::MountSource source{app::SourceKind::kBucket, "user/bucket", "/mnt", "main"};
  auto ctx = MountContext::open(options, source, std::nullopt);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.error().message().find("cannot reach " + options.hub_endpoint), std::string::npos)
      << ctx.error().message();
  EXPECT_EQ(ctx.error().message().find('\n'), std::string::npos);
}

}  // namespace
}  // namespace hfm::mount
