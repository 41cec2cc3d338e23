#include "hfm/util/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <regex>

namespace hfm::util {
namespace {

std::optional<spdlog::level::level_enum> levelFromWord(std::string_view word) {
  if (word == "error") return spdlog::level::err;
  if (word == "warn" || word == "warning") return spdlog::level::warn;
  if (word == "info") return spdlog::level::info;
  if (word == "debug") return spdlog::level::debug;
  if (word == "trace") return spdlog::level::trace;
  if (word == "off") return spdlog::level::off;
  return std::nullopt;
}

}  // namespace

std::optional<spdlog::level::level_enum> parseLogLevel(std::string_view spec) {
  std::optional<spdlog::level::level_enum> global;
  std::optional<spdlog::level::level_enum> ours;
  while (!spec.empty()) {
    const size_t comma = spec.find(',');
    std::string_view item = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view{} : spec.substr(comma + 1);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      if (auto level = levelFromWord(item)) global = level;
    } else if (item.substr(0, eq) == "hf_mount" || item.substr(0, eq) == "hf-mount") {
      if (auto level = levelFromWord(item.substr(eq + 1))) ours = level;
    }
  }
  return ours ? ours : global;
}

void setupLogging(const std::string& log_file,
                  std::optional<spdlog::level::level_enum> level_override) {
  std::shared_ptr<spdlog::logger> logger;
  if (log_file.empty()) {
    logger = spdlog::stderr_color_mt("hf-mount");
  } else {
    logger = spdlog::basic_logger_mt("hf-mount", log_file);
  }
  auto level = level_override;
  if (!level) {
    if (const char* env = std::getenv("HF_MOUNT_LOG")) level = parseLogLevel(env);
  }
  if (!level) {
    if (const char* env = std::getenv("RUST_LOG")) level = parseLogLevel(env);
  }
  logger->set_level(level.value_or(spdlog::level::info));
  logger->flush_on(spdlog::level::info);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%t] %v");
  spdlog::set_default_logger(logger);
}

std::string redactToken(std::string_view text) {
  static const std::regex kToken("hf_[A-Za-z0-9]{4,}");
  return std::regex_replace(std::string(text), kToken, "hf_***");
}

}  // namespace hfm::util
