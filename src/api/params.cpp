// RapidJSON's SSE2 scanners (whitespace, and strings without escapes) are used for the in-situ
// parse of JsonDoc::parse. Defined for this file only, before any RapidJSON header: they make
// 16-byte aligned loads that may read past the NUL terminator within its 16-byte block, so they
// are only safe on a buffer padded as JsonDoc::parse pads its copy (kSimdPadding). No other file
// parses in situ, so the SkipWhitespace<InsituStringStream> specialisation exists only here.
#if defined(__SSE2__) && !defined(RAPIDJSON_SSE2) && !defined(RAPIDJSON_SSE42)
#define RAPIDJSON_SSE2
#endif

#include "core/encoding.h"
#include "api/params.h"

#include <rapidjson/reader.h>
#include <rapidjson/stream.h>

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <limits>
#include <new>
#include <system_error>

namespace aloha::api {
namespace {

using rapidjson::SizeType;
using rapidjson::Value;

[[noreturn]] void bad_request(std::string msg) { throw ApiError::bad_request(std::move(msg)); }

// Decodes one code point of valid UTF-8 starting at s[i]; returns its byte length.
std::size_t decode_at(std::string_view s, std::size_t i, uint32_t& cp) {
  auto c = static_cast<unsigned char>(s[i]);
  std::size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  if (i + len > s.size()) len = 1;  // not valid UTF-8: treat the byte alone
  cp = len == 1 ? c : len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
  for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3Fu);
  return len;
}

// Python's str.isspace() (Unicode White_Space plus the ASCII separators U+001C..U+001F).
bool is_py_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool is_cont(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Converts the text of a JSON number with a fraction or exponent (or an integer too large for 64
// bits) to the nearest double, like Python's float(): overflow gives ±inf, underflow ±0.
double number_to_double(std::string_view t) {
  double d = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), d);
  (void)p;
  if (ec == std::errc()) return d;
  bool neg = !t.empty() && t.front() == '-';
  std::string_view m = neg ? t.substr(1) : t;
  std::size_t epos = m.find_first_of("eE");
  long long exp = 0;
  if (epos != std::string_view::npos) {
    std::string_view e = m.substr(epos + 1);
    bool eneg = !e.empty() && e.front() == '-';
    if (!e.empty() && (e.front() == '-' || e.front() == '+')) e.remove_prefix(1);
    for (char c : e) exp = std::min<long long>(exp * 10 + (c - '0'), 1000000000LL);
    if (eneg) exp = -exp;
    m = m.substr(0, epos);
  }
  // Decimal magnitude of the mantissa: digits before the point from the first non-zero digit, or
  // minus the zeros after the point before it.
  std::size_t dot = m.find('.');
  std::string_view ip = m.substr(0, dot);
  long long mag = 0;
  std::size_t nz = ip.find_first_not_of('0');
  if (nz != std::string_view::npos) {
    mag = static_cast<long long>(ip.size() - nz);
  } else if (dot != std::string_view::npos) {
    std::string_view fp = m.substr(dot + 1);
    std::size_t fnz = fp.find_first_not_of('0');
    mag = fnz == std::string_view::npos ? -1000000000LL : -static_cast<long long>(fnz);
  }
  double r = (mag + exp > 0) ? std::numeric_limits<double>::infinity() : 0.0;
  return neg ? -r : r;
}

// Whether the n bytes at s are all ASCII: whole words, the tail as one overlapping word (or, for
// short strings, overlapping halves), so a usual key or value costs a few loads and no loop.
bool is_ascii(const char* s, std::size_t n) {
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  uint64_t acc = 0;
  if (n >= 8) {
    uint64_t w;
    for (std::size_t i = 0; i + 8 <= n; i += 8) {
      std::memcpy(&w, s + i, 8);
      acc |= w;
    }
    std::memcpy(&w, s + n - 8, 8);
    return ((acc | w) & kHigh) == 0;
  }
  if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, s, 4);
    std::memcpy(&b, s + n - 4, 4);
    return ((a | b) & 0x80808080U) == 0;
  }
  for (std::size_t i = 0; i < n; ++i) acc |= static_cast<unsigned char>(s[i]);
  return (acc & 0x80) == 0;
}

