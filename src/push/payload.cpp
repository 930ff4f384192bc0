#include "core/encoding.h"
#include "push/payload.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <unordered_set>

#include "push/pystr.h"

namespace aloha::push {
namespace {

using rapidjson::Value;

std::string_view name_of(const Value::ConstMemberIterator& m) {
  return {m->name.GetString(), m->name.GetStringLength()};
}

const Value* last_member(const Value& obj, std::string_view key) {
  if (!obj.IsObject()) return nullptr;
  const Value* found = nullptr;
  for (auto m = obj.MemberBegin(); m != obj.MemberEnd(); ++m)
    if (name_of(m) == key) found = &m->value;
  return found;
}

// Hash of a member name for for_each_unique's table: every byte counts (so crafted names cannot
// all collide cheaply), eight bytes per step.
uint64_t name_hash(std::string_view k) {
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ULL;
  uint64_t h = k.size() * kMul;
  size_t i = 0;
  for (; i + 8 <= k.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, k.data() + i, 8);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
  }
  if (i < k.size()) {
    uint64_t w = 0;
    std::memcpy(&w, k.data() + i, k.size() - i);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
  }
  return h;
}

// Calls f(key, value) once per distinct key of obj, at the key's first position with its last
// value: what Python's json.loads makes of repeated keys. Very small objects are scanned pairwise;
// objects of a usual payload's size (a Zulip gcm_payload has ~20 keys) through an open-addressing
// table on the stack, so neither allocates; larger ones use a hash index.
template <class F>
void for_each_unique(const Value& obj, F&& f) {
  const auto n = obj.MemberCount();
  auto begin = obj.MemberBegin();
  if (n <= 8) {
    for (rapidjson::SizeType i = 0; i < n; ++i) {
      std::string_view k = name_of(begin + i);
      bool earlier = false;
      for (rapidjson::SizeType j = 0; j < i && !earlier; ++j) earlier = name_of(begin + j) == k;
      if (earlier) continue;
      const Value* v = &(begin + i)->value;
      for (rapidjson::SizeType j = i + 1; j < n; ++j)
        if (name_of(begin + j) == k) v = &(begin + j)->value;
      f(k, *v);
    }
    return;
  }
  constexpr rapidjson::SizeType kMaxTabled = 128;
  if (n <= kMaxTabled) {
    // slot: member index + 1 (0: empty); at most half full. last[i]: for a first occurrence the
    // index of the key's last one, kRepeat for a later occurrence.
    constexpr uint8_t kRepeat = 0xFF;
    uint8_t slots[2 * kMaxTabled];
    uint8_t last[kMaxTabled];
    const size_t mask = std::bit_ceil(2 * static_cast<size_t>(n)) - 1;
    std::memset(slots, 0, mask + 1);
    for (rapidjson::SizeType i = 0; i < n; ++i) {
      std::string_view k = name_of(begin + i);
      size_t h = static_cast<size_t>(name_hash(k)) & mask;
      last[i] = static_cast<uint8_t>(i);
      for (; slots[h] != 0; h = (h + 1) & mask) {
        const uint8_t first = static_cast<uint8_t>(slots[h] - 1);
        if (name_of(begin + first) == k) {
          last[first] = static_cast<uint8_t>(i);
          last[i] = kRepeat;
          break;
        }
      }
      if (last[i] != kRepeat) slots[h] = static_cast<uint8_t>(i + 1);
    }
    for (rapidjson::SizeType i = 0; i < n; ++i)
      if (last[i] != kRepeat) f(name_of(begin + i), (begin + last[i])->value);
    return;
  }
  std::unordered_map<std::string_view, const Value*> last;
  last.reserve(n);
  for (auto m = begin; m != obj.MemberEnd(); ++m) last[name_of(m)] = &m->value;
  std::unordered_set<std::string_view> done;
  done.reserve(n);
  for (auto m = begin; m != obj.MemberEnd(); ++m) {
    std::string_view k = name_of(m);
    if (!done.insert(k).second) continue;
    f(k, *last[k]);
  }
}

bool contains_big(const Value& v, const BigInts& big) {
  if (big.lookup == nullptr) return false;
  if (v.IsDouble()) return big.text(v) != nullptr;
  if (v.IsArray()) {
    for (const auto& item : v.GetArray())
      if (contains_big(item, big)) return true;
  } else if (v.IsObject()) {
    for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m)
      if (contains_big(m->value, big)) return true;
  }
  return false;
}

