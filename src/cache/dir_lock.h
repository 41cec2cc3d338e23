// One process per cache directory: both disk caches take an exclusive flock() on
// <root>/.lock for as long as they are open (closing the descriptor releases it).
#pragma once

#include <filesystem>
#include <string>

#include "hfm/util/result.h"

namespace hfm::cache {

// The locked descriptor of <root>/.lock, or EBUSY naming `what` ("chunk cache", "file cache")
// when another process holds it.
Result<int> lockCacheDirectory(const std::filesystem::path& root, const std::string& what);

}  // namespace hfm::cache
