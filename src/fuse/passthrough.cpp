#include "hfm/fuse/passthrough.h"

#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "hfm/util/log.h"

namespace hfm::fuse {

namespace passthrough_abi {

namespace {

// Sizes and offsets from include/uapi/linux/fuse.h (7.40).
constexpr size_t kInHeader = 40;        // fuse_in_header
constexpr size_t kOutHeader = 16;       // fuse_out_header
constexpr size_t kInitInFlags = 12;     // fuse_init_in.flags
constexpr size_t kInitInFlags2 = 16;    // fuse_init_in.flags2
constexpr size_t kInitOutFlags = 12;    // fuse_init_out.flags
constexpr size_t kInitOutFlags2 = 32;   // fuse_init_out.flags2
constexpr size_t kInitOutDepth = 36;    // fuse_init_out.max_stack_depth
constexpr size_t kOpenOutFlags = 8;     // fuse_open_out.open_flags
constexpr size_t kOpenOutBacking = 12;  // fuse_open_out.backing_id

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename T>
void store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

}  // namespace

std::optional<InitRequest> parseInitRequest(std::span<const uint8_t> request) {
  if (request.size() < kInHeader || load<uint32_t>(request.data() + 4) != kOpInit) {
    return std::nullopt;
  }
  InitRequest init;
  init.unique = load<uint64_t>(request.data() + 8);
  if (request.size() >= kInHeader + kInitInFlags2 + 4) {
    const auto flags = load<uint32_t>(request.data() + kInHeader + kInitInFlags);
    const auto flags2 = load<uint32_t>(request.data() + kInHeader + kInitInFlags2);
    init.offers_passthrough = (flags & kInitExt) != 0 && (flags2 & kPassthroughFlag2) != 0;
  }
  return init;
}

std::optional<uint64_t> replyUnique(const iovec* iov, int count) {
  if (count < 1 || iov[0].iov_len < kOutHeader) return std::nullopt;
  return load<uint64_t>(static_cast<const uint8_t*>(iov[0].iov_base) + 8);
}

bool enableInInitReply(iovec* iov, int count) {
  if (count < 2 || iov[1].iov_len < kInitOutDepth + 4) return false;
  auto* out = static_cast<uint8_t*>(iov[1].iov_base);
  store<uint32_t>(out + kInitOutFlags, load<uint32_t>(out + kInitOutFlags) | kInitExt);
  store<uint32_t>(out + kInitOutFlags2, load<uint32_t>(out + kInitOutFlags2) | kPassthroughFlag2);
  store<uint32_t>(out + kInitOutDepth, 1);  // our backing files live on a plain filesystem
  return true;
}

bool setInOpenReply(iovec* iov, int count, int32_t backing_id) {
  if (count < 2 || iov[0].iov_len < kOutHeader || iov[1].iov_len < kOpenOutBacking + 4) {
    return false;
  }
  if (load<int32_t>(static_cast<const uint8_t*>(iov[0].iov_base) + 4) != 0) return false;
  auto* out = static_cast<uint8_t*>(iov[1].iov_base);
  const uint32_t flags = (load<uint32_t>(out + kOpenOutFlags) & kOpenNoFlush) | kOpenPassthrough;
  store<uint32_t>(out + kOpenOutFlags, flags);
  store<int32_t>(out + kOpenOutBacking, backing_id);
  return true;
}

}  // namespace passthrough_abi

namespace {

// struct fuse_backing_map and the ioctls (include/uapi/linux/fuse.h, 7.40).
struct BackingMap {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
constexpr unsigned long kIocBackingOpen = _IOW(229, 1, BackingMap);
constexpr unsigned long kIocBackingClose = _IOW(229, 2, uint32_t);

}  // namespace

Result<int32_t> DeviceBackingFiles::open(int fd) {
  BackingMap map{fd, 0, 0};
  const int id = ::ioctl(dev_fd_, kIocBackingOpen, &map);
  if (id < 0)
    return Error(errno, std::string("FUSE_DEV_IOC_BACKING_OPEN: ") + std::strerror(errno));
  return static_cast<int32_t>(id);
}

void DeviceBackingFiles::close(int32_t backing_id) {
  auto id = static_cast<uint32_t>(backing_id);
  if (::ioctl(dev_fd_, kIocBackingClose, &id) != 0) {
    spdlog::debug("FUSE_DEV_IOC_BACKING_CLOSE {}: {}", backing_id, std::strerror(errno));
  }
}

Result<PassthroughTable::Decision> PassthroughTable::open(uint64_t ino, uint64_t fh,
                                                          const std::string& version,
                                                          int local_fd) {
  std::lock_guard<std::mutex> lock(mu_);
  InodeState& st = inodes_[ino];
  Decision d;
  if (st.passthrough > 0) {
    if (st.version != version) {
      return Error(EBUSY, "open in passthrough mode on an older version");
    }
    d = {true, st.backing_id};
  } else if (local_fd >= 0 && st.cached == 0) {
    auto id = backing_.open(local_fd);
    if (id.ok()) {
      st.backing_id = *id;
      st.version = version;
      d = {true, *id};
    } else if (!warned_) {
      warned_ = true;
      spdlog::info("passthrough unavailable, files are read through this process: {}",
                   id.error().message());
    }
  }
  if (d.passthrough) {
    st.passthrough++;
  } else {
    st.cached++;
  }
  handles_[fh] = HandleState{ino, d.passthrough};
  return d;
}

void PassthroughTable::release(uint64_t fh) {
  std::lock_guard<std::mutex> lock(mu_);
  auto h = handles_.find(fh);
  if (h == handles_.end()) return;
  auto it = inodes_.find(h->second.ino);
  if (it != inodes_.end()) {
    InodeState& st = it->second;
    if (h->second.passthrough) {
      if (st.passthrough > 0 && --st.passthrough == 0) {
        backing_.close(st.backing_id);
        st.backing_id = 0;
        st.version.clear();
      }
    } else if (st.cached > 0) {
      st.cached--;
    }
    if (st.passthrough == 0 && st.cached == 0) inodes_.erase(it);
  }
  handles_.erase(h);
}

size_t PassthroughTable::passthroughOpens() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [fh, h] : handles_) n += h.passthrough ? 1 : 0;
  return n;
}

}  // namespace hfm::fuse