// A parsed string (escapes resolved) is UTF-8: ASCII always is; anything else is checked in full
// (an escaped low surrogate without its high half decodes to the bytes of a lone surrogate).
bool valid_string(const char* s, std::size_t n) { return is_ascii(s, n) || enc::valid_utf8({s, n}); }

// SAX handler that builds the RapidJSON DOM while converting numbers itself (so that integer
// literals beyond 64 bits are recognised as integers, as Python's json does) and tracking each
// value's position for them. Values are forwarded to the Document's own handler methods.
class Builder {
 public:
  struct BigInt {
    std::vector<SizeType> path;  // child index at each level (member index for objects)
    std::string text;
  };

  // `originals`: exact text of number tokens replaced by placeholders, by ordinal (see
  // defuse_numbers); may be null.
  // `frames`: scratch storage reused across parses (cleared here), so nesting costs no malloc.
  Builder(rapidjson::Document& d, const std::unordered_map<std::size_t, std::string>* originals,
          std::vector<SizeType>& frames)
      : d_(d), originals_(originals), frames_(frames) {
    frames_.clear();
  }

  bool Null() { return d_.Null() && done(); }
  bool Bool(bool b) { return d_.Bool(b) && done(); }
  bool Int(int i) { return d_.Int(i) && done(); }
  bool Uint(unsigned u) { return d_.Uint(u) && done(); }
  bool Int64(int64_t i) { return d_.Int64(i) && done(); }
  bool Uint64(uint64_t u) { return d_.Uint64(u) && done(); }
  bool Double(double x) { return d_.Double(x) && done(); }
  bool RawNumber(const char* s, SizeType n, bool) {
    std::string_view t(s, n);
    if (originals_ != nullptr) {
      auto it = originals_->find(ordinal_);
      if (it != originals_->end()) t = it->second;
    }
    ++ordinal_;
    const char* b = t.data();
    const char* e = t.data() + t.size();
    // A plain loop: find_first_of calls memchr over the set once per character.
    bool integral = true;
    for (char c : t) integral = integral && c != '.' && c != 'e' && c != 'E';
    if (integral) {
      int64_t i = 0;
      auto r = std::from_chars(b, e, i);
      if (r.ec == std::errc() && r.ptr == e) return Int64(i);
      uint64_t u = 0;
      auto ru = std::from_chars(b, e, u);
      if (ru.ec == std::errc() && ru.ptr == e) return Uint64(u);
      big_.push_back(BigInt{current_path(), std::string(t)});
    }
    return Double(number_to_double(t));
  }
  // Strings are parsed in situ: they point into the document's copy of the text (which lives as
  // long as the DOM, in its allocator), so the DOM refers to them instead of copying them.
  bool String(const char* s, SizeType n, bool copy) {
    // Escapes can produce a lone surrogate; keep the DOM valid UTF-8.
    if (!valid_string(s, n)) return false;
    return d_.String(s, n, copy) && done();
  }
  bool Key(const char* s, SizeType n, bool copy) {
    if (!valid_string(s, n)) return false;
    return d_.Key(s, n, copy);
  }
  bool StartObject() { return open() && d_.StartObject(); }
  bool EndObject(SizeType n) {
    frames_.pop_back();
    return d_.EndObject(n) && done();
  }
  bool StartArray() { return open() && d_.StartArray(); }
  bool EndArray(SizeType n) {
    frames_.pop_back();
    return d_.EndArray(n) && done();
  }

  std::vector<BigInt>& big() { return big_; }

