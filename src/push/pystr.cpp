#include "push/pystr.h"

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace aloha::push {

namespace {

struct Range {
  uint32_t lo, hi;
};
// Inclusive, sorted ranges of code points for which str.isprintable() is false in CPython 3.11
// (Unicode categories Cc, Cf, Cs, Co, Cn, Zl, Zp and Zs other than U+0020).
constexpr Range kNonPrintable[] = {
#include "push/pystr_table.inc"
};

constexpr char kHex[] = "0123456789abcdef";

// In python_str_json's private document, raw number texts are stored as strings that begin with
// this byte. Validated UTF-8 (kParseValidateEncodingFlag) can never contain 0xFF, so a real JSON
// string cannot be mistaken for a number. The marker never leaves this file.
constexpr char kRawNumberMark = '\xFF';

void append_escape(std::string& out, char kind, uint32_t cp, int digits) {
  out += '\\';
  out += kind;
  for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) out += kHex[(cp >> shift) & 0xf];
}

// Decodes one UTF-8 sequence at s[i]. Surrogates encoded in three bytes are decoded too: RapidJSON
// turns a lone "\udc00" escape into those bytes, and Python keeps such a lone surrogate in the
// str (repr: '\udc00'). Returns the length, or 0 for a byte that starts no sequence.
size_t decode_utf8(std::string_view s, size_t i, uint32_t& cp) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t len;
  uint32_t min;
  if (c < 0x80) {
    cp = c;
    return 1;
  } else if (c >= 0xc2 && c <= 0xdf) {
    len = 2; cp = c & 0x1f; min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3; cp = c & 0x0f; min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4; cp = c & 0x07; min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() - i < len) return 0;
  for (size_t k = 1; k < len; ++k) {
    auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3f);
  }
  if (cp < min || cp > 0x10ffff) return 0;
  return len;
}

// Python int(text) of a JSON integer literal: JSON forbids leading zeros and '+', so the text is
// already canonical except for "-0".
std::string int_text(std::string_view raw) {
  if (raw == "-0") return "0";
  return std::string(raw);
}

std::string raw_number_repr(std::string_view raw) {
  if (raw.find_first_of(".eE") == std::string_view::npos) return int_text(raw);
  // json.loads uses float(text): correctly rounded, overflowing to inf ("1e400" -> inf). strtod
  // does the same; the process never calls setlocale(), so the decimal point is '.'.
  std::string z(raw);
  return python_float_repr(std::strtod(z.c_str(), nullptr));
}

class Printer {
 public:
  explicit Printer(bool raw_numbers) : raw_numbers_(raw_numbers) {}

  void str(const rapidjson::Value& v, std::string& out) {
    if (v.IsString() && !is_raw_number(v)) {
      out.append(v.GetString(), v.GetStringLength());
    } else {
      repr(v, out, 0);
    }
  }

  void repr(const rapidjson::Value& v, std::string& out, int depth) {
    if (depth > kPyStrMaxDepth) throw std::invalid_argument("JSON nested too deeply");
    switch (v.GetType()) {
      case rapidjson::kNullType: out += "None"; break;
      case rapidjson::kFalseType: out += "False"; break;
      case rapidjson::kTrueType: out += "True"; break;
      case rapidjson::kNumberType:
        if (v.IsDouble()) out += python_float_repr(v.GetDouble());
        else if (v.IsInt64()) out += std::to_string(v.GetInt64());
        else out += std::to_string(v.GetUint64());
        break;
      case rapidjson::kStringType: {
        std::string_view s(v.GetString(), v.GetStringLength());
        if (is_raw_number(v)) out += raw_number_repr(s.substr(1));
        else out += python_string_repr(s);
        break;
      }
      case rapidjson::kArrayType: {
        out += '[';
        bool first = true;
        for (const auto& item : v.GetArray()) {
          if (!first) out += ", ";
          first = false;
          repr(item, out, depth + 1);
        }
        out += ']';
        break;
      }
      case rapidjson::kObjectType: {
        // json.loads builds a dict: a repeated key keeps the position of its first occurrence
        // and the value of its last.
        out += '{';
        bool first = true;
        const auto end = v.MemberEnd();
        for (auto m = v.MemberBegin(); m != end; ++m) {
          std::string_view key(m->name.GetString(), m->name.GetStringLength());
          bool seen_before = false;
          for (auto p = v.MemberBegin(); p != m; ++p) {
            if (std::string_view(p->name.GetString(), p->name.GetStringLength()) == key) {
              seen_before = true;
              break;
            }
          }
          if (seen_before) continue;
          auto last = m;
          for (auto q = m + 1; q != end; ++q) {
            if (std::string_view(q->name.GetString(), q->name.GetStringLength()) == key) last = q;
          }
          if (!first) out += ", ";
          first = false;
          out += python_string_repr(key);
          out += ": ";
          repr(last->value, out, depth + 1);
        }
        out += '}';
        break;
      }
    }
  }

 private:
  bool is_raw_number(const rapidjson::Value& v) const {
    return raw_numbers_ && v.IsString() && v.GetStringLength() > 0 &&
           v.GetString()[0] == kRawNumberMark;
  }
  bool raw_numbers_;
};

