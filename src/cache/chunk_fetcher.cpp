// Chunk fetcher: CAS plans + presigned fetches + chunk cache (see chunk_fetcher.h).
#include "hfm/cache/chunk_fetcher.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <unordered_set>

#include "hfm/util/log.h"

namespace hfm::cache {

using xet::FetchEntry;
using xet::ReconstructionPlan;

ChunkFetcher::ChunkFetcher(xet::CasReader& cas, std::shared_ptr<ChunkCache> cache,
                           FetcherOptions options)
    : cas_(cas),
      cache_(std::move(cache)),
      options_(options),
      fetch_slots_(static_cast<std::ptrdiff_t>(std::max<size_t>(1, options.max_inflight_fetches))) {
}

FetcherStats ChunkFetcher::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

Result<size_t> ChunkFetcher::read(const xet::MerkleHash& file, uint64_t file_size, uint64_t offset,
                                  std::span<uint8_t> out) {
  {
    std::lock_guard lock(mu_);
    ++stats_.reads;
  }
  if (offset >= file_size || out.empty()) return size_t{0};
  const size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), file_size - offset));
  const std::span<uint8_t> dst = out.first(n);
  if (readFromLayout(file, offset, dst)) {
    std::lock_guard lock(mu_);
    ++stats_.fast_reads;
    return n;
  }
  const PlanKey key{file, offset, offset + n - 1};
  Status st = withPlan(key, [&](const ReconstructionPlan& plan) {
    return readWithPlan(file, file_size, plan, offset, dst);
  });
  if (!st) return st.error().withContext("read " + file.hex() + " @" + std::to_string(offset));
  return n;
}

Status ChunkFetcher::withPlan(const PlanKey& key,
                              const std::function<Status(const ReconstructionPlan&)>& attempt) {
  for (int tries = 0;; ++tries) {
    HFM_ASSIGN_OR_RETURN(PlanPtr plan, this->plan(key));
    Status st = attempt(*plan);
    if (st) return st;
    dropPlan(key);
    if (st.error().code() != xet::kFetchUrlExpired || tries >= options_.max_replans) return st;
    spdlog::debug("fetch URL refused for {}; re-planning ({})", key.file.hex(),
                  st.error().message());
    std::lock_guard lock(mu_);
    ++stats_.replans;
  }
}

bool ChunkFetcher::layoutRun(const xet::MerkleHash& file, uint64_t offset, uint64_t end,
                             LayoutRun& run) {
  std::lock_guard lock(mu_);
  auto lit = layouts_.find(file);
  if (lit == layouts_.end()) return false;
  const auto& chunks = lit->second.chunks;
  auto it = chunks.upper_bound(offset);
  if (it == chunks.begin()) return false;
  --it;
  uint64_t pos = it->first;
  while (pos < end) {
    if (it == chunks.end() || it->first != pos) return false;  // gap: unknown chunk
    run.emplace_back(*it);
    pos += it->second.size;
    ++it;
  }
  layout_lru_.splice(layout_lru_.begin(), layout_lru_, lit->second.lru);
  return run.front().first + run.front().second.size > offset;
}

bool ChunkFetcher::readFromLayout(const xet::MerkleHash& file, uint64_t offset,
                                  std::span<uint8_t> out) {
  if (!cache_) return false;
  const uint64_t end = offset + out.size();
  LayoutRun run;
  if (!layoutRun(file, offset, end, run)) return false;
  for (const auto& [start, loc] : run) {
    ChunkData data = cache_->get(ChunkKey{loc.xorb, loc.index});
    if (!data || data->size() != loc.size) return false;
    const uint64_t from = std::max(start, offset);
    const uint64_t to = std::min(start + loc.size, end);
    std::memcpy(out.data() + (from - offset), data->data() + (from - start),
                static_cast<size_t>(to - from));
  }
  return true;
}

