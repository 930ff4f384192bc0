// `aloha-bouncer register-server`; see register_server.h. The wire contract is api.md §3
// (server/register, server/deactivate) and §2 (HTTP Basic for deactivate).
#include "cli/register_server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include <rapidjson/document.h>

#include "aloha_version.h"
#include "cli/secrets.h"
#include "core/crypto.h"

namespace aloha::cli {
namespace {

// api.md §1: clients time out after 15 s and do not retry on their own.
constexpr int kRequestTimeoutMs = 15000;
// Bound on what we echo from a bouncer's answer.
constexpr size_t kMaxEchoedBytes = 500;

const char kUsage[] =
    "usage: aloha-bouncer register-server --url URL --secrets FILE --hostname HOST --email EMAIL\n"
    "                                     [--agree-to-terms-of-service] [--rotate-key]\n"
    "                                     [--ca-file FILE]\n"
    "       aloha-bouncer register-server --url URL --secrets FILE --deactivate [--ca-file FILE]\n"
    "\n"
    "Registers this server with a push notification bouncer (or updates its registration).\n"
    "\n"
    "  --url URL        the bouncer's base URL, e.g. https://bouncer.example.net or\n"
    "                   http://bouncer.example.net:8080\n"
    "  --secrets FILE   INI file whose [secrets] section holds aloha_org_id and aloha_org_key\n"
    "                   (zulip_org_id/zulip_org_key are read too); created, mode 0600, with a\n"
    "                   new random org id and key when it holds none\n"
    "  --hostname HOST  the public hostname of this server\n"
    "  --email EMAIL    the contact email of the server's administrator\n"
    "  --agree-to-terms-of-service\n"
    "                   accept the bouncer's terms of service without asking\n"
    "  --rotate-key     send a new random org key; it replaces the stored one once accepted\n"
    "  --deactivate     deactivate this server's registration at the bouncer\n"
    "  --ca-file FILE   PEM file of the CA certificate(s) an https bouncer's certificate must\n"
    "                   chain to (default: $ALOHA_CA_FILE if set, else the system bundle\n"
    "                   /etc/ssl/certs/ca-certificates.crt); the host name is always checked\n"
    "  --help           show this text\n"
    "\n"
    "Exit status: 0 success, 1 refused by the bouncer or other failure, 2 usage error.\n";

bool ascii_iequal_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

std::string trim_lower(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// What we need from a bouncer's JSON answer (api.md §1: success and error shapes).
struct Reply {
  bool json_object = false;
  bool success = false;   // "result":"success"
  bool has_msg = false;
  std::string msg;
  std::string code;
  bool has_created = false;
  bool created = false;
};

Reply parse_reply(const std::string& body) {
  Reply r;
  rapidjson::Document d;
  d.Parse(body.data(), body.size());
  if (d.HasParseError() || !d.IsObject()) return r;
  r.json_object = true;
  auto it = d.FindMember("result");
  r.success = it != d.MemberEnd() && it->value.IsString() &&
              std::string_view(it->value.GetString(), it->value.GetStringLength()) == "success";
  it = d.FindMember("msg");
  if (it != d.MemberEnd() && it->value.IsString()) {
    r.has_msg = true;
    r.msg.assign(it->value.GetString(), it->value.GetStringLength());
  }
  it = d.FindMember("code");
  if (it != d.MemberEnd() && it->value.IsString())
    r.code.assign(it->value.GetString(), it->value.GetStringLength());
  it = d.FindMember("created");
  if (it != d.MemberEnd() && it->value.IsBool()) {
    r.has_created = true;
    r.created = it->value.GetBool();
  }
  return r;
}

// Reports a transport failure or a non-success answer; returns true when there was one.
bool report_failure(const CliEnv& env, const HttpResult& res, const Reply& reply,
                    const std::string& url, const char* what) {
  if (!res.error.empty() || res.status == 0) {
    std::fprintf(env.err, "register-server: could not reach the bouncer at %s: %s\n", url.c_str(),
                 res.error.empty() ? "no response" : printable(res.error, kMaxEchoedBytes).c_str());
    return true;
  }
  // api.md §1: success is exactly HTTP 200 with "result":"success".
  if (res.status == 200 && reply.success) return false;
  if (reply.json_object && reply.has_msg) {
    std::fprintf(env.err, "register-server: the bouncer refused %s (HTTP %d, code %s): %s\n", what,
                 res.status, reply.code.empty() ? "none" : printable(reply.code, 100).c_str(),
                 printable(reply.msg, kMaxEchoedBytes).c_str());
  } else {
    std::fprintf(env.err, "register-server: unexpected answer from the bouncer to %s (HTTP %d): %s\n",
                 what, res.status,
                 res.body.empty() ? "(empty body)" : printable(res.body, 200).c_str());
  }
  return true;
}

std::vector<http::Header> common_headers() {
  // api.md §1: servers identify themselves as AlohaServer/<version>.
  // ALOHA_VERSION is a string literal: joined at compile time (a runtime `std::string + char*`
  // here drew a false -Wstringop-overread from GCC 12 under LTO).
  return {{"user-agent", "AlohaServer/" ALOHA_VERSION}, {"content-type", "application/x-www-form-urlencoded"}};
}

int run_deactivate(const RegisterOptions& o, const std::string& base, const SecretsFile& sf,
                   const CliEnv& env) {
  if (sf.org_id().empty() || sf.org_key().empty()) {
    std::fprintf(env.err,
                 "register-server: %s holds no org id and key: there is no registration to "
                 "deactivate\n",
                 o.secrets_path.c_str());
    return kExitFailure;
  }
  std::fprintf(env.out, "Deactivating the registration of org id %s at %s\n",
               sf.org_id().c_str(), base.c_str());
  std::fflush(env.out);
  const std::string url = base + "/api/v1/remotes/server/deactivate";
  auto headers = common_headers();
  // api.md §2: HTTP Basic with the org id as user and the org key as password.
  headers.push_back({"authorization", basic_auth(sf.org_id(), sf.org_key())});
  const HttpResult res = env.http("POST", url, headers, "", kRequestTimeoutMs);
  const Reply reply = parse_reply(res.body);
  if (report_failure(env, res, reply, url, "the deactivation")) return kExitFailure;
  std::fprintf(env.out, "Deactivated the registration\n");
  return kExitOk;
}

}  // namespace

const char* register_server_usage() { return kUsage; }

namespace {
// The parser behind parse_register_args(). --ca-file configures the transport, not the command:
// it is parsed (and checked) here like every option but handed to register_server_main(), which
// builds the HTTPS client from it, since RegisterOptions has no slot for it.
std::string parse_args(const std::vector<std::string>& args, RegisterOptions& out,
                       std::string& ca_file) {
  out = RegisterOptions{};
  ca_file.clear();
  struct ValueOpt {
    const char* name;
    std::string* dest;
  };
  const ValueOpt value_opts[] = {{"--url", &out.url},
                                 {"--hostname", &out.hostname},
                                 {"--email", &out.email},
                                 {"--secrets", &out.secrets_path},
                                 {"--ca-file", &ca_file}};
  struct FlagOpt {
    const char* name;
    bool* dest;
  };
  const FlagOpt flag_opts[] = {{"--agree-to-terms-of-service", &out.agree_to_terms},
                               {"--rotate-key", &out.rotate_key},
                               {"--deactivate", &out.deactivate}};

  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      out.help = true;
      return "";
    }
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::string_view name = a;
    std::string_view inline_value;
    bool has_inline = false;
    if (const size_t eq = name.find('='); eq != std::string_view::npos && a.rfind("--", 0) == 0) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_inline = true;
    }
    bool matched = false;
    for (const auto& v : value_opts) {
      if (name != v.name) continue;
      matched = true;
      std::string value;
      if (has_inline) {
        value = std::string(inline_value);
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return std::string(v.name) + " needs a value";
      }
      if (value.empty()) return std::string(v.name) + " needs a non-empty value";
      if (!v.dest->empty()) return std::string(v.name) + " given twice";
      *v.dest = std::move(value);
    }
    for (const auto& f : flag_opts) {
      if (name != f.name) continue;
      matched = true;
      if (has_inline) return std::string(f.name) + " takes no value";
      *f.dest = true;
    }
    if (!matched) {
      if (a.rfind("-", 0) == 0) return "unknown option " + a;
      return "unexpected argument " + a;
    }
  }
  if (out.url.empty()) return "--url is required";
  if (out.secrets_path.empty()) return "--secrets is required";
  if (out.deactivate && out.rotate_key) return "--rotate-key and --deactivate cannot be combined";
  if (!out.deactivate) {
    if (out.hostname.empty()) return "--hostname is required";
    if (out.email.empty()) return "--email is required";
  }
  return "";
}
}  // namespace