 private:
  bool open() {
    if (frames_.size() >= JsonDoc::kMaxDepth) return false;
    frames_.push_back(0);
    return true;
  }
  // A value is complete: the enclosing container moves on to its next child.
  bool done() {
    if (!frames_.empty()) ++frames_.back();
    return true;
  }
  std::vector<SizeType> current_path() const { return frames_; }

  rapidjson::Document& d_;
  const std::unordered_map<std::size_t, std::string>* originals_;
  std::size_t ordinal_ = 0;
  std::vector<SizeType>& frames_;  // per open container: index of the child being parsed
  std::vector<BigInt> big_;
};

// RapidJSON refuses numbers whose value overflows a double (kParseErrorNumberTooBig) even when
// asked for their text, while Python reads them (1e400 is inf, a 400-digit literal an int). This
// copy of `text` has every number token with an exponent or of more than 300 characters replaced
// by a same-length "0.000" placeholder; the originals are kept by token ordinal for the Builder.
// Only called after such a failure, so the usual path does not pay for the scan.
std::string defuse_numbers(std::string_view text, std::unordered_map<std::size_t, std::string>& originals) {
  std::string out(text);
  std::size_t ordinal = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < out.size(); ++i) {
    char c = out[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
      continue;
    }
    if (c != '-' && (c < '0' || c > '9')) continue;
    std::size_t j = i;
    while (j < out.size() && std::string_view("+-.eE0123456789").find(out[j]) != std::string_view::npos) ++j;
    std::string_view token = text.substr(i, j - i);
    if (token.size() >= 3 && (token.find_first_of("eE") != std::string_view::npos || token.size() > 300)) {
      originals.emplace(ordinal, std::string(token));
      out.replace(i, token.size(), "0." + std::string(token.size() - 2, '0'));
    }
    ++ordinal;
    i = j - 1;
  }
  return out;
}

// Python's json accepts these non-standard literals; they are numbers, never integers.
bool is_nan_or_infinity(std::string_view t) {
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t' || t.front() == '\n' || t.front() == '\r'))
    t.remove_prefix(1);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t' || t.back() == '\n' || t.back() == '\r'))
    t.remove_suffix(1);
  return t == "NaN" || t == "Infinity" || t == "-Infinity";
}

ApiError missing_argument(std::string_view name) {
  ApiError e{400, "REQUEST_VARIABLE_MISSING", "Missing '" + std::string(name) + "' argument", {}, {}};
  e.extra.emplace_back("var_name", json_quote(name));
  return e;
}

}  // namespace

const char* type_error_suffix(JType t) {
  switch (t) {
    case JType::integer: return "is not an integer";
    case JType::string: return "is not a string";
    case JType::list: return "is not a list";
    case JType::dict: return "is not a dict";
    case JType::boolean: return "is not a boolean";
  }
  return "is not valid";
}

std::string json_quote(std::string_view s) {
  std::string out;
  append_json_quoted(out, s);
  return out;
}

void append_json_quoted(std::string& out, std::string_view s) { enc::append_json_string(out, s); }

std::size_t utf8_length(std::string_view s) {
  std::size_t n = 0;
  for (char c : s)
    if (!is_cont(c)) ++n;
  return n;
}

std::string strip_whitespace(std::string_view s) {
  std::size_t b = 0;
  while (b < s.size()) {
    uint32_t cp = 0;
    std::size_t len = decode_at(s, b, cp);
    if (!is_py_space(cp)) break;
    b += len;
  }
  std::size_t e = s.size();
  while (e > b) {
    std::size_t start = e - 1;
    while (start > b && is_cont(s[start])) --start;
    uint32_t cp = 0;
    decode_at(s, start, cp);
    if (!is_py_space(cp)) break;
    e = start;
  }
  return std::string(s.substr(b, e - b));
}

void check_length(std::string_view name, std::string_view value, std::size_t n) {
  if (utf8_length(value) != n) bad_request(std::string(name) + " is not length " + std::to_string(n));
}

