// Schema migrations of the store: an ordered list of SQL scripts. Migration i (0-based) takes
// PRAGMA user_version from i to i+1; Database applies each in its own transaction. Append only:
// never edit a migration that has shipped.
#pragma once
#include <string_view>
#include <vector>

namespace aloha::store {

const std::vector<std::string_view>& migrations();

}  // namespace aloha::store
