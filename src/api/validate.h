// Input validators for the API parameters of api.md §3: UUIDs, hostnames, email addresses, iOS app
// ids, hex tokens and access tokens. Pure functions on borrowed text; no allocation except where a
// std::string is returned. Length limits stated in api.md are checked by the callers unless noted.
#pragma once
#include <string>
#include <string_view>

namespace aloha::api::validate {

// `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`: lowercase hex, version 4, y one of 8 9 a b.
bool is_canonical_uuid4(std::string_view s);

// 8-4-4-4-12 hex digits, any case, any version.
bool is_uuid(std::string_view s);
// is_uuid(s), and when it is, s lower-cased in place (one pass; push/notify checks two per request).
// When it is not, s may be partly lower-cased.
bool lower_uuid_in_place(std::string& s);

// ASCII letters lower-cased, every other byte unchanged.
std::string ascii_lower(std::string_view s);
// The same, in place (no allocation).
void ascii_lower_in_place(std::string& s);

// server/register: the hostname contains '/', '?' or '#' (a path, query or fragment).
bool hostname_has_invalid_components(std::string_view s);

// server/register hostname: a DNS name of at least two labels (optional trailing dot),
// `localhost`, an IPv4 dotted quad without leading zeros, or `[IPv6]`; each optionally followed by
// `:` and 1-5 digits. Case-insensitive. The 128-character limit is the caller's.
bool is_valid_hostname(std::string_view s);

// `<local>@<domain>`, at most 320 characters; local a dot-atom (RFC 5322 atext), domain a DNS name
// as for hostnames, without trailing dot and without port.
bool is_valid_email(std::string_view s);

// The part after the last '@', ASCII-lower-cased ("" when there is no '@').
std::string email_domain_lower(std::string_view s);

// `^[.a-zA-Z0-9-]+$` (the APNs topic).
bool is_ios_app_id(std::string_view s);

// Non-empty, even length, hex digits of any case (APNs device tokens).
bool is_even_hex(std::string_view s);

// 1-128 characters of A-Z a-z 0-9 _ - (server/register/verify_challenge).
bool is_access_token(std::string_view s);

}  // namespace aloha::api::validate