void check_max_length(std::string_view name, std::string_view value, std::size_t limit) {
  if (utf8_length(value) > limit)
    bad_request(std::string(name) + " is too long (limit: " + std::to_string(limit) + " characters)");
}

// ---- JsonDoc ----

namespace {
// The Document's parse stack: one allocator object shared by every slot (CrtAllocator is
// stateless), so a document does not allocate one of its own per parse; a capacity that holds a
// usual request body, so the stack is allocated once per parse instead of grown step by step.
rapidjson::CrtAllocator& stack_allocator() {
  static rapidjson::CrtAllocator a;  // stateless: safe to share between threads
  return a;
}
constexpr size_t kDocStackCapacity = 4096;

// Reused by every parse on the thread (JsonDoc::parse is not re-entrant): the reader keeps its
// stack between parses (RapidJSON only clears it) and the Builder its frame list (bounded by
// JsonDoc::kMaxDepth). Strings are unescaped in situ, not on the reader's stack, but the reader
// is still recreated after an input over kKeepReaderBelow so that no parse leaves a grown stack.
constexpr size_t kKeepReaderBelow = 64 * 1024;
// Zero bytes after the NUL of the in-situ copy: RapidJSON's SSE2 scanners load whole aligned
// 16-byte blocks, up to 15 bytes past the terminator (ASan would flag reads past the allocation).
constexpr size_t kSimdPadding = 16;
struct ParseScratch {
  std::optional<rapidjson::Reader> reader;
  std::vector<SizeType> frames;
};
ParseScratch& parse_scratch() {
  thread_local ParseScratch s;
  return s;
}
}  // namespace

// A document lives as long as its request (push/notify: until every push is answered), so each
// notify in flight holds one slot. The ~1.2 KB Zulip-shaped bench body takes 2.7 KB (in-situ copy
// plus DOM): 4 KB holds a usual body; a bigger one adds chunks of kSlotChunk, or of its own size.
constexpr size_t kSlotBuffer = 4096;
constexpr size_t kSlotChunk = 4096;

struct JsonDocSlot {
  alignas(16) char buffer[kSlotBuffer];
  rapidjson::MemoryPoolAllocator<> alloc{buffer, sizeof buffer, kSlotChunk};
  rapidjson::Document doc{&alloc, kDocStackCapacity, &stack_allocator()};

  void clear() {
    doc.~GenericDocument();
    alloc.Clear();  // frees extra chunks; the embedded buffer is kept
    new (&doc) rapidjson::Document(&alloc, kDocStackCapacity, &stack_allocator());
  }
};

namespace {
// Loop-thread free list of document slots (bounded: slots beyond it are freed). The list owns
// its slots, so they are freed when the thread ends.
std::vector<std::unique_ptr<JsonDocSlot>>& slot_pool() {
  thread_local std::vector<std::unique_ptr<JsonDocSlot>> pool;
  return pool;
}
constexpr size_t kMaxPooledSlots = 64;
}  // namespace

void JsonDocSlotDeleter::operator()(JsonDocSlot* s) const noexcept {
  auto& pool = slot_pool();
  if (pool.size() < kMaxPooledSlots) {
    s->clear();
    pool.emplace_back(s);
  } else {
    delete s;
  }
}

void JsonDoc::reset_doc() {
  auto& pool = slot_pool();
  if (!pool.empty()) {
    doc_.reset(pool.back().release());
    pool.pop_back();
  } else {
    doc_.reset(new JsonDocSlot());
  }
}

const rapidjson::Value& JsonDoc::root() const { return doc_->doc; }
rapidjson::Document& JsonDoc::document() { return doc_->doc; }

JsonDoc::JsonDoc() { reset_doc(); }

