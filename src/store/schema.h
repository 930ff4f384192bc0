// Schema migrations of the store: an ordered list of SQL scripts. Migration i (0-based) takes
// PRAGMA user_version from i to i+1; Database applies each in its own transaction. Append only:
// never edit a migration that has shipped.
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace aloha::store {

const std::vector<std::string_view>& migrations();

// Schema v3's legacy_devices ids (see kV3 in schema.cpp): a user's rows have ids in
// [lo, hi] = server_id << 40 | bucket(identity) << 12 | 0..4095. Other identities may share the
// range (same bucket), so queries also name server_id and identity. Exactly one identity: user_id
// when set, else user_uuid (lowercase). nullopt for a server_id the layout cannot hold.
struct DeviceIdRange {
  int64_t lo = 0;
  int64_t hi = 0;
};
constexpr int64_t kLegacyDeviceSeqs = 4096;
constexpr int64_t kMaxLegacyDeviceServerId = (int64_t{1} << 23) - 1;
std::optional<DeviceIdRange> legacy_device_id_range(int64_t server_id, std::optional<int64_t> user_id,
                                                    std::string_view user_uuid);

}  // namespace aloha::store
