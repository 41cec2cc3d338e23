// hf-local-hub: serves the Hugging Face Hub API and the Xet CAS API over loopback HTTP from a
// data directory, for tests, demos and self-hosted buckets.
//
//   hf-local-hub serve --data DIR [--host 127.0.0.1] [--port 8080] [--token USER:TOKEN]...
//                      [--fault-rate P --faults 5xx,reset,slow,truncate] [--latency-ms N]
//                      [--token-ttl-secs N] [--no-global-dedup]
//
// Prints "hf-local-hub listening on http://HOST:PORT" once ready; SIGTERM/SIGINT stop it.
#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>

#include "hfm/localhub/cas_service.h"
#include "hfm/localhub/http_server.h"
#include "hfm/localhub/hub_service.h"
#include "hfm/localhub/hub_store.h"
#include "hfm/localhub/tokens.h"
#include "hfm/util/log.h"

namespace {

int serve(const std::string& data, const std::string& host, uint16_t port,
          const std::vector<std::string>& user_tokens, double fault_rate, const std::string& faults,
          int latency_ms, int64_t ttl_secs, unsigned threads, bool global_dedup) {
  using namespace hfm::localhub;
  HubOptions hub_options;
  for (const auto& ut : user_tokens) {
    auto colon = ut.find(':');
    std::string user = colon == std::string::npos ? "" : ut.substr(0, colon);
    std::string token = colon == std::string::npos ? "" : ut.substr(colon + 1);
    if (user.empty() || invalidRepoName(user) || !token.starts_with("hf_") || token.size() < 4) {
      std::cerr << "error: --token expects USER:TOKEN with a valid user name and a token "
                   "starting with hf_ (got '"
                << hfm::util::redactToken(ut) << "')\n";
      return 2;
    }
    hub_options.users_by_token[token] = user;
  }
  auto fault_options = FaultOptions::parseKinds(faults, fault_rate, latency_ms);
  if (!fault_options) {
    std::cerr << "error: " << fault_options.error().message() << "\n";
    return 2;
  }
  if (ttl_secs <= 0) {
    std::cerr << "error: --token-ttl-secs must be positive\n";
    return 2;
  }

  // Block the stop signals before any thread starts, so only sigwait sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto store = HubStore::open(data);
  if (!store) {
    std::cerr << "error: " << store.error().message() << "\n";
    return 1;
  }
  XetTokens tokens((*store)->secret(), ttl_secs);
  CasOptions cas_options;
  cas_options.global_dedup = global_dedup;
  auto cas = CasService::open(data, &tokens, cas_options);
  if (!cas) {
    std::cerr << "error: " << cas.error().message() << "\n";
    return 1;
  }
  ServerOptions server_options;
  server_options.host = host;
  server_options.port = port;
  server_options.threads = threads;
  server_options.faults = *fault_options;
  // The handler target is built once the port is known (for URLs without a Host header).
  std::atomic<HubService*> hub_ptr{nullptr};
  auto server = HttpServer::start(server_options, [&hub_ptr](const HttpRequest& req) {
    HubService* hub = hub_ptr.load();
    if (hub == nullptr) return HttpResponse::json(503, R"({"error":"starting"})");
    return hub->handle(req);
  });
  if (!server) {
    std::cerr << "error: " << server.error().message() << "\n";
    return 1;
  }
  hub_options.fallback_base_url = (*server)->baseUrl();
  HubService hub(store->get(), cas->get(), &tokens, hub_options);
  hub_ptr = &hub;
  std::printf("hf-local-hub listening on %s\n", (*server)->baseUrl().c_str());
  std::fflush(stdout);
  spdlog::info("hf-local-hub: data {}, {} user(s), faults rate {}", data,
               hub_options.users_by_token.size(), fault_options->rate);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("hf-local-hub: signal {}, stopping", sig);
  (*server)->stop();
  hub_ptr = nullptr;
  return 0;
}

int run(int argc, char** argv) {
  hfm::util::setupLogging();
  CLI::App app{"hf-local-hub: a local Hugging Face Hub + Xet CAS server"};
  app.require_subcommand(1);
  auto* serve_cmd = app.add_subcommand("serve", "Serve a data directory over HTTP");
  std::string data;
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  std::vector<std::string> user_tokens;
  double fault_rate = 0;
  std::string faults;
  int latency_ms = 0;
  int64_t ttl_secs = 3600;
  unsigned threads = 8;
  bool no_global_dedup = false;
  serve_cmd->add_option("--data", data, "Data directory (created if missing)")->required();
  serve_cmd->add_option("--host", host, "Address to listen on (127.0.0.1, ::1, ...)");
  serve_cmd->add_option("--port", port, "TCP port; 0 picks a free one");
  serve_cmd->add_option("--token", user_tokens, "USER:TOKEN (token starts with hf_); repeatable");
  serve_cmd->add_option("--fault-rate", fault_rate, "Probability of an injected fault")
      ->check(CLI::Range(0.0, 1.0));
  serve_cmd->add_option("--faults", faults, "Fault kinds: 5xx,reset,slow,truncate");
  serve_cmd->add_option("--latency-ms", latency_ms, "Latency added to every request")
      ->check(CLI::NonNegativeNumber);
  serve_cmd->add_option("--token-ttl-secs", ttl_secs, "Lifetime of issued Xet tokens");
  serve_cmd->add_option("--threads", threads, "HTTP worker threads")->check(CLI::Range(1, 256));
  serve_cmd->add_flag("--no-global-dedup", no_global_dedup,
                      "Answer every global-dedup query with 404 (clients upload what they "
                      "do not know themselves)");
  CLI11_PARSE(app, argc, argv);
  return serve(data, host, port, user_tokens, fault_rate, faults, latency_ms, ttl_secs, threads,
               !no_global_dedup);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // e.g. out of memory: report instead of aborting
    std::cerr << "hf-local-hub: " << e.what() << "\n";
    return 1;
  }
}