// SAX handler for python_str_json: forwards to the document, numbers as marked raw text.
struct RawNumberHandler {
  rapidjson::Document& doc;
  int depth = 0;
  bool Null() { return doc.Null(); }
  bool Bool(bool b) { return doc.Bool(b); }
  bool Int(int i) { return doc.Int(i); }
  bool Uint(unsigned i) { return doc.Uint(i); }
  bool Int64(int64_t i) { return doc.Int64(i); }
  bool Uint64(uint64_t i) { return doc.Uint64(i); }
  bool Double(double d) { return doc.Double(d); }
  bool RawNumber(const char* str, rapidjson::SizeType len, bool) {
    std::string marked(1, kRawNumberMark);
    marked.append(str, len);
    return doc.String(marked.data(), static_cast<rapidjson::SizeType>(marked.size()), true);
  }
  bool String(const char* str, rapidjson::SizeType len, bool copy) { return doc.String(str, len, copy); }
  bool StartObject() { return ++depth <= kPyStrMaxDepth && doc.StartObject(); }
  bool Key(const char* str, rapidjson::SizeType len, bool copy) { return doc.Key(str, len, copy); }
  bool EndObject(rapidjson::SizeType n) { --depth; return doc.EndObject(n); }
  bool StartArray() { return ++depth <= kPyStrMaxDepth && doc.StartArray(); }
  bool EndArray(rapidjson::SizeType n) { --depth; return doc.EndArray(n); }
};

}  // namespace

bool python_printable(uint32_t cp) {
  const Range* end = std::end(kNonPrintable);
  const Range* it = std::upper_bound(std::begin(kNonPrintable), end, cp,
                                     [](uint32_t c, const Range& r) { return c < r.lo; });
  if (it == std::begin(kNonPrintable)) return true;
  --it;
  return cp > it->hi;
}

std::string python_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  // Shortest round-trip digits (what CPython's repr uses, via dtoa mode 0), in scientific form.
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(r.ptr - buf));
  size_t e_pos = sci.find('e');
  int exp10 = 0;
  std::from_chars(sci.data() + e_pos + (sci[e_pos + 1] == '+' ? 2 : 1), sci.data() + sci.size(), exp10);
  // CPython (float_repr_style 'short', format code 'r'): fixed notation when the decimal
  // exponent is in [-4, 16); 1e16 and 1e-05 switch to exponent form, which to_chars already
  // spells as Python does ("1e+16", "1.5e-07": sign and at least two digits).
  if (exp10 < -4 || exp10 >= 16) return std::string(sci);
  bool neg = sci[0] == '-';
  std::string digits;
  for (char c : sci.substr(0, e_pos))
    if (c >= '0' && c <= '9') digits += c;
  std::string out = neg ? "-" : "";
  int point = exp10 + 1;  // digits before the decimal point
  if (point <= 0) {
    out += "0.";
    out.append(static_cast<size_t>(-point), '0');
    out += digits;
  } else if (static_cast<size_t>(point) >= digits.size()) {
    out += digits;
    out.append(static_cast<size_t>(point) - digits.size(), '0');
    out += ".0";
  } else {
    out += digits.substr(0, static_cast<size_t>(point));
    out += '.';
    out += digits.substr(static_cast<size_t>(point));
  }
  return out;
}

std::string python_string_repr(std::string_view s) {
  // CPython unicode_repr: prefer single quotes; double quotes when the text has ' but no ".
  bool has_single = s.find('\'') != std::string_view::npos;
  bool has_double = s.find('"') != std::string_view::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out;
  out.reserve(s.size() + 2);
  out += quote;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    size_t len = decode_utf8(s, i, cp);
    if (len == 0) {
      // Not UTF-8 (cannot come from a parsed JSON string): show the byte rather than guess.
      append_escape(out, 'x', static_cast<unsigned char>(s[i]), 2);
      ++i;
      continue;
    }
    if (cp == static_cast<uint32_t>(quote) || cp == '\\') {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp < 0x80 ? (cp < 0x20 || cp == 0x7f) : !python_printable(cp)) {
      if (cp <= 0xff) append_escape(out, 'x', cp, 2);
      else if (cp <= 0xffff) append_escape(out, 'u', cp, 4);
      else append_escape(out, 'U', cp, 8);
    } else {
      out.append(s.substr(i, len));
    }
    i += len;
  }
  out += quote;
  return out;
}

std::string python_str(const rapidjson::Value& v) {
  std::string out;
  Printer(false).str(v, out);
  return out;
}

std::string python_repr(const rapidjson::Value& v) {
  std::string out;
  Printer(false).repr(v, out, 0);
  return out;
}

bool python_str_json(std::string_view json_text, std::string& out) {
  rapidjson::Document doc;
  bool ok = true;
  auto generate = [&](rapidjson::Document& d) {
    RawNumberHandler h{d};
    rapidjson::Reader reader;
    // A plain MemoryStream: json.loads() refuses a byte-order mark, so it must not be skipped.
    rapidjson::MemoryStream is(json_text.data(), json_text.size());
    auto res = reader.Parse<rapidjson::kParseNumbersAsStringsFlag |
                            rapidjson::kParseValidateEncodingFlag |
                            rapidjson::kParseStopWhenDoneFlag>(is, h);
    if (res.IsError()) {
      ok = false;
      return false;
    }
    // Only whitespace may follow the value.
    while (is.Peek() == ' ' || is.Peek() == '\t' || is.Peek() == '\n' || is.Peek() == '\r') is.Take();
    if (is.Tell() != json_text.size()) ok = false;
    return true;
  };
  doc.Populate(generate);
  if (!ok || doc.HasParseError()) return false;
  out.clear();
  Printer(true).str(doc, out);
  return true;
}

}  // namespace aloha::push