Result<ChunkFetcher::PlanPtr> ChunkFetcher::plan(const PlanKey& key) {
  {
    std::lock_guard lock(mu_);
    auto it = plans_.find(key);
    if (it != plans_.end()) {
      if (std::chrono::steady_clock::now() - it->second.fetched < options_.plan_ttl) {
        plan_lru_.splice(plan_lru_.begin(), plan_lru_, it->second.lru);
        return it->second.plan;
      }
      plan_lru_.erase(it->second.lru);
      plans_.erase(it);
    }
  }
  return plan_flights_.run(key, [&]() -> Result<PlanPtr> {
    {
      std::lock_guard lock(mu_);
      ++stats_.plan_requests;
    }
    auto plan = cas_.getReconstruction(key.file, xet::InclusiveByteRange{key.first, key.last});
    if (!plan) return plan.error();
    auto ptr = std::make_shared<const ReconstructionPlan>(std::move(plan).value());
    std::lock_guard lock(mu_);
    if (plans_.count(key) == 0) {
      plan_lru_.push_front(key);
      plans_.emplace(key, CachedPlan{ptr, std::chrono::steady_clock::now(), plan_lru_.begin()});
      while (plans_.size() > options_.max_cached_plans) {
        plans_.erase(plan_lru_.back());
        plan_lru_.pop_back();
      }
    }
    return PlanPtr(ptr);
  });
}

void ChunkFetcher::dropPlan(const PlanKey& key) {
  std::lock_guard lock(mu_);
  auto it = plans_.find(key);
  if (it == plans_.end()) return;
  plan_lru_.erase(it->second.lru);
  plans_.erase(it);
}

Status ChunkFetcher::readWithPlan(const xet::MerkleHash& file, uint64_t file_size,
                                  const ReconstructionPlan& plan, uint64_t offset,
                                  std::span<uint8_t> out) {
  const uint64_t end = offset + out.size();
  HFM_ASSIGN_OR_RETURN(const auto terms, gatherTerms(file, file_size, plan, offset, end));
  for (const auto& tw : terms) {
    uint64_t chunk_start = tw.file_start;
    for (const auto& chunk : tw.chunks) {
      const auto& d = *chunk;
      const uint64_t chunk_end = chunk_start + d.size();
      const uint64_t from = std::max(chunk_start, offset);
      const uint64_t to = std::min(chunk_end, end);
      if (from < to) {
        std::memcpy(out.data() + (from - offset), d.data() + (from - chunk_start),
                    static_cast<size_t>(to - from));
      }
      chunk_start = chunk_end;
    }
  }
  return okStatus();
}