bool JsonDoc::parse(std::string_view text) {
  if (doc_->doc.IsNull() && doc_->alloc.Size() == 0) {
    // fresh slot: nothing to clear
  } else {
    doc_->clear();
  }
  big_ints_.clear();

  std::vector<Builder::BigInt> big;
  bool ok = false;
  rapidjson::ParseErrorCode code = rapidjson::kParseErrorNone;
  std::unordered_map<std::size_t, std::string> originals;
  std::string defused;
  auto generator = [&](rapidjson::Document& d) {
    ParseScratch& scratch = parse_scratch();
    Builder builder(d, originals.empty() ? nullptr : &originals, scratch.frames);
    std::string_view in = originals.empty() ? text : std::string_view(defused);
    // In-situ parse of a copy held by the document's own allocator (on the slot's embedded buffer
    // for a usual body, freed with the DOM): strings are unescaped in place and the DOM points at
    // them, so no string is copied twice. NUL-terminated (the end for InsituStringStream; the text
    // has no NUL of its own) and zero-padded for the SSE2 scanners' aligned 16-byte loads.
    auto* buf = static_cast<char*>(d.GetAllocator().Malloc(in.size() + 1 + kSimdPadding));
    if (buf == nullptr) throw std::bad_alloc();
    std::memcpy(buf, in.data(), in.size());
    std::memset(buf + in.size(), 0, 1 + kSimdPadding);
    rapidjson::InsituStringStream is(buf);
    if (!scratch.reader) scratch.reader.emplace();
    rapidjson::Reader& reader = *scratch.reader;
    // Iterative: nesting depth must not consume the C stack; numbers as text: see Builder.
    constexpr unsigned kFlags = rapidjson::kParseIterativeFlag | rapidjson::kParseNumbersAsStringsFlag |
                                rapidjson::kParseInsituFlag;
    code = reader.Parse<kFlags>(is, builder).Code();
    // The in-situ stream ends at the first NUL, which would hide trailing bytes; a raw NUL is
    // never valid JSON (RFC 8259 §7 requires it escaped inside strings, and RapidJSON refuses it
    // there), so a parse that succeeded must have stopped exactly at the copy's terminator.
    if (code == rapidjson::kParseErrorNone && is.Tell() != in.size())
      code = rapidjson::kParseErrorDocumentRootNotSingular;
    if (in.size() > kKeepReaderBelow) scratch.reader.reset();  // give its grown stack back
    ok = code == rapidjson::kParseErrorNone;
    big = std::move(builder.big());
    return ok;
  };
  doc_->doc.Populate(generator);
  if (!ok && code == rapidjson::kParseErrorNumberTooBig) {
    defused = defuse_numbers(text, originals);
    if (!originals.empty()) doc_->doc.Populate(generator);
  }
  if (!ok) {
    doc_->clear();
    return false;
  }
  // Resolve the recorded positions now that the DOM no longer moves.
  for (auto& b : big) {
    const Value* v = &doc_->doc;
    for (SizeType i : b.path) v = v->IsObject() ? &(v->MemberBegin() + i)->value : &(*v)[i];
    big_ints_.emplace(v, std::move(b.text));
  }
  return true;
}

const std::string* JsonDoc::big_int_text(const Value& v) const {
  auto it = big_ints_.find(&v);
  return (it != big_ints_.end() && v.IsDouble()) ? &it->second : nullptr;
}

bool JsonDoc::is_integer(const Value& v) const {
  return v.IsInt64() || v.IsUint64() || big_int_text(v) != nullptr;
}

bool JsonDoc::has_type(const Value& v, JType t) const {
  switch (t) {
    case JType::integer: return is_integer(v);
    case JType::string: return v.IsString();
    case JType::list: return v.IsArray();
    case JType::dict: return v.IsObject();
    case JType::boolean: return v.IsBool();
  }
  return false;
}

std::optional<JsonInt> JsonDoc::as_int(const Value& v) const {
  if (v.IsInt64()) return JsonInt{v.GetInt64(), false};
  if (v.IsUint64()) return JsonInt{std::numeric_limits<int64_t>::max(), true};
  if (const std::string* t = big_int_text(v))
    return JsonInt{t->front() == '-' ? std::numeric_limits<int64_t>::min()
                                     : std::numeric_limits<int64_t>::max(),
                   true};
  return std::nullopt;
}

