#include "support/fixture.h"

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <random>
#include <stdexcept>

namespace aloha::test {

namespace {

int remove_entry(const char* path, const struct stat*, int, struct FTW*) {
  ::remove(path);
  return 0;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

std::mt19937_64& rng() {
  static std::mt19937_64 gen{std::random_device{}()};
  return gen;
}
std::mutex rng_mu;

}  // namespace

TempDir::TempDir() {
  char tmpl[] = "/tmp/aloha-test-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  if (!path_.empty()) ::nftw(path_.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

std::string remotes(const std::string& rel) { return "/api/v1/remotes/" + rel; }

std::string bouncer_binary() {
  if (const char* e = ::getenv("ALOHA_BOUNCER_BIN"); e != nullptr && *e != '\0') return e;
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "aloha-bouncer";
  std::string self(buf, static_cast<size_t>(n));
  std::string dir = self.substr(0, self.rfind('/'));   // build/tests
  return dir.substr(0, dir.rfind('/')) + "/aloha-bouncer";
}

std::string merge_ini(const std::string& base, const std::string& overrides) {
  struct Line {
    std::string text, section, key;
  };
  std::vector<Line> lines;
  std::string section;
  size_t start = 0;
  while (start < base.size()) {
    size_t nl = base.find('\n', start);
    std::string line = base.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    start = nl == std::string::npos ? base.size() : nl + 1;
    std::string t = trim(line);
    Line l{line, section, ""};
    if (!t.empty() && t.front() == '[') {
      section = t.substr(1, t.find(']') - 1);
      l.section = section;
      l.key = "[";
    } else if (!t.empty() && t.front() != '#' && t.front() != ';' && t.find('=') != std::string::npos) {
      l.key = trim(t.substr(0, t.find('=')));
    }
    lines.push_back(l);
  }
  section.clear();
  start = 0;
  while (start < overrides.size()) {
    size_t nl = overrides.find('\n', start);
    std::string line =
        overrides.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    start = nl == std::string::npos ? overrides.size() : nl + 1;
    std::string t = trim(line);
    if (t.empty() || t.front() == '#' || t.front() == ';') continue;
    if (t.front() == '[') {
      section = t.substr(1, t.find(']') - 1);
      continue;
    }
    size_t eq = t.find('=');
    if (eq == std::string::npos) continue;
    std::string key = trim(t.substr(0, eq));
    std::string text = key + " = " + trim(t.substr(eq + 1));
    bool done = false;
    for (auto& l : lines)
      if (l.section == section && l.key == key) {
        l.text = text;
        done = true;
      }
    if (done) continue;
    // Append after the last line of the section, creating the section when absent.
    size_t insert_at = lines.size();
    bool found = false;
    for (size_t i = 0; i < lines.size(); ++i)
      if (lines[i].section == section && (lines[i].key == "[" || found)) {
        found = true;
        if (!trim(lines[i].text).empty()) insert_at = i + 1;
      }
    if (!found) {
      lines.push_back({"", "", ""});
      lines.push_back({"[" + section + "]", section, "["});
      insert_at = lines.size();
    }
    lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(insert_at), Line{text, section, key});
  }
  std::string out;
  for (const auto& l : lines) out += l.text + "\n";
  return out;
}

std::string BouncerProcess::base_config(const std::string& db_path) {
  return "# written by the integration-test fixture\n"
         "[server]\n"
         "listen = 127.0.0.1:0\n"
         "database = " + db_path + "\n"
         "log_level = info\n"
         "\n"
         "[limits]\n"
         "requests_per_minute = 1000\n"
         "max_body_bytes = 1048576\n"
         "header_timeout = 10\n"
         "idle_timeout = 60\n"
         "max_connections = 256\n";
}

BouncerProcess::BouncerProcess(const std::string& config_overrides, TempDir* dir) {
  if (dir == nullptr) {
    own_dir_ = std::make_unique<TempDir>();
    dir = own_dir_.get();
  }
  dir_ = dir;
  config_path_ = dir_->file("aloha-bouncer.conf");
  db_path_ = dir_->file("bouncer.db");
  std::string text = merge_ini(base_config(db_path_), config_overrides);
  FILE* f = std::fopen(config_path_.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("cannot write " + config_path_);
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
  start();
}

BouncerProcess::~BouncerProcess() {
  if (proc_ && proc_->running()) {
    proc_->signal(SIGTERM);
    if (proc_->wait(5000).timed_out) proc_->kill9();
  }
  proc_.reset();
}

void BouncerProcess::start() {
  if (proc_) {
    old_logs_ += proc_->stderr_text() + proc_->stdout_text();
    proc_.reset();
  }
  ProcessOptions opts;
  opts.argv = {bouncer_binary(), "serve", "--config", config_path_};
  proc_ = std::make_unique<Process>(std::move(opts));
  static constexpr std::string_view marker = "listening on 127.0.0.1:";
  uint16_t port = 0;
  auto found = [&](std::string_view err) {
    size_t at = err.find(marker);
    if (at == std::string_view::npos) return false;
    size_t p = at + marker.size(), e = p;
    while (e < err.size() && err[e] >= '0' && err[e] <= '9') ++e;
    if (e == p || e == err.size()) return false;  // the digits may still be arriving
    unsigned long v = std::stoul(std::string(err.substr(p, e - p)));
    if (v == 0 || v > 65535) return false;
    port = static_cast<uint16_t>(v);
    return true;
  };
  if (!proc_->wait_stderr(found, 10000)) {
    ExitStatus st = proc_->running() ? proc_->kill9() : proc_->wait(1000);
    throw std::runtime_error("aloha-bouncer did not report `listening on 127.0.0.1:PORT` (" +
                             st.describe() + "); stderr:\n" + proc_->stderr_text());
  }
  port_ = port;
}

std::string BouncerProcess::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

HttpResult BouncerProcess::request(const std::string& method, const std::string& path,
                                   const std::vector<http::Header>& headers,
                                   const std::string& body, int timeout_ms) {
  return cli::http_request(method, url(path), headers, body, timeout_ms);
}

HttpResult BouncerProcess::post_form(const std::string& path, const Fields& fields,
                                     const std::optional<BasicAuth>& auth) {
  std::vector<http::Header> hs{{"Content-Type", "application/x-www-form-urlencoded"},
                               {"User-Agent", "AlohaServer/test"}};
  if (auth) hs.push_back({"Authorization", cli::basic_auth(auth->user, auth->password)});
  return request("POST", path, hs, form_encode(fields));
}

HttpResult BouncerProcess::get(const std::string& path, const std::optional<BasicAuth>& auth,
                               const std::vector<http::Header>& headers) {
  std::vector<http::Header> hs = headers;
  if (auth) hs.push_back({"Authorization", cli::basic_auth(auth->user, auth->password)});
  return request("GET", path, hs);
}

std::string BouncerProcess::log_text() const {
  std::string s = old_logs_;
  if (proc_) s += proc_->stderr_text() + proc_->stdout_text();
  return s;
}

ExitStatus BouncerProcess::stop(int timeout_ms) {
  if (!proc_) return {};
  if (!proc_->running()) return proc_->wait(0);
  proc_->signal(SIGTERM);
  ExitStatus st = proc_->wait(timeout_ms);
  if (st.timed_out) {
    proc_->kill9();
    return st;  // reported as timed out: the daemon ignored SIGTERM
  }
  return st;
}

ExitStatus BouncerProcess::kill9() {
  if (!proc_) return {};
  return proc_->kill9();
}

void BouncerProcess::restart() {
  if (proc_ && proc_->running()) stop();
  start();
}

std::string random_uuid4() {
  std::lock_guard<std::mutex> lock(rng_mu);
  uint64_t a = rng()(), b = rng()();
  a = (a & 0xFFFFFFFFFFFF0FFFull) | 0x0000000000004000ull;  // version 4
  b = (b & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;  // variant 10xx
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xFFFF), static_cast<unsigned>(a & 0xFFFF),
                static_cast<unsigned>(b >> 48),
                static_cast<unsigned long long>(b & 0xFFFFFFFFFFFFull));
  return buf;
}

std::string random_key(size_t len) {
  static const char* alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::lock_guard<std::mutex> lock(rng_mu);
  std::string k;
  for (size_t i = 0; i < len; ++i) k += alnum[rng()() % 62];
  return k;
}

ServerCreds register_server(BouncerProcess& b, const std::string& hostname,
                            const std::string& email) {
  ServerCreds c{random_uuid4(), random_key()};
  HttpResult r = b.post_form(remotes("server/register"), {{"aloha_org_id", c.uuid},
                                                          {"aloha_org_key", c.key},
                                                          {"hostname", hostname},
                                                          {"contact_email", email}});
  if (r.status != 200)
    throw std::runtime_error("server/register " + hostname + " failed: " +
                             std::to_string(r.status) + " " + r.error + " " + r.body);
  return c;
}

}  // namespace aloha::test