std::string parse_register_args(const std::vector<std::string>& args, RegisterOptions& out) {
  std::string ca_file;
  return parse_args(args, out, ca_file);
}

UrlCheck check_bouncer_url(std::string_view url, std::string& base) {
  base.clear();
  // https goes through http_request()'s TLS transport, so both schemes are ok.
  size_t scheme_len = 0;
  if (ascii_iequal_prefix(url, "https://")) scheme_len = 8;
  else if (ascii_iequal_prefix(url, "http://")) scheme_len = 7;
  else return UrlCheck::invalid;
  for (const char c : url) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '?' || c == '#') return UrlCheck::invalid;
  }
  const std::string_view rest = url.substr(scheme_len);
  const size_t slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  if (authority.empty() || authority.find('@') != std::string_view::npos) return UrlCheck::invalid;
  while (!url.empty() && url.back() == '/') url.remove_suffix(1);
  base = std::string(url);
  return UrlCheck::ok;
}

std::string form_urlencode(const std::vector<std::pair<std::string, std::string>>& fields) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  auto encode = [&](std::string_view s) {
    for (const char c : s) {
      const auto u = static_cast<unsigned char>(c);
      if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '.' || c == '_' || c == '~') {
        out += c;
      } else if (c == ' ') {
        out += '+';
      } else {
        out += '%';
        out += hex[u >> 4];
        out += hex[u & 15];
      }
    }
  };
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) out += '&';
    encode(fields[i].first);
    out += '=';
    encode(fields[i].second);
  }
  return out;
}

