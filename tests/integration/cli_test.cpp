// `register-server` command: the secrets file (parsing, rewriting, atomic writes), argument and
// URL checks, the command driven through a fake transport (no sockets), and the real binary
// against a real bouncer on an ephemeral port.
#include <dirent.h>
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "cli/register_server.h"
#include "cli/secrets.h"
#include "support/fixture.h"

using namespace aloha;
using namespace aloha::cli;

namespace {

std::string read_text(const std::string& path) {
  std::string out;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

void write_text(const std::string& path, const std::string& text, mode_t mode = 0600) {
  FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
  REQUIRE(::chmod(path.c_str(), mode) == 0);
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// Number of entries in a directory other than . and .. (to see that no temp file is left over).
size_t dir_entries(const std::string& dir) {
  size_t n = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") ++n;
    }
    ::closedir(d);
  }
  return n;
}

SecretsFile parse_ok(const std::string& text) {
  SecretsFile f;
  std::string err;
  REQUIRE_MESSAGE(f.parse(text, err), err);
  return f;
}

// Decodes an application/x-www-form-urlencoded body (the test's own decoder, to check ours).
std::map<std::string, std::string> decode_form(const std::string& body) {
  auto unescape = [](const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '+') {
        out += ' ';
      } else if (s[i] == '%' && i + 2 < s.size()) {
        out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
        i += 2;
      } else {
        out += s[i];
      }
    }
    return out;
  };
  std::map<std::string, std::string> m;
  size_t pos = 0;
  while (pos <= body.size() && !body.empty()) {
    size_t amp = body.find('&', pos);
    std::string part = body.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    size_t eq = part.find('=');
    m[unescape(part.substr(0, eq))] = eq == std::string::npos ? "" : unescape(part.substr(eq + 1));
    if (amp == std::string::npos) break;
    pos = amp + 1;
  }
  return m;
}

// Captures what the command writes to a FILE*.
struct Capture {
  FILE* f = std::tmpfile();
  ~Capture() {
    if (f) std::fclose(f);
  }
  std::string text() {
    std::fflush(f);
    std::string out;
    std::rewind(f);
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    std::fseek(f, 0, SEEK_END);
    return out;
  }
};

struct SentRequest {
  std::string method, url, body;
  std::vector<http::Header> headers;
  std::string header(const std::string& name) const {
    for (const auto& h : headers)
      if (h.name == name) return h.value;
    return "";
  }
};

// A scripted bouncer: records requests and answers from a queue (no sockets).
struct FakeWorld {
  Capture out, err;
  bool tty = false;
  std::deque<std::string> answers;   // lines typed at the prompt
  std::deque<HttpResult> replies;
  std::vector<SentRequest> sent;
  int ids = 0, keys = 0;

  CliEnv env() {
    CliEnv e;
    e.out = out.f;
    e.err = err.f;
    e.stdin_is_tty = [this] { return tty; };
    e.read_line = [this](std::string& line) {
      if (answers.empty()) return false;
      line = answers.front();
      answers.pop_front();
      return true;
    };
    e.http = [this](const std::string& method, const std::string& url,
                    const std::vector<http::Header>& headers, const std::string& body, int) {
      sent.push_back({method, url, body, headers});
      if (replies.empty()) return HttpResult{0, {}, "", "connection refused"};
      HttpResult r = replies.front();
      replies.pop_front();
      return r;
    };
    e.new_org_id = [this] {
      char buf[64];
      std::snprintf(buf, sizeof buf, "0f0e0d0c-0b0a-4908-8706-%012d", ++ids);
      return std::string(buf);
    };
    e.new_org_key = [this] {
      ++keys;
      return std::string(63, static_cast<char>('a' + keys)) + std::to_string(keys % 10);
    };
    return e;
  }
};

HttpResult reply(int status, const std::string& body) { return HttpResult{status, {}, body, ""}; }
const char kCreated[] = R"({"result":"success","msg":"","created":true})";
const char kUpdated[] = R"({"result":"success","msg":"","created":false})";

std::vector<std::string> reg_args(const std::string& secrets, std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {"--url", "http://bouncer.test:8080/", "--hostname", "chat.aloha.org",
                                "--email", "admin@aloha.org", "--secrets", secrets};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

}  // namespace

