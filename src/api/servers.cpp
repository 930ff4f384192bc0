// server/register and server/deactivate (api.md §3): creating, updating and deactivating a
// self-hosted server's registration, key rotation, and the audit log of each change.
#include <algorithm>

#include "api/auth.h"
#include "api/params.h"
#include "api/respond.h"
#include "api/router.h"
#include "api/validate.h"
#include "core/crypto.h"
#include "core/log.h"

namespace aloha::api {
namespace {

bool domain_blocked(const Config& cfg, const std::string& email) {
  std::string domain = validate::email_domain_lower(email);
  for (const auto& d : cfg.registration.blocked_email_domains)
    if (validate::ascii_lower(d) == domain) return true;
  return false;
}

ApiError hostname_taken(const std::string& hostname) {
  ApiError e = ApiError::bad_request("A server with hostname " + hostname + " already exists");
  e.code = "HOSTNAME_ALREADY_IN_USE_BOUNCER_ERROR";
  e.extra.push_back({"hostname", json_quote(hostname)});
  return e;
}

void server_register(Services& svc, const ExchangePtr& ex) {
  FormParams p = FormParams::from_request(ex->req);
  // (1) the parameters, in order: missing, type, length.
  std::string id = *p.stripped_str("aloha_org_id", true, "zulip_org_id");
  check_length("aloha_org_id", id, 36);
  std::string key = *p.stripped_str("aloha_org_key", true, "zulip_org_key");
  check_length("aloha_org_key", key, 64);
  std::string hostname = *p.str("hostname", true);
  check_max_length("hostname", hostname, 128);
  std::string email = *p.str("contact_email", true);
  check_max_length("contact_email", email, 320);
  std::optional<std::string> new_key = p.stripped_str("new_org_key", false);
  if (new_key) check_length("new_org_key", *new_key, 64);

  // (2) hostname, (3) email, (4) UUID.
  if (validate::hostname_has_invalid_components(hostname))
    throw ApiError::bad_request(hostname + " contains invalid components (e.g., path, query, fragment).");
  if (!validate::is_valid_hostname(hostname))
    throw ApiError::bad_request(hostname + " is not a valid hostname");
  if (!validate::is_valid_email(email)) throw ApiError::bad_request("Enter a valid email address.");
  if (domain_blocked(svc.config, email)) throw ApiError::bad_request("Invalid email address.");
  if (!validate::is_canonical_uuid4(id)) throw ApiError::bad_request("Invalid UUID");

  int64_t now = svc.clock.wall_ms();
  auto& servers = svc.store.servers();
  bool created = false;
  svc.store.db().write([&] {
    std::optional<store::ServerRow> row = servers.find_by_uuid(id);
    std::optional<store::ServerRow> holder = servers.find_active_by_hostname(hostname);
    if (row) {
      // (5) known id: key, then deactivated, then hostname taken.
      if (!crypto::verify_key(row->key_hash, key)) {
        ApiError e = ApiError::bad_request("Aloha server auth failure: key does not match role " + id);
        e.code = "INVALID_ZULIP_SERVER";
        e.extra.push_back({"role", json_quote(id)});
        throw e;
      }
      if (row->deactivated) throw unauthorized(kDeactivatedMsg, "REALM_DEACTIVATED");
      if (holder && holder->id != row->id) throw hostname_taken(hostname);
      std::optional<std::string> new_hash;
      if (new_key) new_hash = crypto::hash_key(*new_key);
      bool changed = row->hostname != hostname || row->contact_email != email;
      servers.update_registration(row->id, hostname, email,
                                  new_hash ? std::optional<std::string_view>(*new_hash) : std::nullopt, now);
      if (changed) {
        JsonFields f;
        f.str("hostname", hostname).str("contact_email", email);
        svc.store.audit().add(row->id, "server_updated", now, f.object());
      }
      if (new_key) svc.store.audit().add(row->id, "server_key_rotated", now, "{}");
    } else {
      // (6) new id: hostname taken. new_org_key is ignored when creating.
      if (holder) throw hostname_taken(hostname);
      int64_t sid = servers.insert(id, crypto::hash_key(key), hostname, email, now);
      JsonFields f;
      f.str("hostname", hostname).str("contact_email", email);
      svc.store.audit().add(sid, "server_created", now, f.object());
      created = true;
    }
  });
  if (created) LOG_INFO("server registered: %s %s", id.c_str(), hostname.c_str());
  JsonFields out;
  out.boolean("created", created);
  std::vector<std::string> unused = p.unused();
  if (!unused.empty()) out.string_list("ignored_parameters_unsupported", unused);
  http::Response r = success(out);
  r.log_server = id;
  respond_after_commit(svc.store, ex, std::move(r));
}

void server_deactivate(Services& svc, const ExchangePtr& ex) {
  FormParams p = FormParams::from_request(ex->req);
  int64_t now = svc.clock.wall_ms();
  svc.store.db().write([&] {
    svc.store.servers().deactivate(ex->server->id, now);
    svc.store.audit().add(ex->server->id, "server_deactivated", now, "{}");
  });
  LOG_INFO("server deactivated: %s", ex->server->uuid.c_str());
  JsonFields out;
  std::vector<std::string> unused = p.unused();
  if (!unused.empty()) out.string_list("ignored_parameters_unsupported", unused);
  respond_after_commit(svc.store, ex, success(out));
}

}  // namespace

void register_server_routes(Router& r) {
  r.add("/api/v1/remotes/server/register", {"POST"}, false, server_register, Writes::yes);
  r.add("/api/v1/remotes/server/deactivate", {"POST"}, true, server_deactivate, Writes::yes);
}

}  // namespace aloha::api
