// CURVE key pairs and the credentials files that hold them (docs/SECURITY.md,
// docs/OPERATIONS.md "Keys").
//
// A credentials file is text, one `name = value` per line:
//
//     # comment (a line whose first non-blank character is '#')
//     public = <40-character Z85 public key>
//     secret = <40-character Z85 secret key>
//     server = <40-character Z85 public key of the cluster>   (optional)
//
// Z85 uses '#' and '=' as digits, so a comment must start its line and a line
// splits at its first '='. The same format serves a node's cluster key
// (kvnode --cluster-key) and a client's key (kvctl --key), whose `server` line
// names the cluster to talk to.
//
// The secret key is the identity: a file readable by group or others is
// refused on load, and save creates the file 0600 under a temporary name and
// links it into place, so no reader ever sees it half written or more open.
// Thread-safety: free functions without shared state.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "client/client.h"
#include "client/status.h"

namespace kv::client {

struct CurveKeyPair {
    std::string public_z85;
    std::string secret_z85;
    bool operator==(const CurveKeyPair&) const = default;
};

struct Credentials {
    CurveKeyPair pair;
    // The public key of the server (the cluster key) this identity talks to.
    std::optional<std::string> server_public_z85;
    bool operator==(const Credentials&) const = default;
};

// A fresh key pair from libzmq's CURVE (libsodium's randomness).
Result<CurveKeyPair> generate_key_pair();
// The public key of a Z85 secret key; nullopt when `secret_z85` is not a key.
std::optional<std::string> public_key_of(std::string_view secret_z85);

// Parses the text of a credentials file; `origin` names it in errors. Errors
// (invalid_argument): an unknown or repeated name, a line without '=', a
// missing public or secret line, a value that is not a Z85 CURVE key, a
// public key that does not belong to the secret key.
Result<Credentials> parse_credentials(std::string_view text, std::string_view origin);
// The text of a credentials file, with `comment` (may be empty; each of its
// lines becomes a '#' line) on top.
std::string format_credentials(const Credentials& credentials, std::string_view comment = {});

// Reads and parses `path`. Refuses a file that group or others may access
// ("chmod 600 FILE") before reading it.
Result<Credentials> load_credentials(const std::string& path);
// Writes `path` with mode 0600, atomically. Without `overwrite`, fails
// (invalid_argument) when `path` exists, and never replaces it.
Status save_credentials(const std::string& path, const Credentials& credentials,
                        std::string_view comment = {}, bool overwrite = false);

// The credentials file a tool uses when given none: $KV_KEY_FILE if set, else
// $XDG_CONFIG_HOME/kvstore/credentials (XDG_CONFIG_HOME defaulting to
// ~/.config) when that file exists; nullopt when there is none.
std::optional<std::string> default_credentials_path();

// The client options' form of `credentials`; the server key is
// `server_override` when given, else the file's `server` line. Fails
// (invalid_argument) when neither names the cluster's key.
Result<CurveCredentials> to_curve_credentials(const Credentials& credentials,
                                              const std::optional<std::string>& server_override,
                                              std::string_view origin);

}  // namespace kv::client