TEST_SUITE("cli") {

// ---------------------------------------------------------------- secrets file

TEST_CASE("secrets: reads aloha_org_id/aloha_org_key from [secrets]") {
  SecretsFile f = parse_ok("[secrets]\naloha_org_id = abc\naloha_org_key= k1 \n");
  CHECK(f.org_id() == "abc");
  CHECK(f.org_key() == "k1");
  CHECK_FALSE(f.has_conflicting_names());
}

TEST_CASE("secrets: reads Zulip's zulip_org_id/zulip_org_key, ':' separators and any key case") {
  SecretsFile f = parse_ok(
      "# zulip-secrets.conf\n[secrets]\nsecret_key = xyz\nZULIP_ORG_ID: id-z\nzulip_org_key = key-z\n"
      "rabbitmq_password = p\n  continued\n");
  CHECK(f.org_id() == "id-z");
  CHECK(f.org_key() == "key-z");
}

TEST_CASE("secrets: aloha_* wins over differing zulip_* and the conflict is reported") {
  SecretsFile f =
      parse_ok("[secrets]\nzulip_org_id = z\naloha_org_id = a\nzulip_org_key = k\naloha_org_key = k\n");
  CHECK(f.org_id() == "a");
  CHECK(f.org_key() == "k");
  CHECK(f.has_conflicting_names());
}

TEST_CASE("secrets: org entries outside [secrets] are ignored") {
  SecretsFile f = parse_ok("[other]\naloha_org_id = x\naloha_org_key = y\n");
  CHECK(f.org_id().empty());
  CHECK(f.org_key().empty());
}

TEST_CASE("secrets: malformed files are refused with the line number") {
  SecretsFile f;
  std::string err;
  CHECK_FALSE(f.parse("[secrets]\naloha_org_id = a\njunk line\n", err));
  CHECK(err.find("line 3") != std::string::npos);
  CHECK_FALSE(f.parse("aloha_org_id = a\n", err));
  CHECK(err.find("line 1") != std::string::npos);
  CHECK_FALSE(f.parse("[secrets\n", err));
  CHECK_FALSE(f.parse("[secrets]\naloha_org_key = a\naloha_org_key = b\n", err));
  CHECK(err.find("duplicate") != std::string::npos);
  CHECK_FALSE(f.parse("[secrets]\naloha_org_key = a\n  b\n", err));
  CHECK(err.find("line 3") != std::string::npos);
  CHECK_FALSE(f.parse("[secrets]\n = value\n", err));
}

TEST_CASE("secrets: set() keeps other lines and sections and updates both spellings") {
  const std::string text =
      "# comment\n[secrets]\nsecret_key = s\nzulip_org_id = old-id\nzulip_org_key = old-key\n\n"
      "[other]\nx = 1\n";
  SecretsFile f = parse_ok(text);
  f.set("new-id", "new-key");
  const std::string out = f.render();
  CHECK(out.find("# comment\n") == 0);
  CHECK(out.find("secret_key = s\n") != std::string::npos);
  CHECK(out.find("zulip_org_id = new-id\n") != std::string::npos);
  CHECK(out.find("zulip_org_key = new-key\n") != std::string::npos);
  CHECK(out.find("old-") == std::string::npos);
  // Our names are added inside [secrets], before [other].
  const size_t added = out.find("aloha_org_id = new-id\naloha_org_key = new-key\n");
  REQUIRE(added != std::string::npos);
  CHECK(added < out.find("[other]"));
  CHECK(out.find("[other]\nx = 1\n") != std::string::npos);
  SecretsFile again = parse_ok(out);
  CHECK(again.org_id() == "new-id");
  CHECK(again.org_key() == "new-key");
  CHECK_FALSE(again.has_conflicting_names());
}

TEST_CASE("secrets: set() on an empty file or one without [secrets] adds the section") {
  SecretsFile empty = parse_ok("");
  empty.set("i", "k");
  CHECK(empty.render() == "[secrets]\naloha_org_id = i\naloha_org_key = k\n");
  SecretsFile other = parse_ok("[misc]\na = b\n");
  other.set("i", "k");
  CHECK(other.render() == "[misc]\na = b\n\n[secrets]\naloha_org_id = i\naloha_org_key = k\n");
}

TEST_CASE("secrets: a new file is written with mode 0600 whatever the umask") {
  test::TempDir dir;
  const std::string path = dir.file("s.conf");
  const mode_t old = ::umask(0);
  std::string err;
  const bool ok = write_file_atomically(path, "[secrets]\n", FileMeta{}, err);
  ::umask(old);
  REQUIRE_MESSAGE(ok, err);
  CHECK(mode_of(path) == 0600);
  CHECK(read_text(path) == "[secrets]\n");
  CHECK(dir_entries(dir.path()) == 1);  // no temp file left
}

TEST_CASE("secrets: rewriting keeps an existing file's group bits but drops others' bits") {
  test::TempDir dir;
  const std::string path = dir.file("s.conf");
  SecretsFile f;
  FileMeta meta;
  std::string err;
  std::vector<std::string> warnings;
  write_text(path, "[secrets]\n", 0644);
  REQUIRE(load_secrets_file(path, f, meta, err, warnings) == SecretsLoad::loaded);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("0644") != std::string::npos);
  REQUIRE(write_file_atomically(path, "new\n", meta, err));
  CHECK(mode_of(path) == 0640);
  CHECK(read_text(path) == "new\n");
}

