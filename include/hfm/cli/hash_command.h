// `hf-mount hash [--json] [--chunks] FILE...`: prints the Xet file hash of local files, the
// hash the Hub shows as a file's xet hash, computed exactly as xet-core does (spec §2, §3).
//
// Files are streamed through a bounded pool of blocks: the calling thread reads, a chunker
// thread finds chunk boundaries, a hasher thread computes BLAKE3 per chunk and the incremental
// merkle tree, so both cores work and memory does not grow with the file size (with --chunks, 48
// bytes per chunk are kept to be printed). Output is one line per file, `<file_hash>  <path>` like
// sha256sum, or one JSON object per line with --json. A file that cannot be read is reported on
// stderr, the others are still hashed, and the exit code is 1; bad usage exits with 2.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "hfm/util/result.h"
#include "hfm/xet/merkle_hash.h"

namespace CLI {  // NOLINT(readability-identifier-naming): CLI11's namespace
class App;
}  // namespace CLI

namespace hfm::cli {

struct HashOptions {
  bool json = false;
  bool chunks = false;             // also list every chunk (offset, length, hash)
  std::vector<std::string> files;  // "-" or empty = standard input
};

struct ChunkRecord {
  uint64_t offset = 0;
  uint64_t length = 0;
  xet::MerkleHash hash;
  friend bool operator==(const ChunkRecord&, const ChunkRecord&) = default;
};

struct FileDigest {
  uint64_t size = 0;
  xet::MerkleHash file_hash;
  uint64_t chunk_count = 0;
  std::vector<ChunkRecord> chunks;  // filled only when asked for
};

// Tuning of the read/hash pipeline; the defaults are what the command uses.
struct HashPipelineConfig {
  size_t block_size = 4 << 20;  // bytes read and chunked per block
  size_t blocks = 6;            // blocks in flight between the stages (the memory bound)
};

// Hashes everything readable from `fd` until EOF. `name` is only used in error messages.
Result<FileDigest> hashFd(int fd, const std::string& name, bool keep_chunks,
                          const HashPipelineConfig& config = {});

// Opens and hashes one path ("-" = standard input).
Result<FileDigest> hashPath(const std::string& path, bool keep_chunks,
                            const HashPipelineConfig& config = {});

// The output line(s) for one file, newline-terminated.
std::string formatDigest(const std::string& path, const FileDigest& digest,
                         const HashOptions& options);

// Runs the command: writes results to `out`, errors to `err`; returns the exit code (0 or 1).
int runHash(const HashOptions& options, std::ostream& out, std::ostream& err);

// Registers the `hash` subcommand on `app`. When it is selected and parsing succeeded,
// `*exit_code` receives runHash's result.
void addHashCommand(CLI::App& app, int* exit_code);

}  // namespace hfm::cli