Result<std::vector<ChunkFetcher::TermChunks>> ChunkFetcher::gatherTerms(
    const xet::MerkleHash& file, uint64_t file_size, const ReconstructionPlan& plan,
    uint64_t offset, uint64_t end) {
  const uint64_t want = end - offset;
  if (plan.terms.empty()) {
    return Error::io("CAS says the range starts past the end of the file");
  }
  // The plan is positioned only by offset_into_first_range, so make sure it describes bytes
  // from `offset` on: at least the request, and nothing past the end of the file (a server
  // ignoring the Range header would otherwise shift every byte).
  if (plan.offset_into_first_range > offset || plan.availableBytes() < want ||
      plan.availableBytes() > file_size - offset) {
    return Error::io("reconstruction covers " + std::to_string(plan.availableBytes()) +
                     " bytes from offset " + std::to_string(offset) + ", expected " +
                     std::to_string(want) + ".." + std::to_string(file_size - offset));
  }

  // The terms that overlap [offset, end), with their file offsets.
  std::vector<TermChunks> work;
  uint64_t pos = offset - plan.offset_into_first_range;
  for (size_t i = 0; i < plan.terms.size() && pos < end; ++i) {
    const uint64_t t_end = pos + plan.terms[i].unpacked_length;
    if (t_end > offset) work.push_back({i, pos, {}});
    pos = t_end;
  }

  // Cache pass: a term is complete when all its chunks are cached with the planned total.
  std::vector<size_t> missing;  // indices into work
  for (size_t w = 0; w < work.size(); ++w) {
    const auto& term = plan.terms[work[w].term];
    uint64_t total = 0;
    bool complete = cache_ != nullptr;
    for (uint32_t c = term.chunks.start; complete && c < term.chunks.end; ++c) {
      ChunkData d = cache_->get(ChunkKey{term.xorb, c});
      if (!d)
        complete = false;
      else {
        total += d->size();
        work[w].chunks.push_back(std::move(d));
      }
    }
    if (!complete || total != term.unpacked_length) {
      work[w].chunks.clear();
      missing.push_back(w);
    }
  }

  // Join the per-chunk flights of every entry a missing term needs.
  struct Job {
    xet::MerkleHash xorb;
    const FetchEntry* entry;
    std::vector<ChunkKey> led;  // keys this reader must complete
  };
  std::vector<Job> jobs;
  std::unordered_map<ChunkKey, decltype(chunk_flights_)::Future, ChunkKeyHash> futures;
  std::unordered_set<const FetchEntry*> seen_entries;
  for (size_t w : missing) {
    const auto& term = plan.terms[work[w].term];
    const FetchEntry& entry = plan.entryFor(work[w].term);
    if (!seen_entries.insert(&entry).second) continue;
    Job job{term.xorb, &entry, {}};
    for (const auto& r : entry.ranges) {
      for (uint32_t c = r.chunks.start; c < r.chunks.end; ++c) {
        const ChunkKey key{term.xorb, c};
        if (futures.count(key) != 0) continue;
        auto ticket = chunk_flights_.join(key);
        futures.emplace(key, ticket.future);
        if (ticket.leader) job.led.push_back(key);
      }
    }
    if (!job.led.empty()) jobs.push_back(std::move(job));
  }

  // Run the fetches this reader leads; every led key is completed, with data or the error.
  auto runJob = [this](const Job& job) -> Status {
    {
      std::lock_guard lock(mu_);
      ++stats_.fetches;
    }
    std::unordered_map<ChunkKey, ChunkData, ChunkKeyHash> produced;
    Status st = [&]() -> Status {
      fetch_slots_.acquire();
      auto parts_or = cas_.fetch(*job.entry);
      fetch_slots_.release();
      HFM_ASSIGN_OR_RETURN(xet::FetchedRanges parts, std::move(parts_or));
      if (parts.size() != job.entry->ranges.size()) return Error::io("fetch part count mismatch");
      for (size_t r = 0; r < parts.size(); ++r) {
        const auto& range = job.entry->ranges[r];
        const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(parts[r].data()),
                                             parts[r].size());
        HFM_ASSIGN_OR_RETURN(auto decoded, xet::decodeFetchedRange(bytes, range));
        // The chunks stay views into the fetched body and the decode buffer: one shared
        // holder keeps both alive for as long as any reader holds one of its chunks.
        struct Holder {
          std::shared_ptr<const void> body;
          xet::DecodedRange decoded;
        };
        auto holder = std::make_shared<Holder>(Holder{parts.owner, std::move(decoded)});
        const auto& views = holder->decoded.chunks;
        if (cache_) {
          if (auto put = cache_->putRange(job.xorb, range.chunks.start, views); !put) {
            spdlog::debug("chunk cache put failed: {}", put.error().message());
          }
        }
        for (size_t k = 0; k < views.size(); ++k) {
          const ChunkKey key{job.xorb, range.chunks.start + static_cast<uint32_t>(k)};
          produced.emplace(key, ChunkData(holder, &views[k]));
        }
      }
      return okStatus();
    }();
    for (const auto& key : job.led) {
      auto it = produced.find(key);
      if (!st) {
        chunk_flights_.complete(key, st.error());
      } else if (it == produced.end()) {
        chunk_flights_.complete(key, Error::io("chunk missing from fetched range"));
      } else {
        chunk_flights_.complete(key, it->second);
      }
    }
    return st;
  };
  if (jobs.size() == 1) {
    (void)runJob(jobs[0]);  // its error reaches us through the flights below
  } else if (!jobs.empty()) {
    std::atomic<size_t> next{0};
    auto worker = [&] {
      for (size_t j = next.fetch_add(1); j < jobs.size(); j = next.fetch_add(1)) {
        (void)runJob(jobs[j]);
      }
    };
    const size_t n_threads =
        std::min(jobs.size(), std::max<size_t>(1, options_.max_parallel_fetches));
    std::vector<std::thread> threads;
    for (size_t t = 1; t < n_threads; ++t) threads.emplace_back(worker);
    worker();
    for (auto& t : threads) t.join();
  }

  // Collect the missing terms' chunks (from our fetches or from other readers' flights).
  for (size_t w : missing) {
    const auto& term = plan.terms[work[w].term];
    for (uint32_t c = term.chunks.start; c < term.chunks.end; ++c) {
      const auto& result = futures.at(ChunkKey{term.xorb, c}).get();
      if (!result.ok()) return result.error();
      work[w].chunks.push_back(result.value());
    }
  }

  // Verify each term and remember where its chunks are.
  LayoutRun layout;
  for (const auto& tw : work) {
    const auto& term = plan.terms[tw.term];
    uint64_t total = 0;
    for (const auto& d : tw.chunks) total += d->size();
    if (total != term.unpacked_length) {
      return Error::io("term " + std::to_string(tw.term) + " (xorb " + term.xorb.hex() +
                       ") decoded to " + std::to_string(total) + " bytes, plan says " +
                       std::to_string(term.unpacked_length));
    }
    uint64_t chunk_start = tw.file_start;
    for (size_t k = 0; k < tw.chunks.size(); ++k) {
      const auto size = static_cast<uint32_t>(tw.chunks[k]->size());
      layout.emplace_back(chunk_start,
                          ChunkLoc{term.xorb, term.chunks.start + static_cast<uint32_t>(k), size});
      chunk_start += size;
    }
  }
  if (cache_) rememberLayout(file, layout);
  return work;
}

