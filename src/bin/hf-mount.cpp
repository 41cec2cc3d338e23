// hf-mount: mounts Hugging Face buckets and repos (`start`, `stop`, `status`, from the app
// layer) and offers local tools (`hash`, from the cli layer). This main only wires
// subcommands. Exit codes: 0 ok, 1 a subcommand failed, 2 bad usage.

// CLI11 2.1's inlined string helpers trip GCC 12's -Wnull-dereference (a false positive in
// libstdc++'s basic_string); silence it for this header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop

#include <iostream>

#include "hfm/app/supervisor.h"
#include "hfm/cli/hash_command.h"

namespace {

int run(int argc, char** argv) {
  CLI::App app{"hf-mount: Hugging Face Storage Buckets and Hub repos as local folders"};
  app.set_version_flag("--version", std::string("hf-mount ") + HFM_VERSION);
  app.require_subcommand(1, 1);

  int exit_code = 0;
  hfm::cli::addHashCommand(app, &exit_code);
  const hfm::app::SupervisorCommands supervisor(app);  // start, stop, status

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with exit code 0; everything else is bad usage.
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (auto code = supervisor.run()) return *code;
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // e.g. out of memory: report instead of aborting
    std::cerr << "hf-mount: " << e.what() << "\n";
    return 1;
  }
}
