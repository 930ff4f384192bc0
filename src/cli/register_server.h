// `aloha-bouncer register-server`: the command a self-hosted server's admin runs to register with
// (or rotate the key at, or deactivate at) a bouncer, speaking api.md §3 server/register and
// server/deactivate. The org id and key live in a secrets file (secrets.h); the key is never
// printed. Synchronous and single-shot: every function returns when the command is done.
#pragma once
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli/http_client.h"

namespace aloha::cli {

// Exit statuses of the command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the bouncer refused, network or file errors
inline constexpr int kExitUsage = 2;    // bad arguments, bad URL, no terms acceptance on non-tty

struct RegisterOptions {
  std::string url;
  std::string hostname;
  std::string email;
  std::string secrets_path;
  bool agree_to_terms = false;
  bool rotate_key = false;
  bool deactivate = false;
  bool help = false;
};

// Parses the arguments after "register-server" (`--opt VALUE` or `--opt=VALUE`). Returns an empty
// string on success, else the usage error to print. --help sets `help` and skips other checks.
std::string parse_register_args(const std::vector<std::string>& args, RegisterOptions& out);

// The usage text (ends in '\n').
const char* register_server_usage();

enum class UrlCheck { ok, invalid };
// Accepts "http://host[:port][/prefix]"; `base` gets the URL without trailing slashes, to which
// "/api/v1/remotes/..." is appended.
UrlCheck check_bouncer_url(std::string_view url, std::string& base);

// application/x-www-form-urlencoded body (unreserved characters kept, space as '+', the rest %XX).
std::string form_urlencode(const std::vector<std::pair<std::string, std::string>>& fields);

// Makes `s` safe to print to a terminal: control characters become '?', at most `max` bytes kept
// (an ellipsis marks a cut). Used for text that came from the bouncer.
std::string printable(std::string_view s, size_t max);

// Everything the command touches outside its arguments, so tests can drive it without a network
// or a terminal. The functions are called synchronously, on the calling thread.
struct CliEnv {
  FILE* out = stdout;
  FILE* err = stderr;
  std::function<bool()> stdin_is_tty;
  // Reads one line of the answer to a prompt (without the newline); false on end of input.
  std::function<bool(std::string& line)> read_line;
  std::function<HttpResult(const std::string& method, const std::string& url,
                           const std::vector<http::Header>& headers, const std::string& body,
                           int timeout_ms)>
      http;
  std::function<std::string()> new_org_id;   // random lowercase UUIDv4
  std::function<std::string()> new_org_key;  // 64 ASCII letters and digits
};

// stdio, isatty(0), http_request() and the crypto helpers.
CliEnv default_cli_env();

// Runs the command with `args` (the arguments after "register-server"); returns the exit status.
int register_server_run(const std::vector<std::string>& args, const CliEnv& env);

// Entry point for main.cpp; argv[0] is "register-server".
int register_server_main(int argc, char** argv);

}  // namespace aloha::cli
