// null_fuse_fs: the baseline for metadata benchmarks. A libfuse3 low-level filesystem with no
// backend at all: DIRS directories of FILES empty files each (d00000/f00000 ...), answered from
// arithmetic, with the same entry/attr timeouts hf-mount uses. Whatever hf-mount costs above
// this is our own overhead, not FUSE's.
//
//   null_fuse_fs MOUNTPOINT DIRS FILES TIMEOUT_SECS   (foreground; unmount to stop)
#define FUSE_USE_VERSION 34
#include <fuse3/fuse_lowlevel.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

// Inodes: 1 root, 2..1+dirs directories, then files dir-major.
struct Layout {
  uint64_t dirs = 0;
  uint64_t files = 0;
  double timeout = 10.0;
  uint64_t firstFile() const { return 2 + dirs; }
  bool isDir(fuse_ino_t ino) const { return ino == 1 || (ino >= 2 && ino < firstFile()); }
  bool valid(fuse_ino_t ino) const { return ino >= 1 && ino < firstFile() + dirs * files; }
};

Layout g_layout;

void fillStat(fuse_ino_t ino, struct stat* st) {
  std::memset(st, 0, sizeof(*st));
  st->st_ino = ino;
  st->st_mode = g_layout.isDir(ino) ? (S_IFDIR | 0755) : (S_IFREG | 0644);
  st->st_nlink = g_layout.isDir(ino) ? 2 : 1;
}

std::string nameOf(fuse_ino_t ino) {
  char buf[32];
  if (g_layout.isDir(ino)) {
    std::snprintf(buf, sizeof(buf), "d%05llu", static_cast<unsigned long long>(ino - 2));
  } else {
    std::snprintf(buf, sizeof(buf), "f%05llu",
                  static_cast<unsigned long long>((ino - g_layout.firstFile()) % g_layout.files));
  }
  return buf;
}

// The child `name` of directory `parent`, or 0.
fuse_ino_t childOf(fuse_ino_t parent, const char* name) {
  char* end = nullptr;
  if (parent == 1 && name[0] == 'd') {
    const unsigned long long i = std::strtoull(name + 1, &end, 10);
    if (*end == '\0' && i < g_layout.dirs && nameOf(2 + i) == name) return 2 + i;
  } else if (parent != 1 && g_layout.isDir(parent) && name[0] == 'f') {
    const unsigned long long i = std::strtoull(name + 1, &end, 10);
    const fuse_ino_t ino = g_layout.firstFile() + (parent - 2) * g_layout.files + i;
    if (*end == '\0' && i < g_layout.files && nameOf(ino) == name) return ino;
  }
  return 0;
}

void opLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  const fuse_ino_t ino = childOf(parent, name);
  if (ino == 0) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  fuse_entry_param e{};
  e.ino = ino;
  e.entry_timeout = g_layout.timeout;
  e.attr_timeout = g_layout.timeout;
  fillStat(ino, &e.attr);
  fuse_reply_entry(req, &e);
}

void opGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) {
  if (!g_layout.valid(ino)) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct stat st;
  fillStat(ino, &st);
  fuse_reply_attr(req, &st, g_layout.timeout);
}

// READDIRPLUS, as hf-mount serves listings, so entries arrive in the kernel the same way.
void opReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  if (!g_layout.isDir(ino)) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  const uint64_t count = ino == 1 ? g_layout.dirs : g_layout.files;
  const fuse_ino_t first = ino == 1 ? 2 : g_layout.firstFile() + (ino - 2) * g_layout.files;
  std::string buf(size, '\0');
  size_t used = 0;
  for (auto i = static_cast<uint64_t>(off); i < count; ++i) {
    fuse_entry_param e{};
    e.ino = first + i;
    e.entry_timeout = g_layout.timeout;
    e.attr_timeout = g_layout.timeout;
    fillStat(e.ino, &e.attr);
    const std::string name = nameOf(e.ino);
    const size_t need = fuse_add_direntry_plus(req, nullptr, 0, name.c_str(), nullptr, 0);
    if (used + need > size) break;
    fuse_add_direntry_plus(req, buf.data() + used, size - used, name.c_str(), &e,
                           static_cast<off_t>(i + 1));
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void opOpen(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  fi->keep_cache = 1;
  fuse_reply_open(req, fi);
}

void opRead(fuse_req_t req, fuse_ino_t, size_t, off_t, fuse_file_info*) {
  fuse_reply_buf(req, nullptr, 0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s MOUNTPOINT DIRS FILES TIMEOUT_SECS\n", argv[0]);
    return 2;
  }
  g_layout.dirs = std::strtoull(argv[2], nullptr, 10);
  g_layout.files = std::strtoull(argv[3], nullptr, 10);
  g_layout.timeout = std::strtod(argv[4], nullptr);

  fuse_lowlevel_ops ops{};
  ops.lookup = opLookup;
  ops.getattr = opGetattr;
  ops.readdirplus = opReaddirplus;
  ops.open = opOpen;
  ops.read = opRead;
  ops.opendir = opOpen;

  char arg0[] = "null_fuse_fs";
  char opt_flag[] = "-o";
  char opts[] = "fsname=null_fuse_fs,default_permissions";
  char* fargv[] = {arg0, opt_flag, opts, nullptr};
  fuse_args args = FUSE_ARGS_INIT(3, fargv);
  fuse_session* se = fuse_session_new(&args, &ops, sizeof(ops), nullptr);
  if (se == nullptr) return 1;
  if (fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, argv[1]) != 0) {
    fuse_session_destroy(se);
    return 1;
  }
  const int rc = fuse_session_loop(se);
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  return rc == 0 ? 0 : 1;
}
