// Typed request parameters with the exact error messages of api.md §1. FormParams holds the
// decoded form-style parameters of one request (query string, then body) and records which were
// used; JsonDoc/JsonBody parse JSON text (keeping the exact text of integers beyond 64 bits) and
// type-check members by their `request["key"][0]` path. All failures throw ApiError (400); none of
// these types is used across C callbacks. Each object owns its data; views returned by accessors
// live as long as the object.
#pragma once
#include <rapidjson/document.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "api/api_error.h"
#include "http/form.h"
#include "http/message.h"

namespace aloha::api {

// An integer parameter. Integers outside int64 are still integers (Python's int has no bound);
// `too_large` marks them (value saturated to INT64_MAX / INT64_MIN) so the caller can answer
// e.g. "user_id is too large" at the step api.md orders it.
struct JsonInt {
  int64_t value = 0;
  bool too_large = false;
};

// JSON value types of api.md §1's messages.
enum class JType { integer, string, list, dict, boolean };
// Whether an absent key is an error.
enum class Presence { required, optional };
// Whether a JSON null is a type error or means "absent".
enum class Null { invalid, absent };

// "is not an integer", "is not a string", "is not a list", "is not a dict", "is not a boolean".
const char* type_error_suffix(JType t);

// JSON string literal with quotes: escapes `"`, `\` and control characters (short forms \b \f \n
// \r \t, else \u00XX); every other byte, non-ASCII UTF-8 included, is copied as is.
std::string json_quote(std::string_view s);
// The same, appended to `out` (no temporary string).
void append_json_quoted(std::string& out, std::string_view s);

// Number of code points of valid UTF-8 text (Python's len()).
std::size_t utf8_length(std::string_view s);

// Python's str.strip(): removes leading and trailing Unicode whitespace (str.isspace()).
std::string strip_whitespace(std::string_view s);

// Throw ApiError 400 "<name> is not length N" / "<name> is too long (limit: N characters)";
// lengths in code points.
void check_length(std::string_view name, std::string_view value, std::size_t n);
void check_max_length(std::string_view name, std::string_view value, std::size_t limit);

// A parsed JSON text (RFC 8259, plus Python's acceptance of integers of any size). The DOM is
// RapidJSON's; integers that fit int64/uint64 are stored exactly, larger ones as the nearest
// double, with their exact decimal text available from big_int_text(). Movable; the DOM lives on
// the heap, so pointers into it stay valid across moves.
// A DOM whose allocator starts on an embedded buffer; recycled through a small free list, so
// parsing a request body usually costs no malloc at all (RapidJSON's default allocator takes a
// fresh 64 KiB chunk per document).
struct JsonDocSlot;
struct JsonDocSlotDeleter {
  void operator()(JsonDocSlot* s) const noexcept;
};

class JsonDoc {
 public:
  // Deeper nesting is rejected (Python's json gives up near 1000 levels with RecursionError).
  static constexpr unsigned kMaxDepth = 512;

  JsonDoc();
  // Parses exactly one JSON value (whitespace around it allowed). Strings, once unescaped, must be
  // UTF-8 (lone surrogate escapes are rejected). False on any error; root() is then null.
  bool parse(std::string_view text);

  const rapidjson::Value& root() const;
  // For in-place rewrites (e.g. zulip_message_ids). A replaced big-integer value loses its text.
  rapidjson::Document& document();

  // Exact decimal text of an integer literal beyond 64 bits (stored as a double), else nullptr.
  const std::string* big_int_text(const rapidjson::Value& v) const;
  // A JSON integer literal (no fraction, no exponent), of any size.
  bool is_integer(const rapidjson::Value& v) const;
  bool has_type(const rapidjson::Value& v, JType t) const;
  // The integer value, or nullopt when v is not an integer literal.
  std::optional<JsonInt> as_int(const rapidjson::Value& v) const;

