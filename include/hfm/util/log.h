// Logging setup shared by every binary. The level comes from HF_MOUNT_LOG
// (error|warn|info|debug|trace) or a RUST_LOG-style "hf_mount=debug" directive; the default
// is info. Tokens must never be passed to the logger: use redactToken() on anything that may
// hold one.
#pragma once

#include <spdlog/spdlog.h>

#include <optional>
#include <string>
#include <string_view>

namespace hfm::util {

// Parses "debug", "hf_mount=debug" or "warn,hf_mount=trace" into a level; nullopt if none.
std::optional<spdlog::level::level_enum> parseLogLevel(std::string_view spec);

// Configures the default logger: stderr, or `log_file` when non-empty, with the level from
// the environment (HF_MOUNT_LOG, then RUST_LOG) unless `level_override` is given.
void setupLogging(const std::string& log_file = {},
                  std::optional<spdlog::level::level_enum> level_override = std::nullopt);

// "hf_abcdef…" → "hf_***"; anything that does not look like a token is returned unchanged.
std::string redactToken(std::string_view text);

}  // namespace hfm::util