Status ChunkFetcher::forEachChunk(const xet::MerkleHash& file, uint64_t file_size,
                                  const std::function<Status(const FileChunk&)>& visit) {
  const uint64_t window = std::max<uint64_t>(1, options_.walk_window);
  uint64_t next = 0;  // file offset of the next chunk to visit
  while (next < file_size) {
    const uint64_t end = next + std::min(window, file_size - next);
    std::vector<ChunkData> keep;  // owns the bytes the window's chunks view
    auto chunks = windowChunks(file, file_size, next, end, keep);
    if (!chunks) return chunks.error().withContext("chunks of " + file.hex());
    for (const auto& chunk : *chunks) {
      if (chunk.offset + chunk.bytes.size() <= next) continue;  // visited with the last window
      if (chunk.offset != next) {
        return Error::io("chunks of " + file.hex() + ": a chunk starts at " +
                         std::to_string(chunk.offset) + ", expected " + std::to_string(next));
      }
      HFM_TRY(visit(chunk));
      next += chunk.bytes.size();
    }
    if (next < end) {
      return Error::io("chunks of " + file.hex() + " end at " + std::to_string(next) +
                       ", expected " + std::to_string(end));
    }
  }
  return okStatus();
}

Result<std::vector<FileChunk>> ChunkFetcher::windowChunks(const xet::MerkleHash& file,
                                                          uint64_t file_size, uint64_t offset,
                                                          uint64_t end,
                                                          std::vector<ChunkData>& keep) {
  std::vector<FileChunk> out;
  LayoutRun run;
  if (cache_ && layoutRun(file, offset, end, run)) {
    for (const auto& [start, loc] : run) {
      ChunkData data = cache_->get(ChunkKey{loc.xorb, loc.index});
      if (!data || data->size() != loc.size) break;
      out.push_back(FileChunk{start, loc.xorb, loc.index, *data});
      keep.push_back(std::move(data));
    }
    if (out.size() == run.size()) return out;
  }
  const auto fromPlan = [&](const ReconstructionPlan& plan) -> Status {
    HFM_ASSIGN_OR_RETURN(auto terms, gatherTerms(file, file_size, plan, offset, end));
    out.clear();
    keep.clear();
    for (auto& tw : terms) {
      const auto& term = plan.terms[tw.term];
      uint64_t start = tw.file_start;
      for (size_t k = 0; k < tw.chunks.size(); ++k) {
        const std::span<const uint8_t> bytes = *tw.chunks[k];
        out.push_back(
            FileChunk{start, term.xorb, term.chunks.start + static_cast<uint32_t>(k), bytes});
        start += bytes.size();
        keep.push_back(std::move(tw.chunks[k]));
      }
    }
    return okStatus();
  };
  HFM_TRY(withPlan(PlanKey{file, offset, end - 1}, fromPlan));
  return out;
}

void ChunkFetcher::rememberLayout(const xet::MerkleHash& file,
                                  std::span<const std::pair<uint64_t, ChunkLoc>> chunks) {
  std::lock_guard lock(mu_);
  auto it = layouts_.find(file);
  if (it == layouts_.end()) {
    layout_lru_.push_front(file);
    it = layouts_.emplace(file, FileLayout{{}, layout_lru_.begin()}).first;
  } else {
    layout_lru_.splice(layout_lru_.begin(), layout_lru_, it->second.lru);
  }
  for (const auto& [start, loc] : chunks) {
    if (it->second.chunks.emplace(start, loc).second) ++layout_chunks_;
  }
  // Forget least recently read files first (never the one just read).
  while (layout_chunks_ > options_.max_layout_chunks && layout_lru_.size() > 1) {
    auto victim = layouts_.find(layout_lru_.back());
    layout_chunks_ -= victim->second.chunks.size();
    layouts_.erase(victim);
    layout_lru_.pop_back();
  }
}

}  // namespace hfm::cache