 private:
  void reset_doc();
  std::unique_ptr<JsonDocSlot, JsonDocSlotDeleter> doc_;
  std::unordered_map<const rapidjson::Value*, std::string> big_ints_;
};

// Paths for messages: path_key("request", "a") == R"(request["a"])", path_index(p, 0) == p + "[0]".
std::string path_key(std::string_view base, std::string_view key);
std::string path_index(std::string_view base, std::size_t i);

// Member `key` of object `obj`; the last one when repeated (Python's json keeps the last).
const rapidjson::Value* find_member(const rapidjson::Value& obj, std::string_view key);

// Throws "<path> is not a <type>" unless `v` has type `t`.
void expect_type(const JsonDoc& doc, const rapidjson::Value& v, std::string_view path, JType t);

// Member `key` of object `obj` (whose path is `obj_path`), type-checked. Absent -> nullptr, or
// when required throws "<obj_path>["<key>"] field is missing: Field required". A null member is
// absent with Null::absent (never an error then, even when required), else a type error.
const rapidjson::Value* get_member(const JsonDoc& doc, const rapidjson::Value& obj,
                                   std::string_view obj_path, std::string_view key, JType t,
                                   Presence p, Null n = Null::invalid);

// Throws "<list_path>[i] is not a <type>" for the first item of `list` not of type `t`.
void expect_items(const JsonDoc& doc, const rapidjson::Value& list, std::string_view list_path,
                  JType t);

// Throws `Argument "<k>" at <obj_path>["<k>"] is unexpected` for the first key of `obj` not in
// `allowed`.
void reject_unknown_keys(const rapidjson::Value& obj, std::string_view obj_path,
                         std::initializer_list<std::string_view> allowed);

// The JSON body of a json-style endpoint (api.md §1): one JSON object whatever the Content-Type.
class JsonBody {
 public:
  // Invalid UTF-8 -> 400 "Malformed payload"; unparsable or not an object -> 400 "Malformed JSON".
  static JsonBody parse(const http::Request& req);
  static JsonBody parse(std::string_view body);

  // `request["<key>"]`.
  static std::string path_of(std::string_view key);

  const JsonDoc& doc() const { return doc_; }
  JsonDoc& doc() { return doc_; }
  const rapidjson::Value& object() const { return doc_.root(); }

  // Top-level member, as get_member() with the path `request["<key>"]`.
  const rapidjson::Value* get(std::string_view key, JType t, Presence p, Null n = Null::invalid) const;
  // Typed shorthands of get(): nullopt when absent (or null with Null::absent).
  std::optional<JsonInt> get_int(std::string_view key, Presence p, Null n = Null::invalid) const;
  std::optional<std::string> get_str(std::string_view key, Presence p, Null n = Null::invalid) const;
  // Strict key set (push/test_notification): `Argument "<k>" at request["<k>"] is unexpected`.
  void reject_unknown(std::initializer_list<std::string_view> allowed) const;

 private:
  JsonDoc doc_;
};

// Form-style parameters (api.md §1 "form"): query-string parameters, then the body's
// (urlencoded or multipart by Content-Type; another or no Content-Type with a non-empty body is
// tried as urlencoded). A name in both takes the body's value; a repeated name its last value.
// Accessors mark the names they read as used; unused() lists the rest.
class FormParams {
 public:
  using JsonInt = api::JsonInt;

  // Throws ApiError 400 "Malformed payload" on undecodable input (bad %-escapes, bad multipart
  // framing, invalid UTF-8, more than http::kMaxFormFields fields).
  static FormParams from_request(const http::Request& req);
  // From already decoded fields (query first, then body).
  static FormParams from_fields(const http::FormFields& query, const http::FormFields& body);

  // str parameter, verbatim. Required and absent -> REQUEST_VARIABLE_MISSING "Missing '<name>'
  // argument" (extra "var_name"). `alias`: a second accepted name; both sent ->
  // REQUEST_CONFUSING_VAR with var_name1/var_name2. Messages use `name`; the alias sent counts as
  // used.
  std::optional<std::string> str(std::string_view name, bool required, std::string_view alias = {});
  // As str(), whitespace-stripped (Python's str.strip()); empty after stripping ->
  // "<name> cannot be blank".
  std::optional<std::string> stripped_str(std::string_view name, bool required,
                                          std::string_view alias = {});
  // Json[int]: not JSON -> "<name> is not valid JSON"; JSON but not an integer literal (1.0, 1e3,
  // "1", true) -> "<name> is not an integer".
  std::optional<JsonInt> json_int(std::string_view name, bool required, std::string_view alias = {});
  // Json[T] for any T: the parsed value ("<name> is not valid JSON" when unparsable); check its
  // type with expect_type(doc, doc.root(), name, JType::list) and so on.
  std::optional<JsonDoc> json(std::string_view name, bool required, std::string_view alias = {});

  // Raw value, or nullptr; does not mark the name used.
  const std::string* raw(std::string_view name) const;
  bool has(std::string_view name) const { return raw(name) != nullptr; }
  void mark_used(std::string_view name);
  // Sorted names present but never read (for "ignored_parameters_unsupported").
  std::vector<std::string> unused() const;
  std::size_t size() const { return params_.size(); }

 private:
  struct Entry {
    std::string value;
    bool used = false;
  };
  // The entry for `name` or `alias` (marked used), nullptr when absent and optional.
  Entry* lookup(std::string_view name, bool required, std::string_view alias);

  std::map<std::string, Entry, std::less<>> params_;
};

}  // namespace aloha::api
