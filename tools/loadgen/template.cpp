#include "template.h"

namespace aloha::loadgen {

namespace {

[[noreturn]] void fail(size_t offset, const std::string& what) {
  throw TemplateError("template offset " + std::to_string(offset) + ": " + what);
}

// Appends v in decimal without going through snprintf's locale machinery (this runs per request).
void append_decimal(uint64_t v, std::string& out) {
  char buf[24];
  size_t pos = sizeof buf;
  do {
    buf[--pos] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  out.append(buf + pos, sizeof buf - pos);
}

void append_hex(uint64_t v, unsigned width, std::string& out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  char buf[16];
  size_t pos = sizeof buf;
  do {
    buf[--pos] = kDigits[v & 0xf];
    v >>= 4;
  } while (v != 0);
  size_t digits = sizeof buf - pos;
  if (width > digits) out.append(width - digits, '0');
  out.append(buf + pos, digits);
}

bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + static_cast<uint64_t>(ch - '0');
  }
  out = v;
  return true;
}

}  // namespace

std::vector<Template::Term> Template::compile_expr(std::string_view expr, size_t offset) {
  std::vector<Term> terms;
  size_t pos = 0;
  Op op = Op::add;
  while (true) {
    while (pos < expr.size() && expr[pos] == ' ') ++pos;
    if (pos >= expr.size()) fail(offset + pos, "expected an operand (n, i, c or a number)");
    Term t;
    t.op = op;
    char ch = expr[pos];
    if (ch == 'n' || ch == 'i' || ch == 'c') {
      t.operand = ch == 'n' ? Operand::n : ch == 'i' ? Operand::i : Operand::c;
      ++pos;
    } else if (ch >= '0' && ch <= '9') {
      size_t end = pos;
      while (end < expr.size() && expr[end] >= '0' && expr[end] <= '9') ++end;
      if (!parse_u64(expr.substr(pos, end - pos), t.literal)) fail(offset + pos, "number too large");
      t.operand = Operand::literal;
      pos = end;
    } else {
      fail(offset + pos, std::string("unexpected '") + ch + "' (operands: n, i, c, numbers)");
    }
    if ((t.op == Op::div || t.op == Op::mod) && t.operand == Operand::literal && t.literal == 0)
      fail(offset + pos, "division by zero");
    terms.push_back(t);
    while (pos < expr.size() && expr[pos] == ' ') ++pos;
    if (pos >= expr.size()) break;
    switch (expr[pos]) {
      case '+': op = Op::add; break;
      case '-': op = Op::sub; break;
      case '*': op = Op::mul; break;
      case '/': op = Op::div; break;
      case '%': op = Op::mod; break;
      default: fail(offset + pos, std::string("unexpected '") + expr[pos] + "' (operators: + - * / %)");
    }
    ++pos;
  }
  return terms;
}

uint64_t Template::eval(const std::vector<Term>& expr, const TemplateVars& vars) {
  uint64_t acc = 0;
  for (const Term& t : expr) {
    uint64_t v = t.operand == Operand::n   ? vars.n
                 : t.operand == Operand::i ? vars.i
                 : t.operand == Operand::c ? vars.c
                                           : t.literal;
    switch (t.op) {
      case Op::add: acc += v; break;
      case Op::sub: acc -= v; break;
      case Op::mul: acc *= v; break;
      // A variable divisor of 0 (e.g. `n/c` on connection 0) yields 0 rather than a crash.
      case Op::div: acc = v == 0 ? 0 : acc / v; break;
      case Op::mod: acc = v == 0 ? 0 : acc % v; break;
    }
  }
  return acc;
}

Template::Template(std::string_view text) {
  std::string lit;
  size_t pos = 0;
  auto flush_literal = [&] {
    if (lit.empty()) return;
    Segment s;
    s.kind = Kind::literal;
    s.text = std::move(lit);
    segments_.push_back(std::move(s));
    lit.clear();
  };
  while (pos < text.size()) {
    char ch = text[pos];
    if (ch != '$') {
      lit.push_back(ch);
      ++pos;
      continue;
    }
    if (pos + 1 < text.size() && text[pos + 1] == '$') {
      lit.push_back('$');
      pos += 2;
      continue;
    }
    if (pos + 1 >= text.size() || text[pos + 1] != '{') {
      lit.push_back('$');  // a lone `$` is literal (JSON and form bodies rarely contain one)
      ++pos;
      continue;
    }
    size_t start = pos + 2;
    size_t close = text.find('}', start);
    if (close == std::string_view::npos) fail(pos, "unterminated ${");
    std::string_view inner = text.substr(start, close - start);
    flush_literal();
    Segment s;
    if (inner.substr(0, 5) == "pick:") {
      size_t colon = inner.find(':', 5);
      if (colon == std::string_view::npos) fail(start, "pick needs ${pick:EXPR:a|b|...}");
      s.kind = Kind::pick;
      s.expr = compile_expr(inner.substr(5, colon - 5), start + 5);
      std::string_view items = inner.substr(colon + 1);
      size_t b = 0;
      while (true) {
        size_t bar = items.find('|', b);
        s.items.emplace_back(items.substr(b, bar == std::string_view::npos ? items.npos : bar - b));
        if (bar == std::string_view::npos) break;
        b = bar + 1;
      }
    } else if (inner.substr(0, 3) == "hex") {
      size_t colon = inner.find(':');
      if (colon == std::string_view::npos) fail(start, "hex needs ${hexW:EXPR}");
      std::string_view w = inner.substr(3, colon - 3);
      uint64_t width = 0;
      if (!w.empty() && (!parse_u64(w, width) || width < 1 || width > 128))
        fail(start + 3, "hex width must be 1..128");
      s.kind = Kind::hex;
      s.width = static_cast<unsigned>(width);
      s.expr = compile_expr(inner.substr(colon + 1), start + colon + 1);
    } else {
      s.kind = Kind::decimal;
      s.expr = compile_expr(inner, start);
    }
    segments_.push_back(std::move(s));
    pos = close + 1;
  }
  flush_literal();
}

bool Template::constant() const {
  for (const Segment& s : segments_)
    if (s.kind != Kind::literal) return false;
  return true;
}

void Template::render(const TemplateVars& vars, std::string& out) const {
  for (const Segment& s : segments_) {
    switch (s.kind) {
      case Kind::literal: out.append(s.text); break;
      case Kind::decimal: append_decimal(eval(s.expr, vars), out); break;
      case Kind::hex: append_hex(eval(s.expr, vars), s.width, out); break;
      case Kind::pick: out.append(s.items[eval(s.expr, vars) % s.items.size()]); break;
    }
  }
}

}  // namespace aloha::loadgen
