// Secrets file parsing and atomic rewriting; see secrets.h.
#include "cli/secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

namespace aloha::cli {
namespace {

constexpr std::string_view kAlohaId = "aloha_org_id";
constexpr std::string_view kAlohaKey = "aloha_org_key";
constexpr std::string_view kZulipId = "zulip_org_id";
constexpr std::string_view kZulipKey = "zulip_org_key";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool is_org_key(std::string_view k) {
  return k == kAlohaId || k == kAlohaKey || k == kZulipId || k == kZulipKey;
}

std::string line_error(size_t lineno, const char* what) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "line %zu: %s", lineno, what);
  return buf;
}

std::string errno_text(const char* what, const std::string& path, int err) {
  std::string s = what;
  s += " ";
  s += path;
  s += ": ";
  s += strerror(err);
  return s;
}

std::string dir_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

bool SecretsFile::parse(std::string_view text, std::string& error) {
  lines_.clear();
  org_id_.clear();
  org_key_.clear();
  conflict_ = false;

  // Values found per name, and whether the name was seen (to refuse duplicates, as Python's
  // configparser does in its default strict mode, which reads zulip-secrets.conf).
  std::string values[4];
  bool seen[4] = {false, false, false, false};
  const std::string_view names[4] = {kAlohaId, kAlohaKey, kZulipId, kZulipKey};

  bool in_section = false, in_secrets = false;
  bool have_entry = false;          // an entry precedes, so an indented line continues it
  bool last_entry_is_org = false;   // ... and that entry is one of ours
  size_t lineno = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view raw = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++lineno;

    Line line;
    line.text = std::string(raw);
    const std::string_view t = trim(raw);
    if (t.empty() || t.front() == '#' || t.front() == ';') {
      // configparser treats a blank line inside a value as ending it only when followed by a
      // key; comments never continue a value.
      line.in_secrets = in_secrets;
      lines_.push_back(std::move(line));
      continue;
    }
    if (is_space(raw.front())) {
      if (!have_entry) {
        error = line_error(lineno, "indented line with no entry before it");
        return false;
      }
      if (last_entry_is_org) {
        error = line_error(lineno, "the org id/key value continues onto a second line");
        return false;
      }
      line.in_secrets = in_secrets;
      lines_.push_back(std::move(line));
      continue;
    }
    if (t.front() == '[') {
      if (t.back() != ']') {
        error = line_error(lineno, "malformed section header");
        return false;
      }
      const std::string_view name = t.substr(1, t.size() - 2);
      in_section = true;
      in_secrets = name == "secrets";
      have_entry = false;
      last_entry_is_org = false;
      line.in_secrets = in_secrets;
      lines_.push_back(std::move(line));
      continue;
    }
    const size_t sep = t.find_first_of("=:");
    if (sep == std::string_view::npos) {
      error = line_error(lineno, "expected 'key = value'");
      return false;
    }
    if (!in_section) {
      error = line_error(lineno, "entry before any [section] header");
      return false;
    }
    std::string key = lower(trim(t.substr(0, sep)));
    if (key.empty()) {
      error = line_error(lineno, "entry with an empty key");
      return false;
    }
    const std::string_view value = trim(t.substr(sep + 1));
    have_entry = true;
    last_entry_is_org = false;
    if (in_secrets && is_org_key(key)) {
      last_entry_is_org = true;
      for (int i = 0; i < 4; ++i) {
        if (key != names[i]) continue;
        if (seen[i]) {
          error = line_error(lineno, "duplicate org id/key entry in [secrets]");
          return false;
        }
        seen[i] = true;
        values[i] = std::string(value);
      }
    }
    line.in_secrets = in_secrets;
    line.key = std::move(key);
    lines_.push_back(std::move(line));
  }

  org_id_ = seen[0] ? values[0] : values[2];
  org_key_ = seen[1] ? values[1] : values[3];
  conflict_ = (seen[0] && seen[2] && values[0] != values[2]) ||
              (seen[1] && seen[3] && values[1] != values[3]);
  return true;
}

void SecretsFile::set(std::string_view org_id, std::string_view org_key) {
  bool have_id = false, have_key = false;
  for (Line& l : lines_) {
    if (!l.in_secrets || l.key.empty()) continue;
    if (l.key == kAlohaId || l.key == kZulipId) {
      l.text = l.key + " = " + std::string(org_id);
      if (l.key == kAlohaId) have_id = true;
    } else if (l.key == kAlohaKey || l.key == kZulipKey) {
      l.text = l.key + " = " + std::string(org_key);
      if (l.key == kAlohaKey) have_key = true;
    }
  }
  if (have_id && have_key) {
    org_id_ = std::string(org_id);
    org_key_ = std::string(org_key);
    conflict_ = false;
    return;
  }

  // New entries go after the last entry (or continuation) of the first [secrets] section, not
  // after trailing blank lines or comments that introduce the next section.
  size_t insert_at = std::string::npos;
  for (size_t i = 0; i < lines_.size(); ++i) {
    const std::string_view t = trim(lines_[i].text);
    const bool header = !t.empty() && t.front() == '[';
    if (insert_at == std::string::npos) {
      if (header && lines_[i].in_secrets) insert_at = i + 1;
      continue;
    }
    if (header) break;
    if (!t.empty() && t.front() != '#' && t.front() != ';') insert_at = i + 1;
  }
  std::vector<Line> added;
  if (!have_id) added.push_back({std::string(kAlohaId) + " = " + std::string(org_id), true,
                                 std::string(kAlohaId)});
  if (!have_key) added.push_back({std::string(kAlohaKey) + " = " + std::string(org_key), true,
                                  std::string(kAlohaKey)});
  if (insert_at == std::string::npos) {
    if (!lines_.empty() && !trim(lines_.back().text).empty()) lines_.push_back({"", false, ""});
    lines_.push_back({"[secrets]", true, ""});
    insert_at = lines_.size();
  }
  lines_.insert(lines_.begin() + static_cast<std::ptrdiff_t>(insert_at), added.begin(),
                added.end());
  org_id_ = std::string(org_id);
  org_key_ = std::string(org_key);
  conflict_ = false;
}

