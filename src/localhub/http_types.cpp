#include "hfm/localhub/http_types.h"

#include <algorithm>
#include <cctype>

namespace hfm::localhub {

bool HeaderLess::operator()(const std::string& a, const std::string& b) const {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) <
           std::tolower(static_cast<unsigned char>(y));
  });
}

std::string HttpRequest::queryParam(const std::string& key, const std::string& fallback) const {
  auto it = query.find(key);
  return it == query.end() ? fallback : it->second;
}

std::string HttpRequest::header(const std::string& key, const std::string& fallback) const {
  auto it = headers.find(key);
  return it == headers.end() ? fallback : it->second;
}

uint64_t HttpResponse::contentLength() const {
  uint64_t total = 0;
  for (const auto& piece : body) {
    if (const auto* s = std::get_if<std::string>(&piece)) {
      total += s->size();
    } else {
      total += std::get<FileSlice>(piece).length;
    }
  }
  return total;
}

HttpResponse HttpResponse::text(int status, std::string body, std::string content_type) {
  HttpResponse r;
  r.status = status;
  r.headers["Content-Type"] = std::move(content_type);
  r.body.emplace_back(std::move(body));
  return r;
}

HttpResponse HttpResponse::json(int status, const std::string& json_body) {
  return text(status, json_body, "application/json; charset=utf-8");
}

}  // namespace hfm::localhub