TEST_CASE("secrets: a symlinked secrets file is replaced at its target, the link kept") {
  test::TempDir dir;
  const std::string target = dir.file("real.conf"), link = dir.file("link.conf");
  write_text(target, "[secrets]\n");
  REQUIRE(::symlink(target.c_str(), link.c_str()) == 0);
  std::string err;
  FileMeta meta;
  meta.existed = true;
  REQUIRE(write_file_atomically(link, "x = 1\n", meta, err));
  struct stat st {};
  REQUIRE(::lstat(link.c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
  CHECK(read_text(target) == "x = 1\n");
}

TEST_CASE("secrets: an uncommitted pending write leaves the file unchanged and no temp file") {
  test::TempDir dir;
  const std::string path = dir.file("s.conf");
  write_text(path, "before\n");
  {
    PendingFileWrite w;
    std::string err;
    REQUIRE(w.prepare(path, "after\n", FileMeta{}, err));
    CHECK(exists(w.temp_path()));
    CHECK(read_text(w.temp_path()) == "after\n");
    CHECK(mode_of(w.temp_path()) == 0600);
  }
  CHECK(read_text(path) == "before\n");
  CHECK(dir_entries(dir.path()) == 1);
}

TEST_CASE("secrets: loading reports a missing file, a directory and an unparsable file") {
  test::TempDir dir;
  SecretsFile f;
  FileMeta meta;
  std::string err;
  std::vector<std::string> warnings;
  CHECK(load_secrets_file(dir.file("none"), f, meta, err, warnings) == SecretsLoad::not_found);
  CHECK(load_secrets_file(dir.path(), f, meta, err, warnings) == SecretsLoad::failed);
  write_text(dir.file("bad"), "no section = here\n");
  CHECK(load_secrets_file(dir.file("bad"), f, meta, err, warnings) == SecretsLoad::failed);
  CHECK(err.find("line 1") != std::string::npos);
  CHECK(warnings.empty());
}

// ---------------------------------------------------------------- arguments, URL, encoding

TEST_CASE("register-server args: required options, --opt=value and flags") {
  RegisterOptions o;
  CHECK(parse_register_args({"--url=http://b", "--secrets", "s", "--hostname", "h", "--email", "e",
                             "--rotate-key", "--agree-to-terms-of-service"},
                            o) == "");
  CHECK(o.url == "http://b");
  CHECK(o.secrets_path == "s");
  CHECK(o.hostname == "h");
  CHECK(o.email == "e");
  CHECK(o.rotate_key);
  CHECK(o.agree_to_terms);
  CHECK_FALSE(o.deactivate);

  CHECK(parse_register_args({"--url", "http://b", "--secrets", "s", "--deactivate"}, o) == "");
  CHECK(o.deactivate);

  CHECK(parse_register_args({"--secrets", "s", "--hostname", "h", "--email", "e"}, o) ==
        "--url is required");
  CHECK(parse_register_args({"--url", "u", "--secrets", "s", "--email", "e"}, o) ==
        "--hostname is required");
  CHECK(parse_register_args({"--url", "u", "--secrets", "s", "--hostname", "h"}, o) ==
        "--email is required");
  CHECK(parse_register_args({"--url", "u", "--hostname", "h", "--email", "e"}, o) ==
        "--secrets is required");
  CHECK(parse_register_args({"--url"}, o) == "--url needs a value");
  CHECK(parse_register_args({"--url", "a", "--url", "b"}, o) == "--url given twice");
  CHECK(parse_register_args({"--bogus"}, o) == "unknown option --bogus");
  CHECK(parse_register_args({"stray"}, o) == "unexpected argument stray");
  CHECK(parse_register_args({"--rotate-key=yes"}, o) == "--rotate-key takes no value");
  CHECK(parse_register_args({"--url", "u", "--secrets", "s", "--deactivate", "--rotate-key"}, o) ==
        "--rotate-key and --deactivate cannot be combined");
  CHECK(parse_register_args({"--bogus", "--help"}, o) == "");
  CHECK(o.help);
}

TEST_CASE("register-server url: http and https accepted without trailing slash, junk refused") {
  std::string base;
  CHECK(check_bouncer_url("http://b.example:8080/", base) == UrlCheck::ok);
  CHECK(base == "http://b.example:8080");
  CHECK(check_bouncer_url("HTTP://[::1]:80/prefix//", base) == UrlCheck::ok);
  CHECK(base == "HTTP://[::1]:80/prefix");
  CHECK(check_bouncer_url("https://b.example", base) == UrlCheck::ok);
  CHECK(base == "https://b.example");
  CHECK(check_bouncer_url("HTTPS://b.example/", base) == UrlCheck::ok);
  CHECK(check_bouncer_url("ftp://b.example", base) == UrlCheck::invalid);
  CHECK(check_bouncer_url("http://", base) == UrlCheck::invalid);
  CHECK(check_bouncer_url("http://u:p@b.example", base) == UrlCheck::invalid);
  CHECK(check_bouncer_url("http://b.example/?x=1", base) == UrlCheck::invalid);
  CHECK(check_bouncer_url("http://b.example /", base) == UrlCheck::invalid);
}

TEST_CASE("register-server form: fields are percent-encoded and round-trip") {
  const std::string body =
      form_urlencode({{"hostname", "a b"}, {"contact_email", "x+y@z.org"}, {"k", "&=%\xc3\xa9~._-"}});
  CHECK(body == "hostname=a+b&contact_email=x%2By%40z.org&k=%26%3D%25%C3%A9~._-");
  auto m = decode_form(body);
  CHECK(m["hostname"] == "a b");
  CHECK(m["contact_email"] == "x+y@z.org");
  CHECK(m["k"] == "&=%\xc3\xa9~._-");
}

TEST_CASE("register-server output: bouncer text loses control characters and is bounded") {
  CHECK(printable("ok\x1b[31mred\n", 100) == "ok?[31mred?");
  CHECK(printable("a\xc2\x9b" "b\xc3\xa9", 100) == "a?b\xc3\xa9");
  CHECK(printable("abcdef", 3) == "abc...");
}

// ---------------------------------------------------------------- the command, fake transport

TEST_CASE("register-server: first run stores a new id and key (0600), sends them, never prints the key") {
  test::TempDir dir;
  const std::string path = dir.file("secrets.conf");
  FakeWorld w;
  w.replies.push_back(reply(200, kCreated));
  CHECK(register_server_run(reg_args(path, {"--agree-to-terms-of-service"}), w.env()) == 0);

  REQUIRE(w.sent.size() == 1);
  const auto& req = w.sent[0];
  CHECK(req.method == "POST");
  CHECK(req.url == "http://bouncer.test:8080/api/v1/remotes/server/register");
  CHECK(req.header("content-type") == "application/x-www-form-urlencoded");
  CHECK(req.header("user-agent").rfind("AlohaServer/", 0) == 0);
  CHECK(req.header("authorization").empty());
  auto form = decode_form(req.body);
  CHECK(form.size() == 4);
  CHECK(form["aloha_org_id"] == "0f0e0d0c-0b0a-4908-8706-000000000001");
  const std::string key = form["aloha_org_key"];
  CHECK(key.size() == 64);
  CHECK(form["hostname"] == "chat.aloha.org");
  CHECK(form["contact_email"] == "admin@aloha.org");
  CHECK(req.body.find("aloha_org_id=") == 0);  // api.md §3 order

  CHECK(mode_of(path) == 0600);
  SecretsFile f = parse_ok(read_text(path));
  CHECK(f.org_id() == form["aloha_org_id"]);
  CHECK(f.org_key() == key);

  const std::string out = w.out.text(), err = w.err.text();
  CHECK(out.find("Registered (created)") != std::string::npos);
  CHECK(out.find(form["aloha_org_id"]) != std::string::npos);
  CHECK(out.find("chat.aloha.org") != std::string::npos);
  CHECK(out.find("admin@aloha.org") != std::string::npos);
  CHECK(out.find(key) == std::string::npos);
  CHECK(err.find(key) == std::string::npos);
}

TEST_CASE("register-server: a second run reuses the stored id and key and reports the update") {
  test::TempDir dir;
  const std::string path = dir.file("secrets.conf");
  write_text(path, "[secrets]\nzulip_org_id = 11111111-2222-4333-8444-555555555555\n"
                   "zulip_org_key = " + std::string(64, 'K') + "\n");
  FakeWorld w;
  w.replies.push_back(reply(200, kUpdated));
  CHECK(register_server_run(reg_args(path, {"--agree-to-terms-of-service"}), w.env()) == 0);
  REQUIRE(w.sent.size() == 1);
  auto form = decode_form(w.sent[0].body);
  CHECK(form["aloha_org_id"] == "11111111-2222-4333-8444-555555555555");
  CHECK(form["aloha_org_key"] == std::string(64, 'K'));
  CHECK(w.ids == 0);
  CHECK(w.keys == 0);
  CHECK(w.out.text().find("Updated registration") != std::string::npos);
  // The file was not rewritten (a Zulip file stays as it was).
  CHECK(read_text(path).find("aloha_org") == std::string::npos);
}

TEST_CASE("register-server: without the flag and with stdin not a terminal it refuses (exit 2)") {
  test::TempDir dir;
  const std::string path = dir.file("secrets.conf");
  FakeWorld w;
  w.tty = false;
  CHECK(register_server_run(reg_args(path), w.env()) == 2);
  CHECK(w.sent.empty());
  CHECK_FALSE(exists(path));
  CHECK(w.err.text().find("--agree-to-terms-of-service") != std::string::npos);
}

TEST_CASE("register-server: on a terminal it asks; 'yes' registers, anything else sends nothing") {
  test::TempDir dir;
  const std::string path = dir.file("secrets.conf");
  {
    FakeWorld w;
    w.tty = true;
    w.answers.push_back("n");
    CHECK(register_server_run(reg_args(path), w.env()) == 1);
    CHECK(w.sent.empty());
    CHECK(w.out.text().find("terms of service") != std::string::npos);
  }
  {
    FakeWorld w;
    w.tty = true;  // end of input at the prompt
    CHECK(register_server_run(reg_args(path), w.env()) == 1);
    CHECK(w.sent.empty());
  }
  {
    FakeWorld w;
    w.tty = true;
    w.answers.push_back(" YES ");
    w.replies.push_back(reply(200, kCreated));
    CHECK(register_server_run(reg_args(path), w.env()) == 0);
    CHECK(w.sent.size() == 1);
  }
}

TEST_CASE("register-server: --rotate-key stores the new key only after the bouncer accepted it") {
  test::TempDir dir;
  const std::string path = dir.file("secrets.conf");
  const std::string id = "11111111-2222-4333-8444-555555555555";
  const std::string old_key = std::string(64, 'O');
  const std::string original = "[secrets]\naloha_org_id = " + id + "\naloha_org_key = " + old_key + "\n";
  write_text(path, original);

  // Refused: the file is unchanged and no temp file is left.
  {
    FakeWorld w;
    w.replies.push_back(reply(400, R"({"result":"error","msg":"nope","code":"BAD_REQUEST"})"));
    CHECK(register_server_run(reg_args(path, {"--agree-to-terms-of-service", "--rotate-key"}),
                              w.env()) == 1);
    REQUIRE(w.sent.size() == 1);
    CHECK(decode_form(w.sent[0].body).count("new_org_key") == 1);
    CHECK(read_text(path) == original);
    CHECK(dir_entries(dir.path()) == 1);
    CHECK(w.err.text().find("not rotated") != std::string::npos);
  }
  // Network failure: same.
  {
    FakeWorld w;
    CHECK(register_server_run(reg_args(path, {"--agree-to-terms-of-service", "--rotate-key"}),
                              w.env()) == 1);
    CHECK(read_text(path) == original);
    CHECK(dir_entries(dir.path()) == 1);
  }
  // Accepted: the key sent as new_org_key is now in the file; the old key was sent as the key.
  {
    FakeWorld w;
    w.replies.push_back(reply(200, kUpdated));
    CHECK(register_server_run(reg_args(path, {"--agree-to-terms-of-service", "--rotate-key"}),
                              w.env()) == 0);
    REQUIRE(w.sent.size() == 1);
    auto form = decode_form(w.sent[0].body);
    CHECK(form["aloha_org_key"] == old_key);
    const std::string new_key = form["new_org_key"];
    CHECK(new_key.size() == 64);
    CHECK(new_key != old_key);
    SecretsFile f = parse_ok(read_text(path));
    CHECK(f.org_id() == id);
    CHECK(f.org_key() == new_key);
    CHECK(mode_of(path) == 0600);
    CHECK(dir_entries(dir.path()) == 1);
    CHECK(w.out.text().find(new_key) == std::string::npos);
  }
}

TEST_CASE("register-server: --rotate-key answered 'created' keeps the old key (bouncer ignored it)") {
  test::TempDir dir;
  const std::string path = dir.file("secrets.conf");
  const std::string original = "[secrets]\naloha_org_id = 11111111-2222-4333-8444-555555555555\n"
                               "aloha_org_key = " + std::string(64, 'O') + "\n";
  write_text(path, original);
  FakeWorld w;
  w.replies.push_back(reply(200, kCreated));
  CHECK(register_server_run(reg_args(path, {"--agree-to-terms-of-service", "--rotate-key"}),
                            w.env()) == 1);
  CHECK(read_text(path) == original);
  CHECK(w.err.text().find("NOT rotated") != std::string::npos);
}

TEST_CASE("register-server: --rotate-key without stored secrets is a usage error") {
  test::TempDir dir;
  FakeWorld w;
  CHECK(register_server_run(reg_args(dir.file("none"), {"--agree-to-terms-of-service", "--rotate-key"}),
                            w.env()) == 2);
  CHECK(w.sent.empty());
  CHECK_FALSE(exists(dir.file("none")));
}

TEST_CASE("register-server: bouncer errors print msg and code and exit 1") {
  test::TempDir dir;
  FakeWorld w;
  w.replies.push_back(reply(
      401, R"({"result":"error","msg":"The mobile push notification service registration for your server has been deactivated","code":"REALM_DEACTIVATED"})"));
  CHECK(register_server_run(reg_args(dir.file("s"), {"--agree-to-terms-of-service"}), w.env()) == 1);
  const std::string err = w.err.text();
  CHECK(err.find("REALM_DEACTIVATED") != std::string::npos);
  CHECK(err.find("has been deactivated") != std::string::npos);
  CHECK(err.find("HTTP 401") != std::string::npos);
  CHECK(w.out.text().find("Registered") == std::string::npos);
}

TEST_CASE("register-server: a non-JSON or non-success answer is a failure") {
  test::TempDir dir;
  {
    FakeWorld w;
    w.replies.push_back(reply(502, "<html>Bad Gateway</html>"));
    CHECK(register_server_run(reg_args(dir.file("s"), {"--agree-to-terms-of-service"}), w.env()) == 1);
    CHECK(w.err.text().find("HTTP 502") != std::string::npos);
  }
  {
    FakeWorld w;
    w.replies.push_back(reply(200, R"({"result":"error","msg":"odd"})"));
    CHECK(register_server_run(reg_args(dir.file("s"), {"--agree-to-terms-of-service"}), w.env()) == 1);
  }
  {
    FakeWorld w;
    w.replies.push_back(reply(200, R"({"result":"success","msg":""})"));
    CHECK(register_server_run(reg_args(dir.file("s"), {"--agree-to-terms-of-service"}), w.env()) == 1);
  }
}

TEST_CASE("register-server: a network error exits 1 with a clear message") {
  test::TempDir dir;
  FakeWorld w;
  CHECK(register_server_run(reg_args(dir.file("s"), {"--agree-to-terms-of-service"}), w.env()) == 1);
  CHECK(w.err.text().find("could not reach the bouncer") != std::string::npos);
  CHECK(w.err.text().find("connection refused") != std::string::npos);
}

TEST_CASE("register-server: bad usage exits 2 before anything happens") {
  test::TempDir dir;
  {
    FakeWorld w;
    CHECK(register_server_run({"--url", "http://b"}, w.env()) == 2);
    CHECK(w.err.text().find("usage:") != std::string::npos);
  }
  {
    FakeWorld w;
    CHECK(register_server_run({"--help"}, w.env()) == 0);
    CHECK(w.out.text().find("usage:") != std::string::npos);
  }
  CHECK_FALSE(exists(dir.file("s")));
}

TEST_CASE("register-server: half a secret (id without key) is refused, nothing sent") {
  test::TempDir dir;
  const std::string path = dir.file("s");
  write_text(path, "[secrets]\naloha_org_id = 11111111-2222-4333-8444-555555555555\n");
  FakeWorld w;
  CHECK(register_server_run(reg_args(path, {"--agree-to-terms-of-service"}), w.env()) == 1);
  CHECK(w.sent.empty());
}

TEST_CASE("register-server: --deactivate POSTs server/deactivate with Basic id:key") {
  test::TempDir dir;
  const std::string path = dir.file("s");
  const std::string id = "11111111-2222-4333-8444-555555555555", key = std::string(64, 'Q');
  write_text(path, "[secrets]\naloha_org_id = " + id + "\naloha_org_key = " + key + "\n");
  FakeWorld w;
  w.replies.push_back(reply(200, R"({"result":"success","msg":""})"));
  CHECK(register_server_run({"--url", "http://b:1", "--secrets", path, "--deactivate"}, w.env()) == 0);
  REQUIRE(w.sent.size() == 1);
  CHECK(w.sent[0].url == "http://b:1/api/v1/remotes/server/deactivate");
  CHECK(w.sent[0].header("authorization") == basic_auth(id, key));
  CHECK(w.sent[0].body.empty());
  CHECK(w.out.text().find("Deactivated") != std::string::npos);

  FakeWorld none;
  CHECK(register_server_run({"--url", "http://b:1", "--secrets", dir.file("x"), "--deactivate"},
                            none.env()) == 1);
  CHECK(none.sent.empty());
}

// ---------------------------------------------------------------- the real binary and bouncer

namespace {

struct CliRun {
  test::ExitStatus status;
  std::string out, err;
};

// Runs `aloha-bouncer register-server ARGS` with stdin from /dev/null (test::Process does that).
CliRun run_cli(const std::vector<std::string>& args) {
  test::ProcessOptions po;
  po.argv = {test::bouncer_binary(), "register-server"};
  po.argv.insert(po.argv.end(), args.begin(), args.end());
  test::Process p(po);
  CliRun r;
  r.status = p.wait(30000);
  r.out = p.stdout_text();
  r.err = p.stderr_text();
  return r;
}

std::vector<std::string> real_args(const test::BouncerProcess& b, const std::string& secrets,
                                   const std::string& hostname,
                                   const std::string& email = "admin@aloha-test.org") {
  return {"--url", b.url(""), "--hostname", hostname, "--email", email, "--secrets", secrets};
}

test::HttpResult unregister_all(test::BouncerProcess& b, const std::string& id, const std::string& key) {
  return b.post_form(test::remotes("push/unregister/all"), {{"user_id", "1"}},
                     test::BasicAuth{id, key});
}

}  // namespace

TEST_CASE("register-server binary: create, update, rotate (old key refused, new accepted)") {
  test::BouncerProcess b;
  test::TempDir dir;
  const std::string path = dir.file("aloha-secrets.conf");

  CliRun first = run_cli([&] {
    auto a = real_args(b, path, "chat.aloha-test.org");
    a.push_back("--agree-to-terms-of-service");
    return a;
  }());
  INFO("stdout: ", first.out, "\nstderr: ", first.err);
  REQUIRE(first.status.ok());
  CHECK(first.out.find("created") != std::string::npos);
  CHECK(mode_of(path) == 0600);
  SecretsFile f1 = parse_ok(read_text(path));
  REQUIRE(f1.org_id().size() == 36);
  REQUIRE(f1.org_key().size() == 64);
  CHECK(first.out.find(f1.org_key()) == std::string::npos);
  CHECK(first.err.find(f1.org_key()) == std::string::npos);
  CHECK(unregister_all(b, f1.org_id(), f1.org_key()).status == 200);

  CliRun second = run_cli([&] {
    auto a = real_args(b, path, "chat.aloha-test.org", "other@aloha-test.org");
    a.push_back("--agree-to-terms-of-service");
    return a;
  }());
  INFO("stdout: ", second.out, "\nstderr: ", second.err);
  REQUIRE(second.status.ok());
  CHECK(second.out.find("Updated registration") != std::string::npos);
  CHECK(second.out.find("created") == std::string::npos);
  SecretsFile f2 = parse_ok(read_text(path));
  CHECK(f2.org_id() == f1.org_id());
  CHECK(f2.org_key() == f1.org_key());

  CliRun rotate = run_cli([&] {
    auto a = real_args(b, path, "chat.aloha-test.org");
    a.push_back("--agree-to-terms-of-service");
    a.push_back("--rotate-key");
    return a;
  }());
  INFO("stdout: ", rotate.out, "\nstderr: ", rotate.err);
  REQUIRE(rotate.status.ok());
  SecretsFile f3 = parse_ok(read_text(path));
  CHECK(f3.org_id() == f1.org_id());
  REQUIRE(f3.org_key().size() == 64);
  CHECK(f3.org_key() != f1.org_key());
  CHECK(mode_of(path) == 0600);
  CHECK(rotate.out.find(f3.org_key()) == std::string::npos);
  CHECK(unregister_all(b, f1.org_id(), f1.org_key()).status == 401);
  CHECK(unregister_all(b, f3.org_id(), f3.org_key()).status == 200);
}

TEST_CASE("register-server binary: refuses without the flag when stdin is not a terminal") {
  test::BouncerProcess b;
  test::TempDir dir;
  const std::string path = dir.file("s.conf");
  CliRun r = run_cli(real_args(b, path, "noflag.aloha-test.org"));
  INFO("stdout: ", r.out, "\nstderr: ", r.err);
  CHECK(r.status.exited);
  CHECK(r.status.code == 2);
  CHECK(r.err.find("--agree-to-terms-of-service") != std::string::npos);
  CHECK_FALSE(exists(path));
}

TEST_CASE("register-server binary: after --deactivate, registering shows REALM_DEACTIVATED") {
  test::BouncerProcess b;
  test::TempDir dir;
  const std::string path = dir.file("s.conf");
  auto args = real_args(b, path, "deact.aloha-test.org");
  args.push_back("--agree-to-terms-of-service");
  CliRun reg = run_cli(args);
  INFO("register: ", reg.out, reg.err);
  REQUIRE(reg.status.ok());

  CliRun deact = run_cli({"--url", b.url(""), "--secrets", path, "--deactivate"});
  INFO("deactivate: ", deact.out, deact.err);
  REQUIRE(deact.status.ok());
  CHECK(deact.out.find("Deactivated") != std::string::npos);

  CliRun again = run_cli(args);
  INFO("again: ", again.out, again.err);
  CHECK(again.status.exited);
  CHECK(again.status.code == 1);
  CHECK(again.err.find("REALM_DEACTIVATED") != std::string::npos);
}

TEST_CASE("register-server binary: a bad email prints the bouncer's message and exits 1") {
  test::BouncerProcess b;
  test::TempDir dir;
  auto args = real_args(b, dir.file("s.conf"), "mail.aloha-test.org", "not-an-email");
  args.push_back("--agree-to-terms-of-service");
  CliRun r = run_cli(args);
  INFO("stdout: ", r.out, "\nstderr: ", r.err);
  CHECK(r.status.exited);
  CHECK(r.status.code == 1);
  CHECK(r.err.find("Enter a valid email address.") != std::string::npos);
  CHECK(r.err.find("BAD_REQUEST") != std::string::npos);
}

TEST_CASE("register-server binary: an unreachable bouncer exits 1 with a clear message") {
  test::TempDir dir;
  // Port 1 on loopback: nothing listens there in a test environment, so connect is refused.
  CliRun r = run_cli({"--url", "http://127.0.0.1:1", "--hostname", "x.aloha-test.org", "--email",
                      "a@aloha-test.org", "--secrets", dir.file("s.conf"),
                      "--agree-to-terms-of-service"});
  INFO("stdout: ", r.out, "\nstderr: ", r.err);
  CHECK(r.status.exited);
  CHECK(r.status.code == 1);
  CHECK(r.err.find("could not reach the bouncer at http://127.0.0.1:1") != std::string::npos);
}


}  // TEST_SUITE
