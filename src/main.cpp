// aloha-bouncer: command-line entry. Arguments → config → App, plus the server-side client
// commands. Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "aloha_version.h"
#include "aloha/app.h"
#include "cli/register_server.h"
#include "core/config.h"

namespace {

void usage(FILE* out) {
  fprintf(out,
          "Usage: aloha-bouncer COMMAND [OPTIONS]\n"
          "\n"
          "Commands:\n"
          "  serve --config FILE          run the push bouncer\n"
          "  check-config --config FILE   validate a configuration file and exit\n"
          "  register-server --url URL --hostname H --email E --secrets FILE\n"
          "                  [--agree-to-terms-of-service] [--rotate-key] [--deactivate]\n"
          "                               register this self-hosted server with a bouncer\n"
          "  --help                       show this text\n"
          "  --version                    show the version\n");
}

// Parses "--config FILE" (or --config=FILE) from argv[2..]; prints the problem and returns false.
bool config_arg(int argc, char** argv, std::string& path) {
  for (int i = 2; i < argc; ++i) {
    if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      path = argv[++i];
    } else if (strncmp(argv[i], "--config=", 9) == 0) {
      path = argv[i] + 9;
    } else {
      fprintf(stderr, "aloha-bouncer %s: unexpected argument '%s'\n", argv[1], argv[i]);
      return false;
    }
  }
  if (path.empty()) {
    fprintf(stderr, "aloha-bouncer %s: --config FILE is required\n", argv[1]);
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    usage(stdout);
    return 0;
  }
  if (cmd == "--version") {
    printf("aloha-bouncer %s\n", ALOHA_VERSION);
    return 0;
  }
  if (cmd == "register-server") return aloha::cli::register_server_main(argc - 1, argv + 1);
  if (cmd == "serve" || cmd == "check-config") {
    std::string path;
    if (!config_arg(argc, argv, path)) return 2;
    aloha::Config config;
    try {
      config = aloha::load_config(path);
    } catch (const aloha::ConfigError& e) {
      fprintf(stderr, "%s\n", e.what());
      return 2;
    }
    if (cmd == "check-config") {
      printf("%s: ok\n", path.c_str());
      return 0;
    }
    // libuv's thread pool runs only WAL fdatasyncs, checkpoints and getaddrinfo; its default of
    // four threads keeps four stacks of which each used thread leaves ~100 KB resident. Two
    // threads still let a sync run beside a checkpoint (libuv gives slow work such as getaddrinfo
    // at most half of them, so a hanging DNS lookup never holds both). Read once, when the pool
    // starts (the first sync); an operator's own UV_THREADPOOL_SIZE wins.
    setenv("UV_THREADPOOL_SIZE", "2", 0);
    aloha::App app(std::move(config));
    return app.run();
  }
  fprintf(stderr, "aloha-bouncer: unknown command '%s'\n\n", cmd.c_str());
  usage(stderr);
  return 2;
}
