// Secrets file of the `register-server` command: an INI-like file whose [secrets] section holds
// aloha_org_id / aloha_org_key (Zulip's zulip_org_id / zulip_org_key are read too). Parsing keeps
// every line, so rewriting the file changes only the org id/key values and leaves other entries
// (e.g. the rest of a zulip-secrets.conf) alone. Writes are atomic: temp file, fsync, rename.
// Plain functions and value types; nothing here prints anything, callers decide what to report.
#pragma once
#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

namespace aloha::cli {

// Largest secrets file we read (bound on the read buffer).
inline constexpr size_t kMaxSecretsFileBytes = 1 << 20;

// An INI text viewed as lines; only [secrets] org id/key entries are interpreted.
class SecretsFile {
 public:
  // Parses `text`. Returns false and sets `error` ("line N: ...") when a line is neither blank, a
  // comment (# or ;), a [section], a `key = value` / `key: value` entry nor an indented
  // continuation, when an org id/key entry is duplicated in [secrets], or when one of them is
  // continued onto a second line.
  bool parse(std::string_view text, std::string& error);

  // The org id / key: aloha_* preferred, else zulip_*; empty when absent.
  const std::string& org_id() const { return org_id_; }
  const std::string& org_key() const { return org_key_; }
  // True when both aloha_* and zulip_* spellings are present with different values.
  bool has_conflicting_names() const { return conflict_; }

  // Sets the org id and key: rewrites the values of existing aloha_* and zulip_* entries in
  // [secrets] (so both spellings stay consistent), adds aloha_* entries that are missing, and
  // adds a [secrets] section at the end when there is none.
  void set(std::string_view org_id, std::string_view org_key);

  // The file text (lines joined with '\n', ending in '\n' unless empty).
  std::string render() const;

 private:
  struct Line {
    std::string text;
    bool in_secrets = false;   // inside a [secrets] section
    std::string key;           // lower-cased key for entries, empty otherwise
  };
  std::vector<Line> lines_;
  std::string org_id_, org_key_;
  bool conflict_ = false;
};

// File facts kept so a rewrite can preserve the mode and group of an existing file.
struct FileMeta {
  bool existed = false;
  mode_t mode = 0600;
  gid_t gid = 0;
};

enum class SecretsLoad { loaded, not_found, failed };

// Reads and parses the secrets file at `path` (at most kMaxSecretsFileBytes; must be a regular
// file). `warnings` receives a line when the file is readable or writable by group/others.
SecretsLoad load_secrets_file(const std::string& path, SecretsFile& out, FileMeta& meta,
                              std::string& error, std::vector<std::string>& warnings);

// A replacement for a file, fully written and fsync'ed next to it but not yet in place. commit()
// renames it over the target (and fsyncs the directory); if commit() is never called, or fails,
// the destructor removes the temp file, unless keep_temp() was called.
class PendingFileWrite {
 public:
  PendingFileWrite() = default;
  PendingFileWrite(const PendingFileWrite&) = delete;
  PendingFileWrite& operator=(const PendingFileWrite&) = delete;
  ~PendingFileWrite();

  // Writes `content` to a new temp file in the target's directory. A new file gets mode 0600; for
  // an existing one (`meta.existed`) the mode is kept minus any bits for others, and its group
  // is kept when we may. If `path` is a symlink, its target is the file replaced.
  bool prepare(const std::string& path, std::string_view content, const FileMeta& meta,
               std::string& error);
  bool commit(std::string& error);
  // Leave the temp file in place (it holds secrets the caller could not put in place).
  void keep_temp() { keep_ = true; }
  const std::string& temp_path() const { return temp_; }
  const std::string& target_path() const { return target_; }

 private:
  std::string target_, temp_;
  bool committed_ = false;
  bool keep_ = false;
};

// prepare() + commit() in one step.
bool write_file_atomically(const std::string& path, std::string_view content, const FileMeta& meta,
                           std::string& error);

}  // namespace aloha::cli
