// Start-up wiring of the pushers: turns the [apns*] (and later [fcm]) sections of the Config into a
// PusherRegistry. Credentials, keys and CA files are read here, before uv_run (blocking reads are
// allowed only at start-up, architecture.md); any unreadable or invalid file stops start-up.
#pragma once
#include <uv.h>

#include <memory>
#include <string>

#include "core/clock.h"
#include "core/config.h"
#include "push/apns_pusher.h"
#include "push/pusher.h"

namespace aloha::push {

// The pusher options of one [apns]/[apns.NAME] section, derived from the config ([push]
// retry_queue_max bounds pending pushes, warn_interval_ms rate-limits credential errors).
ApnsPusherOptions apns_options_for(const ApnsConfig& section, const Config& cfg);

// Connection options of one section: host (default by environment), port, :authority.
h2::ConnectionOptions apns_connection_for(const ApnsConfig& section);

// Builds one ApnsPusher per [apns*] section (and the FCM pusher once it exists) on `loop`.
// Returns nullptr with `err` naming the section and the file on failure. The registry and its
// pushers must be closed (PusherRegistry::close_all) before the loop is closed; `clock` must
// outlive them.
std::unique_ptr<PusherRegistry> build_pushers(uv_loop_t* loop, const Config& cfg,
                                              const Clock& clock, std::string& err);

}  // namespace aloha::push