void append_int(std::string& out, int64_t i) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, i);
  out.append(buf, r.ptr);
}

struct RemoveId {
  bool neg;
  std::string_view digits;  // canonical: no leading zeros, "0" for zero (never negative)
};

bool id_less(const RemoveId& a, const RemoveId& b) {
  if (a.neg != b.neg) return a.neg;
  // Same sign: compare magnitudes (length first: no leading zeros), reversed for negatives.
  int c = a.digits.size() != b.digits.size() ? (a.digits.size() < b.digits.size() ? -1 : 1)
                                             : a.digits.compare(b.digits);
  return a.neg ? c > 0 : c < 0;
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) { enc::append_json_string(out, s); }

void append_json(std::string& out, const Value& v, const BigInts& big) {
  switch (v.GetType()) {
    case rapidjson::kNullType: out += "null"; break;
    case rapidjson::kFalseType: out += "false"; break;
    case rapidjson::kTrueType: out += "true"; break;
    case rapidjson::kStringType: append_json_string(out, {v.GetString(), v.GetStringLength()}); break;
    case rapidjson::kNumberType:
      if (v.IsInt64()) {
        append_int(out, v.GetInt64());
      } else if (v.IsUint64()) {
        char buf[24];
        auto r = std::to_chars(buf, buf + sizeof buf, v.GetUint64());
        out.append(buf, r.ptr);
      } else if (const std::string* t = big.text(v)) {
        out += *t;
      } else {
        double d = v.GetDouble();
        // Python's json.dumps spells these so; they only arise from its non-standard literals.
        if (std::isnan(d)) out += "NaN";
        else if (std::isinf(d)) out += d > 0 ? "Infinity" : "-Infinity";
        else out += python_float_repr(d);
      }
      break;
    case rapidjson::kArrayType: {
      out.push_back('[');
      bool first = true;
      for (const auto& item : v.GetArray()) {
        if (!first) out.push_back(',');
        first = false;
        append_json(out, item, big);
      }
      out.push_back(']');
      break;
    }
    case rapidjson::kObjectType: {
      out.push_back('{');
      bool first = true;
      for_each_unique(v, [&](std::string_view k, const Value& val) {
        if (!first) out.push_back(',');
        first = false;
        append_json_string(out, k);
        out.push_back(':');
        append_json(out, val, big);
      });
      out.push_back('}');
      break;
    }
  }
}

std::string to_json(const Value& v, const BigInts& big) {
  std::string out;
  append_json(out, v, big);
  return out;
}

std::string py_str(const Value& v, const BigInts& big) {
  if (v.IsString()) return std::string(v.GetString(), v.GetStringLength());
  return py_repr(v, big);
}

std::string py_repr(const Value& v, const BigInts& big) {
  if (const std::string* t = big.text(v)) return *t;
  if ((v.IsObject() || v.IsArray()) && contains_big(v, big)) {
    // python_str_json reads integers of any size from the text exactly.
    std::string out;
    if (python_str_json(to_json(v, big), out)) return out;
  }
  return python_repr(v);
}

// ---- JsonObjectText ----

void JsonObjectText::set(std::string_view key, std::string value_json) {
  constexpr size_t kIndexFrom = 16;
  if (entries_.size() < kIndexFrom) {
    for (auto& e : entries_) {
      if (e.first == key) {
        e.second = std::move(value_json);
        return;
      }
    }
  } else {
    if (index_.empty())
      for (size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].first, i);
    auto it = index_.find(std::string(key));
    if (it != index_.end()) {
      entries_[it->second].second = std::move(value_json);
      return;
    }
    index_.emplace(std::string(key), entries_.size());
  }
  entries_.emplace_back(std::string(key), std::move(value_json));
}

std::string JsonObjectText::text() const {
  size_t n = 2;
  for (const auto& e : entries_) n += e.first.size() + e.second.size() + 4;
  std::string out;
  out.reserve(n);
  out.push_back('{');
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (i) out.push_back(',');
    append_json_string(out, entries_[i].first);
    out.push_back(':');
    out += entries_[i].second;
  }
  out.push_back('}');
  return out;
}