std::string printable(std::string_view s, size_t max) {
  std::string out;
  const bool cut = s.size() > max;
  if (cut) s = s.substr(0, max);
  for (size_t i = 0; i < s.size(); ++i) {
    const auto u = static_cast<unsigned char>(s[i]);
    if (u < 0x20 || u == 0x7f) {
      out += '?';
    } else if (u == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(s[i + 1]) <= 0x9f) {
      out += '?';  // a C1 control (U+0080..U+009F) in UTF-8, e.g. CSI: terminals may obey it
      ++i;
    } else {
      out += s[i];
    }
  }
  if (cut) out += "...";
  return out;
}

CliEnv default_cli_env() {
  CliEnv env;
  env.out = stdout;
  env.err = stderr;
  env.stdin_is_tty = [] { return ::isatty(STDIN_FILENO) == 1; };
  env.read_line = [](std::string& line) {
    line.clear();
    char buf[256];
    if (std::fgets(buf, sizeof buf, stdin) == nullptr) return false;
    line = buf;
    // Drop the rest of an over-long line so it is not read as the next answer.
    if (!line.empty() && line.back() != '\n') {
      int c;
      while ((c = std::fgetc(stdin)) != EOF && c != '\n') {
      }
    }
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    return true;
  };
  // https bouncers are verified against $ALOHA_CA_FILE when set (register_server_main() lets
  // --ca-file override it), else the system bundle.
  HttpOptions http_opts;
  if (const char* ca = std::getenv("ALOHA_CA_FILE"); ca != nullptr && *ca != '\0')
    http_opts.ca_file = ca;
  env.http = [http_opts](const std::string& method, const std::string& url,
                         const std::vector<http::Header>& headers, const std::string& body,
                         int timeout_ms) {
    return http_request(method, url, headers, body, timeout_ms, http_opts);
  };
  env.new_org_id = [] { return std::string(crypto::random_uuid4()); };
  env.new_org_key = [] { return std::string(crypto::random_alnum(64)); };
  return env;
}

