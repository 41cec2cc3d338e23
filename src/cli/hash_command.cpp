#include "hfm/cli/hash_command.h"

#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "hfm/xet/chunker.h"
#include "hfm/xet/hashing.h"

namespace hfm::cli {
namespace {

// A minimal blocking FIFO; capacity is bounded by the number of buffers in circulation.
template <typename T>
class Channel {
 public:
  void push(T value) {
    {
      std::lock_guard lock(mu_);
      items_.push_back(std::move(value));
    }
    cv_.notify_one();
  }
  T pop() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !items_.empty(); });
    T value = std::move(items_.front());
    items_.pop_front();
    return value;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<T> items_;
};

// One block handed from the reader to the hasher: `size` bytes of buffer `buffer`, cut after
// each offset in `cuts`. The last message has `eof` set and carries the final chunk's length
// (the bytes after the last cut, which the hasher holds).
struct Block {
  size_t buffer = 0;
  size_t size = 0;
  std::vector<size_t> cuts;
  bool eof = false;
  uint64_t final_chunk = 0;
};

// Reads until `buf` is full or EOF; returns the byte count.
Result<size_t> readFull(int fd, uint8_t* buf, size_t cap, const std::string& name) {
  size_t got = 0;
  while (got < cap) {
    const ssize_t n = ::read(fd, buf + got, cap - got);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      return Error(err, name + ": read failed: " + std::strerror(err));
    }
    got += static_cast<size_t>(n);
  }
  return got;
}

// The hasher side: turns chunk pieces into chunk hashes and merkle leaves.
class ChunkSink {
 public:
  explicit ChunkSink(bool keep_chunks) : keep_chunks_(keep_chunks) {}

  // Bytes of the current chunk; `ends_chunk` closes it.
  void piece(std::span<const uint8_t> bytes, bool ends_chunk) {
    if (!carry_ && ends_chunk) {  // the whole chunk is in one block: one-shot hash
      leaf(xet::chunkHash(bytes), bytes.size());
      return;
    }
    if (!carry_) carry_.emplace(xet::kDataKey);
    carry_->update(bytes);
    carry_len_ += bytes.size();
    if (ends_chunk) {
      leaf(carry_->finalize(), carry_len_);
      carry_.reset();
      carry_len_ = 0;
    }
  }

  uint64_t carriedBytes() const { return carry_len_; }

  FileDigest finish() {
    FileDigest digest;
    digest.size = offset_;
    digest.file_hash = merkle_.fileHash();
    digest.chunk_count = merkle_.leafCount();
    digest.chunks = std::move(chunks_);
    return digest;
  }

 private:
  void leaf(const xet::MerkleHash& hash, uint64_t length) {
    merkle_.add({hash, length});
    if (keep_chunks_) chunks_.push_back({offset_, length, hash});
    offset_ += length;
  }

  bool keep_chunks_;
  std::optional<xet::Blake3Hasher> carry_;  // a chunk that spans blocks
  uint64_t carry_len_ = 0;
  uint64_t offset_ = 0;
  xet::MerkleBuilder merkle_;
  std::vector<ChunkRecord> chunks_;
};