JsonObjectText object_text(const Value& obj, const BigInts& big) {
  JsonObjectText out;
  if (obj.IsObject())
    for_each_unique(obj, [&](std::string_view k, const Value& v) { out.set(k, to_json(v, big)); });
  return out;
}

// ---- remove ids ----

bool truncate_remove_ids(std::string_view text, std::string& out) {
  std::vector<RemoveId> ids;
  size_t pos = 0;
  while (true) {
    size_t end = text.find(',', pos);
    std::string_view item = text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    bool neg = !item.empty() && item.front() == '-';
    if (neg) item.remove_prefix(1);
    if (item.empty()) return false;  // "", "-", or an empty item between commas
    for (char c : item)
      if (c < '0' || c > '9') return false;
    size_t nz = item.find_first_not_of('0');
    if (nz == std::string_view::npos) {
      ids.push_back({false, "0"});  // Python: int("-0") == 0
    } else {
      ids.push_back({neg, item.substr(nz)});
    }
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  // Keep the kMaxRemoveIds largest, ascending (Zulip: sorted(ids)[-200:]).
  auto first = ids.begin();
  if (ids.size() > kMaxRemoveIds) {
    first = ids.end() - static_cast<std::ptrdiff_t>(kMaxRemoveIds);
    std::nth_element(ids.begin(), first, ids.end(), id_less);
  }
  std::sort(first, ids.end(), id_less);
  out.clear();
  for (auto it = first; it != ids.end(); ++it) {
    if (it != first) out.push_back(',');
    if (it->neg) out.push_back('-');
    out += it->digits;
  }
  return true;
}

RemoveIds rewrite_remove_ids(Value& payload, rapidjson::Document::AllocatorType& alloc) {
  if (!payload.IsObject()) return RemoveIds::untouched;
  const Value* event = last_member(payload, "event");
  if (event == nullptr || !event->IsString() || std::string_view(event->GetString(), event->GetStringLength()) != "remove")
    return RemoveIds::untouched;
  Value* ids = const_cast<Value*>(last_member(payload, "zulip_message_ids"));
  if (ids == nullptr || ids->IsNull()) return RemoveIds::untouched;
  if (ids->IsString() && ids->GetStringLength() == 0) return RemoveIds::untouched;
  if (!ids->IsString()) return RemoveIds::invalid;
  std::string out;
  if (!truncate_remove_ids({ids->GetString(), ids->GetStringLength()}, out)) return RemoveIds::invalid;
  ids->SetString(out.data(), static_cast<rapidjson::SizeType>(out.size()), alloc);
  return RemoveIds::rewritten;
}

// ---- bodies ----

std::string build_apns_body(const Value& apns_payload, const BigInts& big) {
  // Zulip: message = {**payload.pop("custom", {}), "aps": payload}. Written straight into one
  // string (no per-key value strings): custom's distinct keys in order, "aps" taking the place
  // of a custom "aps" key if there is one (dict update keeps the position), else coming last.
  std::string out;
  out.reserve(1024);  // a usual Zulip message body fits: no regrowth
  bool first = true;
  bool aps_written = false;
  auto write_aps = [&] {
    out += "\"aps\":{";
    bool first_aps = true;
    if (apns_payload.IsObject())
      for_each_unique(apns_payload, [&](std::string_view k, const Value& v) {
        if (k == "custom") return;
        if (!first_aps) out.push_back(',');
        first_aps = false;
        append_json_string(out, k);
        out.push_back(':');
        append_json(out, v, big);
      });
    out.push_back('}');
    aps_written = true;
  };
  out.push_back('{');
  const Value* custom = last_member(apns_payload, "custom");
  if (custom != nullptr && custom->IsObject())
    for_each_unique(*custom, [&](std::string_view k, const Value& v) {
      if (!first) out.push_back(',');
      first = false;
      if (k == "aps") {
        write_aps();
        return;
      }
      append_json_string(out, k);
      out.push_back(':');
      append_json(out, v, big);
    });
  if (!aps_written) {
    if (!first) out.push_back(',');
    write_aps();
  }
  out.push_back('}');
  return out;
}

namespace {

// value as the JSON string of Python's str(value) (an FCM data value). Strings, integers and the
// constants are written straight into out; the rest goes through py_str.
void append_py_str_quoted(std::string& out, const Value& v, const BigInts& big) {
  switch (v.GetType()) {
    case rapidjson::kStringType: append_json_string(out, {v.GetString(), v.GetStringLength()}); return;
    case rapidjson::kNullType: out += "\"None\""; return;
    case rapidjson::kFalseType: out += "\"False\""; return;
    case rapidjson::kTrueType: out += "\"True\""; return;
    case rapidjson::kNumberType:
      if (v.IsInt64()) {
        out.push_back('"');
        append_int(out, v.GetInt64());
        out.push_back('"');
        return;
      }
      if (v.IsUint64()) {
        char buf[24];
        auto r = std::to_chars(buf, buf + sizeof buf, v.GetUint64());
        out.push_back('"');
        out.append(buf, r.ptr);
        out.push_back('"');
        return;
      }
      break;
    default: break;
  }
  append_json_string(out, py_str(v, big));
}

}  // namespace

std::string build_fcm_data(const Value& payload, const BigInts& big,
                           const std::vector<std::pair<std::string_view, std::string>>& extra) {
  // FCM data values must be strings; Zulip-derived apps read Python's str() of each.
  if (extra.empty()) {
    // The notify path: payload keys are distinct after for_each_unique, so the object is written
    // straight into one string.
    std::string out;
    out.reserve(1024);
    out.push_back('{');
    bool first = true;
    if (payload.IsObject())
      for_each_unique(payload, [&](std::string_view k, const Value& v) {
        if (!first) out.push_back(',');
        first = false;
        append_json_string(out, k);
        out.push_back(':');
        append_py_str_quoted(out, v, big);
      });
    out.push_back('}');
    return out;
  }
  JsonObjectText data;
  if (payload.IsObject())
    for_each_unique(payload, [&](std::string_view k, const Value& v) {
      std::string q;
      append_py_str_quoted(q, v, big);
      data.set(k, std::move(q));
    });
  auto quoted = [](std::string_view s) {
    std::string q;
    q.reserve(s.size() + 2);
    append_json_string(q, s);
    return q;
  };
  for (const auto& [k, v] : extra) data.set(k, quoted(v));
  return data.text();
}

bool fcm_priority(const Value* gcm_options, const Value& gcm_payload, const BigInts& big, bool& high,
                  std::string& error) {
  const Value* pr = gcm_options != nullptr ? last_member(*gcm_options, "priority") : nullptr;
  if (pr == nullptr || pr->IsNull()) {
    const Value* event = last_member(gcm_payload, "event");
    high = event != nullptr && event->IsString() &&
           std::string_view(event->GetString(), event->GetStringLength()) == "message";
  } else if (pr->IsString() && std::string_view(pr->GetString(), pr->GetStringLength()) == "high") {
    high = true;
  } else if (pr->IsString() && std::string_view(pr->GetString(), pr->GetStringLength()) == "normal") {
    high = false;
  } else {
    error = "Invalid GCM option to bouncer: priority " + py_repr(*pr, big);
    return false;
  }
  if (gcm_options != nullptr && gcm_options->IsObject()) {
    JsonObjectText rest;
    for_each_unique(*gcm_options, [&](std::string_view k, const Value& v) {
      if (k != "priority") rest.set(k, to_json(v, big));
    });
    if (!rest.empty()) {
      error = "Invalid GCM options to bouncer: " + rest.text();
      return false;
    }
  }
  return true;
}

std::string build_test_apns_body(std::string_view p_json, std::string_view realm_name,
                                 std::string_view realm_url) {
  std::string body_text = "This is a test notification from ";
  body_text += realm_name;
  body_text += " (";
  body_text += realm_url;
  body_text += ").";
  std::string out = "{\"zulip\":";
  out += p_json;
  out += ",\"aps\":{\"alert\":{\"title\":\"Test notification\",\"body\":";
  append_json_string(out, body_text);
  out += "},\"sound\":\"default\"}}";
  return out;
}

}  // namespace aloha::push