std::string SecretsFile::render() const {
  std::string out;
  for (const auto& l : lines_) {
    out += l.text;
    out += '\n';
  }
  return out;
}

SecretsLoad load_secrets_file(const std::string& path, SecretsFile& out, FileMeta& meta,
                              std::string& error, std::vector<std::string>& warnings) {
  meta = FileMeta{};
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return SecretsLoad::not_found;
    error = errno_text("cannot open", path, errno);
    return SecretsLoad::failed;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    error = errno_text("cannot stat", path, errno);
    ::close(fd);
    return SecretsLoad::failed;
  }
  if (!S_ISREG(st.st_mode)) {
    error = path + " is not a regular file";
    ::close(fd);
    return SecretsLoad::failed;
  }
  if (static_cast<unsigned long long>(st.st_size) > kMaxSecretsFileBytes) {
    error = path + " is too large for a secrets file";
    ::close(fd);
    return SecretsLoad::failed;
  }
  meta.existed = true;
  meta.mode = st.st_mode & 07777;
  meta.gid = st.st_gid;
  if ((st.st_mode & 077) != 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    warnings.push_back(path + " is accessible by group/others (mode " + buf +
                       "); a secrets file should be mode 0600");
  }

  std::string text;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = errno_text("cannot read", path, errno);
      ::close(fd);
      return SecretsLoad::failed;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxSecretsFileBytes) {  // the file grew since fstat
      error = path + " is too large for a secrets file";
      ::close(fd);
      return SecretsLoad::failed;
    }
  }
  ::close(fd);

  std::string perr;
  if (!out.parse(text, perr)) {
    error = path + ": " + perr;
    return SecretsLoad::failed;
  }
  return SecretsLoad::loaded;
}

PendingFileWrite::~PendingFileWrite() {
  if (!committed_ && !keep_ && !temp_.empty()) ::unlink(temp_.c_str());
}

bool PendingFileWrite::prepare(const std::string& path, std::string_view content,
                               const FileMeta& meta, std::string& error) {
  target_ = path;
  // rename() would replace a symlink itself; write next to, and over, the file it points to.
  struct stat lst {};
  if (::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
    char resolved[PATH_MAX];
    if (::realpath(path.c_str(), resolved) == nullptr) {
      error = errno_text("cannot resolve", path, errno);
      return false;
    }
    target_ = resolved;
  }

  // mkostemp creates the file with mode 0600 and O_EXCL, so the secrets are never readable by
  // others, whatever the umask, not even for a moment.
  std::string tmpl = target_ + ".tmp-XXXXXX";
  const int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) {
    error = errno_text("cannot create a temporary file next to", target_, errno);
    return false;
  }
  temp_ = tmpl;
  auto fail = [&](const char* what) {
    error = errno_text(what, temp_, errno);
    ::close(fd);
    ::unlink(temp_.c_str());
    temp_.clear();
    return false;
  };

  if (meta.existed) {
    // Keep the group (e.g. zulip-secrets.conf is root:zulip 0640) when we may; never keep bits
    // for others. Failure to chown is fine: the file stays ours with a tighter mode.
    if (::fchown(fd, static_cast<uid_t>(-1), meta.gid) != 0) { /* not permitted: keep ours */ }
    const mode_t mode = (meta.mode & 0770) | 0600;
    if (::fchmod(fd, mode) != 0) return fail("cannot set the mode of");
  }
  size_t off = 0;
  while (off < content.size()) {
    const ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write");
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("cannot fsync");
  if (::close(fd) != 0) {
    error = errno_text("cannot close", temp_, errno);
    ::unlink(temp_.c_str());
    temp_.clear();
    return false;
  }
  return true;
}

bool PendingFileWrite::commit(std::string& error) {
  if (temp_.empty()) {
    error = "nothing prepared";
    return false;
  }
  if (::rename(temp_.c_str(), target_.c_str()) != 0) {
    error = errno_text("cannot rename the temporary file over", target_, errno);
    return false;
  }
  committed_ = true;
  // Make the rename itself durable (the directory entry), or a crash could bring back the old file.
  const int dfd = ::open(dir_of(target_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return true;
}

bool write_file_atomically(const std::string& path, std::string_view content, const FileMeta& meta,
                           std::string& error) {
  PendingFileWrite w;
  return w.prepare(path, content, meta, error) && w.commit(error);
}

}  // namespace aloha::cli