// ---- typed access ----

std::string path_key(std::string_view base, std::string_view key) {
  std::string p(base);
  p += "[\"";
  p += key;
  p += "\"]";
  return p;
}

std::string path_index(std::string_view base, std::size_t i) {
  std::string p(base);
  p += '[';
  p += std::to_string(i);
  p += ']';
  return p;
}

const Value* find_member(const Value& obj, std::string_view key) {
  if (!obj.IsObject()) return nullptr;
  const Value* found = nullptr;
  for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it) {
    const Value& k = it->name;
    if (std::string_view(k.GetString(), k.GetStringLength()) == key) found = &it->value;
  }
  return found;
}

void expect_type(const JsonDoc& doc, const Value& v, std::string_view path, JType t) {
  if (!doc.has_type(v, t)) bad_request(std::string(path) + " " + type_error_suffix(t));
}

const Value* get_member(const JsonDoc& doc, const Value& obj, std::string_view obj_path,
                        std::string_view key, JType t, Presence p, Null n) {
  const Value* v = find_member(obj, key);
  if (v == nullptr) {
    // pydantic's "missing" error as Zulip's typed_endpoint words it.
    if (p == Presence::required) bad_request(path_key(obj_path, key) + " field is missing: Field required");
    return nullptr;
  }
  if (v->IsNull() && n == Null::absent) return nullptr;
  // The path text is only built for the error message (hot path: no string per member read).
  if (!doc.has_type(*v, t)) expect_type(doc, *v, path_key(obj_path, key), t);
  return v;
}

void expect_items(const JsonDoc& doc, const Value& list, std::string_view list_path, JType t) {
  if (!list.IsArray()) bad_request(std::string(list_path) + " " + type_error_suffix(JType::list));
  for (SizeType i = 0; i < list.Size(); ++i)
    if (!doc.has_type(list[i], t)) expect_type(doc, list[i], path_index(list_path, i), t);
}

void reject_unknown_keys(const Value& obj, std::string_view obj_path,
                         std::initializer_list<std::string_view> allowed) {
  if (!obj.IsObject()) return;
  for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it) {
    std::string_view k(it->name.GetString(), it->name.GetStringLength());
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
      bad_request("Argument \"" + std::string(k) + "\" at " + path_key(obj_path, k) + " is unexpected");
  }
}

// ---- JsonBody ----

JsonBody JsonBody::parse(const http::Request& req) { return parse(std::string_view(req.body)); }

JsonBody JsonBody::parse(std::string_view body) {
  // api.md §1: the body is JSON whatever the Content-Type; UTF-8 is checked first.
  if (!http::valid_utf8(body)) bad_request("Malformed payload");
  JsonBody b;
  if (!b.doc_.parse(body) || !b.doc_.root().IsObject()) bad_request("Malformed JSON");
  return b;
}

std::string JsonBody::path_of(std::string_view key) { return path_key("request", key); }

const Value* JsonBody::get(std::string_view key, JType t, Presence p, Null n) const {
  return get_member(doc_, doc_.root(), "request", key, t, p, n);
}

std::optional<JsonInt> JsonBody::get_int(std::string_view key, Presence p, Null n) const {
  const Value* v = get(key, JType::integer, p, n);
  if (v == nullptr) return std::nullopt;
  return doc_.as_int(*v);
}

std::optional<std::string> JsonBody::get_str(std::string_view key, Presence p, Null n) const {
  const Value* v = get(key, JType::string, p, n);
  if (v == nullptr) return std::nullopt;
  return std::string(v->GetString(), v->GetStringLength());
}

void JsonBody::reject_unknown(std::initializer_list<std::string_view> allowed) const {
  reject_unknown_keys(doc_.root(), "request", allowed);
}

// ---- FormParams ----

