// The Hub half of hf-local-hub: routes every request. `/v1/…` and `/v2/…` go to the CAS
// service; everything else is answered here with the Hub's exact shapes (docs/hub-api.md,
// docs/conformance-js-client.md): whoami, Storage Buckets (create/info/list/delete, tree with
// `Link` cursor pagination, paths-info, NDJSON batch, resolve), model/dataset/space repos
// (create/delete, info at a revision, tree, paths-info, preupload, git-LFS batch answering
// transfer "xet", NDJSON commit, refs, branches, tags, commits, resolve and raw), and Xet
// read/write tokens whose casUrl is this server's own base URL (taken from the Host header).
//
// Authentication: `Authorization: Bearer <hub token>` must name a registered user (401
// otherwise). Anonymous callers read public resources only. A user writes only under its own
// namespace. Errors carry the Hub's status, `X-Error-Code`, `X-Error-Message` and a JSON
// `{"error": …}` body; bad input (ids, paths, JSON, NDJSON) is a 4xx and stores nothing.
#pragma once

#include <map>
#include <string>

#include "hfm/localhub/cas_service.h"
#include "hfm/localhub/http_types.h"
#include "hfm/localhub/hub_store.h"
#include "hfm/localhub/tokens.h"

namespace hfm::localhub {

struct HubOptions {
  std::map<std::string, std::string> users_by_token;  // hub token -> user name
  std::string fallback_base_url;                      // used when a request has no Host
};

class HubService {
 public:
  // `cas` may be null (tests of the Hub half alone): CAS routes then answer 404 and xet
  // hashes other than the empty file's are unknown.
  HubService(HubStore* store, CasService* cas, const XetTokens* tokens, HubOptions options);

  HttpResponse handle(const HttpRequest& request);

  struct Ctx;

 private:
  HttpResponse route(Ctx& ctx);
  HttpResponse whoami(Ctx& ctx);
  HttpResponse bucketsApi(Ctx& ctx, size_t at);
  HttpResponse bucketResolve(Ctx& ctx);
  HttpResponse reposApi(Ctx& ctx);
  HttpResponse moveRepo(Ctx& ctx);
  HttpResponse repoApi(Ctx& ctx, const std::string& type, size_t at);
  HttpResponse lfsBatch(Ctx& ctx, const std::string& type, size_t at);
  HttpResponse repoResolve(Ctx& ctx, const std::string& type, size_t at);

  HubStore* store_;
  CasService* cas_;
  const XetTokens* tokens_;
  HubOptions options_;
};

// Validation shared with tests. nullopt when valid, else a message fit for a 400.
std::optional<std::string> invalidRepoName(const std::string& part);
std::optional<std::string> invalidFilePath(const std::string& path);

}  // namespace hfm::localhub