int register_server_run(const std::vector<std::string>& args, const CliEnv& env) {
  RegisterOptions o;
  const std::string usage_error = parse_register_args(args, o);
  if (o.help) {
    std::fputs(kUsage, env.out);
    return kExitOk;
  }
  if (!usage_error.empty()) {
    std::fprintf(env.err, "register-server: %s\n\n%s", usage_error.c_str(), kUsage);
    return kExitUsage;
  }
  std::string base;
  switch (check_bouncer_url(o.url, base)) {
    case UrlCheck::ok:
      break;
    case UrlCheck::invalid:
      std::fprintf(env.err,
                   "register-server: --url must look like https://HOST[:PORT][/PATH] or "
                   "http://HOST[:PORT][/PATH] (no query, fragment or user-info)\n\n%s",
                   kUsage);
      return kExitUsage;
  }

  SecretsFile sf;
  FileMeta meta;
  std::string error;
  std::vector<std::string> warnings;
  const SecretsLoad load = load_secrets_file(o.secrets_path, sf, meta, error, warnings);
  if (load == SecretsLoad::failed) {
    std::fprintf(env.err, "register-server: %s\n", error.c_str());
    return kExitFailure;
  }
  for (const auto& w : warnings) std::fprintf(env.err, "register-server: warning: %s\n", w.c_str());
  if (sf.has_conflicting_names())
    std::fprintf(env.err,
                 "register-server: warning: %s has aloha_org_* and zulip_org_* entries that differ; "
                 "using aloha_org_*\n",
                 o.secrets_path.c_str());

  if (o.deactivate) return run_deactivate(o, base, sf, env);

  const bool have_id = !sf.org_id().empty(), have_key = !sf.org_key().empty();
  if (have_id != have_key) {
    std::fprintf(env.err,
                 "register-server: %s has an org %s but no org %s; fix the file (or remove both "
                 "entries to register as a new server)\n",
                 o.secrets_path.c_str(), have_id ? "id" : "key", have_id ? "key" : "id");
    return kExitFailure;
  }
  const bool fresh = !have_id;
  if (fresh && o.rotate_key) {
    std::fprintf(env.err,
                 "register-server: --rotate-key needs an existing registration, but %s holds no "
                 "org id and key\n",
                 o.secrets_path.c_str());
    return kExitUsage;
  }
  const std::string org_id = fresh ? env.new_org_id() : sf.org_id();
  const std::string org_key = fresh ? env.new_org_key() : sf.org_key();
  const std::string new_key = o.rotate_key ? env.new_org_key() : std::string();

  // Show what will be sent, never the key.
  std::fprintf(env.out,
               "Registration data for the push notification bouncer at %s:\n"
               "  aloha_org_id:  %s\n"
               "  hostname:      %s\n"
               "  contact_email: %s\n",
               base.c_str(), org_id.c_str(), printable(o.hostname, 400).c_str(),
               printable(o.email, 400).c_str());
  if (fresh)
    std::fprintf(env.out, "  (new org id and key; they will be stored in %s)\n",
                 o.secrets_path.c_str());
  if (o.rotate_key)
    std::fprintf(env.out,
                 "  (a new org key will be sent; it replaces the one in %s once the bouncer "
                 "accepts it)\n",
                 o.secrets_path.c_str());

  if (!o.agree_to_terms) {
    if (!env.stdin_is_tty()) {
      std::fprintf(env.err,
                   "register-server: registering requires accepting the terms of service of the "
                   "bouncer at %s. Standard input is not a terminal, so there is no prompt: run "
                   "again with --agree-to-terms-of-service to accept them.\n",
                   base.c_str());
      return kExitUsage;
    }
    std::fprintf(env.out,
                 "Do you agree to the terms of service of the push notification bouncer at %s? "
                 "[y/N] ",
                 base.c_str());
    std::fflush(env.out);
    std::string answer;
    const bool got = env.read_line(answer);
    const std::string a = trim_lower(answer);
    if (!got || (a != "y" && a != "yes")) {
      std::fprintf(env.err, "register-server: terms of service not accepted; nothing was sent\n");
      return kExitFailure;
    }
  }

  // First use: store the new id and key before sending them, so a lost answer (timeout) does not
  // lose a registration the bouncer may have made; the next run retries with the same id.
  if (fresh) {
    sf.set(org_id, org_key);
    if (!write_file_atomically(o.secrets_path, sf.render(), meta, error)) {
      std::fprintf(env.err, "register-server: cannot store the org id and key: %s; nothing sent\n",
                   error.c_str());
      return kExitFailure;
    }
    std::fprintf(env.out, "Stored the new org id and key in %s\n", o.secrets_path.c_str());
    // Later rewrites (key rotation) keep the mode and group the file now has.
    struct stat st {};
    if (::stat(o.secrets_path.c_str(), &st) == 0) {
      meta.existed = true;
      meta.mode = st.st_mode & 07777;
      meta.gid = st.st_gid;
    }
  }

  // Key rotation: the new file is written and fsync'ed before sending, and renamed into place
  // only after the bouncer accepted the key (200), so the stored key always matches the bouncer's
  // unless that final rename fails (then the temp file is kept and named).
  PendingFileWrite pending;
  if (o.rotate_key) {
    SecretsFile rotated = sf;
    rotated.set(org_id, new_key);
    if (!pending.prepare(o.secrets_path, rotated.render(), meta, error)) {
      std::fprintf(env.err, "register-server: cannot prepare the new secrets file: %s; nothing sent\n",
                   error.c_str());
      return kExitFailure;
    }
  }

  // api.md §3 server/register: form fields in this order; new_org_key only when rotating.
  std::vector<std::pair<std::string, std::string>> fields = {
      {"aloha_org_id", org_id}, {"aloha_org_key", org_key}, {"hostname", o.hostname},
      {"contact_email", o.email}};
  if (o.rotate_key) fields.emplace_back("new_org_key", new_key);
  const std::string url = base + "/api/v1/remotes/server/register";
  const HttpResult res = env.http("POST", url, common_headers(), form_urlencode(fields),
                                  kRequestTimeoutMs);
  const Reply reply = parse_reply(res.body);
  if (report_failure(env, res, reply, url, "the registration")) {
    if (o.rotate_key)
      std::fprintf(env.err, "register-server: the org key was not rotated; %s is unchanged\n",
                   o.secrets_path.c_str());
    return kExitFailure;
  }
  if (!reply.has_created) {
    std::fprintf(env.err,
                 "register-server: unexpected answer from the bouncer: success without "
                 "\"created\"\n");
    return kExitFailure;
  }

  if (o.rotate_key) {
    if (reply.created) {
      // api.md §3: new_org_key is ignored when creating, so the bouncer kept the old key.
      std::fprintf(env.out, "Registered (created)\n");
      std::fprintf(env.err,
                   "register-server: the bouncer did not know org id %s and created a new "
                   "registration with the current key; the key was NOT rotated\n",
                   org_id.c_str());
      return kExitFailure;
    }
    if (!pending.commit(error)) {
      pending.keep_temp();
      std::fprintf(env.err,
                   "register-server: the bouncer accepted the new org key, but it could not be "
                   "stored: %s. The new key is in %s: move that file to %s by hand, or this "
                   "server can no longer authenticate.\n",
                   error.c_str(), pending.temp_path().c_str(), pending.target_path().c_str());
      return kExitFailure;
    }
    std::fprintf(env.out, "Updated registration\nRotated the org key; the new key is stored in %s\n",
                 o.secrets_path.c_str());
    return kExitOk;
  }
  std::fprintf(env.out, reply.created ? "Registered (created)\n" : "Updated registration\n");
  return kExitOk;
}

int register_server_main(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  CliEnv env = default_cli_env();
  RegisterOptions unused;
  std::string ca_file;
  // Argument errors are reported by register_server_run(); here only --ca-file is taken.
  if (parse_args(args, unused, ca_file).empty() && !ca_file.empty()) {
    HttpOptions http_opts;
    http_opts.ca_file = ca_file;
    env.http = [http_opts](const std::string& method, const std::string& url,
                           const std::vector<http::Header>& headers, const std::string& body,
                           int timeout_ms) {
      return http_request(method, url, headers, body, timeout_ms, http_opts);
    };
  }
  return register_server_run(args, env);
}

}  // namespace aloha::cli