// sha256sum's convention: a name holding '\\' or '\n' is escaped and the line starts with '\\'.
std::string escapedName(const std::string& path, bool& escaped) {
  escaped = path.find_first_of("\\\n") != std::string::npos;
  if (!escaped) return path;
  std::string out;
  for (char c : path) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string jsonString(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

Result<FileDigest> hashFd(int fd, const std::string& name, bool keep_chunks,
                          const HashPipelineConfig& config) {
  if (config.block_size == 0 || config.blocks < 2) {
    return Error::invalid("hash pipeline needs a non-zero block size and at least 2 blocks");
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);  // a hint; pipes simply ignore it

  // Three stages, each a thread, linked by queues of block indices: this thread reads, one
  // chunks, one hashes. Copying out of the page cache, chunking and BLAKE3 cost roughly
  // 0.3 / 0.35 / 0.25 s per GiB here, so on two cores the scheduler can keep both busy; with
  // read+chunk on one thread that thread alone would set the pace. `blocks` bounds memory.
  std::vector<std::vector<uint8_t>> buffers(config.blocks);
  for (auto& b : buffers) b.resize(config.block_size);
  Channel<size_t> free_buffers;
  Channel<Block> read_blocks;
  Channel<Block> chunked_blocks;
  for (size_t i = 0; i < buffers.size(); ++i) free_buffers.push(i);

  std::thread chunker_thread([&] {
    xet::Chunker chunker;
    for (;;) {
      Block block = read_blocks.pop();
      if (block.eof) {
        block.final_chunk = chunker.finish();
        chunked_blocks.push(std::move(block));
        return;
      }
      chunker.update(std::span<const uint8_t>(buffers[block.buffer].data(), block.size),
                     block.cuts);
      chunked_blocks.push(std::move(block));
    }
  });

  ChunkSink sink(keep_chunks);
  bool final_chunk_agrees = true;
  std::thread hasher_thread([&] {
    for (;;) {
      Block block = chunked_blocks.pop();
      if (block.eof) {
        // The bytes after the last cut, which the sink holds, are the final chunk.
        final_chunk_agrees = sink.carriedBytes() == block.final_chunk;
        if (sink.carriedBytes() > 0) sink.piece({}, true);
        return;
      }
      std::span<const uint8_t> data(buffers[block.buffer].data(), block.size);
      size_t prev = 0;
      for (size_t cut : block.cuts) {
        sink.piece(data.subspan(prev, cut - prev), true);
        prev = cut;
      }
      if (prev < data.size()) sink.piece(data.subspan(prev), false);
      free_buffers.push(block.buffer);
    }
  });

  std::optional<Error> failure;
  uint64_t total_read = 0;
  for (;;) {
    const size_t index = free_buffers.pop();
    auto got = readFull(fd, buffers[index].data(), buffers[index].size(), name);
    if (!got.ok()) {
      failure = got.error();
      break;
    }
    if (*got == 0) break;
    total_read += *got;
    read_blocks.push(Block{index, *got, {}, false, 0});  // short ≠ EOF: pipes come in pieces
  }
  Block last;
  last.eof = true;
  read_blocks.push(std::move(last));
  chunker_thread.join();
  hasher_thread.join();
  if (failure) return *failure;
  FileDigest digest = sink.finish();
  if (!final_chunk_agrees || digest.size != total_read) {  // every byte in exactly one chunk
    return Error::io(name + ": internal error: chunks cover " + std::to_string(digest.size) +
                     " of " + std::to_string(total_read) + " bytes");
  }
  return digest;
}

Result<FileDigest> hashPath(const std::string& path, bool keep_chunks,
                            const HashPipelineConfig& config) {
  if (path == "-") return hashFd(STDIN_FILENO, "<stdin>", keep_chunks, config);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return Error(err, path + ": " + std::strerror(err));
  }
  auto result = hashFd(fd, path, keep_chunks, config);
  ::close(fd);
  return result;
}

std::string formatDigest(const std::string& path, const FileDigest& digest,
                         const HashOptions& options) {
  std::string out;
  if (options.json) {
    out += R"({"path": )" + jsonString(path) + R"(, "size": )" + std::to_string(digest.size) +
           R"(, "file_hash": ")" + digest.file_hash.hex() + '"';
    if (options.chunks) {
      out += R"(, "chunks": [)";
      for (size_t i = 0; i < digest.chunks.size(); ++i) {
        const auto& c = digest.chunks[i];
        if (i > 0) out += ", ";
        out += R"({"offset": )" + std::to_string(c.offset) + R"(, "length": )" +
               std::to_string(c.length) + R"(, "hash": ")" + c.hash.hex() + R"("})";
      }
      out += "]";
    }
    out += "}\n";
    return out;
  }
  bool escaped = false;
  const std::string name = escapedName(path, escaped);
  out += (escaped ? "\\" : "") + digest.file_hash.hex() + "  " + name + "\n";
  if (options.chunks) {
    for (const auto& c : digest.chunks) {
      out += "  " + c.hash.hex() + " " + std::to_string(c.offset) + " " + std::to_string(c.length) +
             "\n";
    }
  }
  return out;
}

int runHash(const HashOptions& options, std::ostream& out, std::ostream& err) {
  std::vector<std::string> files = options.files;
  if (files.empty()) files.emplace_back("-");
  int status = 0;
  for (const auto& path : files) {
    auto digest = hashPath(path, options.chunks);
    if (!digest.ok()) {
      err << "hf-mount hash: " << digest.error().message() << "\n";
      status = 1;
      continue;
    }
    out << formatDigest(path, *digest, options);
    out.flush();
  }
  return status;
}

void addHashCommand(CLI::App& app, int* exit_code) {
  auto options = std::make_shared<HashOptions>();
  CLI::App* cmd = app.add_subcommand(
      "hash", "Print the Xet file hash of local files (as shown by the Hub), like sha256sum");
  cmd->add_flag("--json", options->json,
                R"(One JSON object per line: {"path", "size", "file_hash"})");
  cmd->add_flag("--chunks", options->chunks,
                "Also list every chunk: offset, length and chunk hash");
  cmd->add_option("files", options->files, "Files to hash; '-' or none reads standard input");
  cmd->callback([options, exit_code] { *exit_code = runHash(*options, std::cout, std::cerr); });
}

}  // namespace hfm::cli