FormParams FormParams::from_request(const http::Request& req) {
  http::FormFields query;
  http::FormFields body;
  std::string err;
  if (!http::decode_urlencoded(req.query, query, err) ||
      !http::decode_form_body(req.header("content-type"), req.body, body, err)) {
    // err names the defect, never the content.
    bad_request("Malformed payload");
  }
  return from_fields(query, body);
}

FormParams FormParams::from_fields(const http::FormFields& query, const http::FormFields& body) {
  FormParams p;
  // Zulip reads request.POST before request.GET, and a QueryDict yields a name's last value.
  for (const auto* fields : {&query, &body})
    for (const auto& [name, value] : *fields) p.params_[name] = Entry{value, false};
  return p;
}

FormParams::Entry* FormParams::lookup(std::string_view name, bool required, std::string_view alias) {
  auto it = params_.find(name);
  auto alias_it = alias.empty() ? params_.end() : params_.find(alias);
  if (it != params_.end() && alias_it != params_.end()) {
    ApiError e{400, "REQUEST_CONFUSING_VAR",
               "Can't decide between '" + std::string(name) + "' and '" + std::string(alias) + "' arguments",
               {},
               {}};
    e.extra.emplace_back("var_name1", json_quote(name));
    e.extra.emplace_back("var_name2", json_quote(alias));
    throw e;
  }
  if (it == params_.end()) it = alias_it;
  if (it == params_.end()) {
    if (required) throw missing_argument(name);
    return nullptr;
  }
  it->second.used = true;
  return &it->second;
}

std::optional<std::string> FormParams::str(std::string_view name, bool required, std::string_view alias) {
  Entry* e = lookup(name, required, alias);
  if (e == nullptr) return std::nullopt;
  return e->value;
}

std::optional<std::string> FormParams::stripped_str(std::string_view name, bool required,
                                                    std::string_view alias) {
  Entry* e = lookup(name, required, alias);
  if (e == nullptr) return std::nullopt;
  std::string v = strip_whitespace(e->value);
  if (v.empty()) bad_request(std::string(name) + " cannot be blank");
  return v;
}

std::optional<JsonInt> FormParams::json_int(std::string_view name, bool required, std::string_view alias) {
  Entry* e = lookup(name, required, alias);
  if (e == nullptr) return std::nullopt;
  JsonDoc doc;
  if (!doc.parse(e->value)) {
    if (is_nan_or_infinity(e->value)) bad_request(std::string(name) + " is not an integer");
    bad_request(std::string(name) + " is not valid JSON");
  }
  std::optional<JsonInt> v = doc.as_int(doc.root());
  if (!v) bad_request(std::string(name) + " is not an integer");
  return v;
}

std::optional<JsonDoc> FormParams::json(std::string_view name, bool required, std::string_view alias) {
  Entry* e = lookup(name, required, alias);
  if (e == nullptr) return std::nullopt;
  JsonDoc doc;
  if (!doc.parse(e->value)) {
    if (!is_nan_or_infinity(e->value)) bad_request(std::string(name) + " is not valid JSON");
    // Python's json reads NaN/Infinity as floats: keep them as such for the type checks.
    std::string_view t = e->value;
    double x = t.find("NaN") != std::string_view::npos ? std::numeric_limits<double>::quiet_NaN()
               : t.find('-') != std::string_view::npos ? -std::numeric_limits<double>::infinity()
                                                       : std::numeric_limits<double>::infinity();
    doc.document().SetDouble(x);
  }
  return doc;
}

const std::string* FormParams::raw(std::string_view name) const {
  auto it = params_.find(name);
  return it == params_.end() ? nullptr : &it->second.value;
}

void FormParams::mark_used(std::string_view name) {
  auto it = params_.find(name);
  if (it != params_.end()) it->second.used = true;
}

std::vector<std::string> FormParams::unused() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : params_)
    if (!e.used) out.push_back(name);
  return out;  // std::map iterates in byte order: already sorted
}

}  // namespace aloha::api
