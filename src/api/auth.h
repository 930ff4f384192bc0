// HTTP Basic authentication of a self-hosted server (api.md §2): parses the Authorization header,
// looks the org id up and compares the key in constant time. Every refusal is an ApiError with the
// spec's status, code and message; 401s carry WWW-Authenticate.
#pragma once
#include <memory>

#include "api/api_error.h"
#include "api/router.h"

namespace aloha::api {

// Returns the authenticated, active server (a row shared with the Servers cache: its
// last_request_ms is not current), or throws ApiError.
std::shared_ptr<const store::ServerRow> authenticate(Services& svc, const http::Request& req);

// The 401 of api.md §2 (code UNAUTHORIZED unless given), with WWW-Authenticate.
ApiError unauthorized(std::string msg, std::string code = "UNAUTHORIZED");

inline constexpr const char* kDeactivatedMsg =
    "The mobile push notification service registration for your server has been deactivated";

}  // namespace aloha::api
