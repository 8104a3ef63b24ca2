#include "client/keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "client/z85.h"

namespace kv::client {

namespace {

Status bad(std::string message) {
    return Status(ErrorCode::invalid_argument, std::move(message));
}

std::string_view trim(std::string_view s) {
    const size_t first = s.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) return {};
    const size_t last = s.find_last_not_of(" \t\r");
    return s.substr(first, last - first + 1);
}

std::string errno_text() {
    return std::strerror(errno);
}

// Writes all of `text` to `fd`, retrying short writes.
bool write_all(int fd, std::string_view text) {
    while (!text.empty()) {
        const ssize_t n = ::write(fd, text.data(), text.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        text.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

std::string directory_of(const std::string& path) {
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

Result<CurveKeyPair> generate_key_pair() {
    char public_key[kCurveKeyZ85Chars + 1] = {};
    char secret_key[kCurveKeyZ85Chars + 1] = {};
    if (zmq_curve_keypair(public_key, secret_key) != 0) {
        // ENOTSUP: libzmq built without CURVE.
        return Status(ErrorCode::internal, std::string("cannot generate a CURVE key pair: ") +
                                               zmq_strerror(zmq_errno()));
    }
    return CurveKeyPair{public_key, secret_key};
}

std::optional<std::string> public_key_of(std::string_view secret_z85) {
    if (!is_curve_key_z85(secret_z85)) return std::nullopt;
    const std::string secret(secret_z85);
    char public_key[kCurveKeyZ85Chars + 1] = {};
    if (zmq_curve_public(public_key, secret.c_str()) != 0) return std::nullopt;
    return std::string(public_key);
}

Result<Credentials> parse_credentials(std::string_view text, std::string_view origin) {
    const std::string where(origin);
    std::optional<std::string> public_key, secret_key, server_key;
    size_t line_number = 0;
    while (!text.empty()) {
        const size_t end = std::min(text.find('\n'), text.size());
        const std::string_view line = trim(text.substr(0, end));
        text.remove_prefix(std::min(end + 1, text.size()));
        ++line_number;
        if (line.empty() || line.front() == '#') continue;
        const std::string at = where + ":" + std::to_string(line_number);
        const size_t eq = line.find('=');
        if (eq == std::string_view::npos) return bad(at + ": expected 'name = value'");
        const std::string_view name = trim(line.substr(0, eq));
        const std::string_view value = trim(line.substr(eq + 1));
        std::optional<std::string>* slot = name == "public"   ? &public_key
                                           : name == "secret" ? &secret_key
                                           : name == "server" ? &server_key
                                                              : nullptr;
        if (slot == nullptr) {
            return bad(at + ": unknown name '" + std::string(name) +
                       "' (expected public, secret or server)");
        }
        if (slot->has_value()) return bad(at + ": '" + std::string(name) + "' given twice");
        if (!is_curve_key_z85(value)) {
            // Never echo the value: it may be a (mistyped) secret key.
            return bad(at + ": '" + std::string(name) +
                       "' is not a CURVE key (40 characters of Z85)");
        }
        *slot = std::string(value);
    }
    if (!public_key) return bad(where + ": no 'public = ...' line");
    if (!secret_key) return bad(where + ": no 'secret = ...' line");
    if (public_key_of(*secret_key) != public_key) {
        return bad(where + ": the public key does not belong to the secret key");
    }
    return Credentials{CurveKeyPair{std::move(*public_key), std::move(*secret_key)},
                       std::move(server_key)};
}

std::string format_credentials(const Credentials& credentials, std::string_view comment) {
    std::string out;
    while (!comment.empty()) {
        const size_t end = std::min(comment.find('\n'), comment.size());
        out += "# " + std::string(comment.substr(0, end)) + "\n";
        comment.remove_prefix(std::min(end + 1, comment.size()));
    }
    out += "public = " + credentials.pair.public_z85 + "\n";
    out += "secret = " + credentials.pair.secret_z85 + "\n";
    if (credentials.server_public_z85) out += "server = " + *credentials.server_public_z85 + "\n";
    return out;
}

Result<Credentials> load_credentials(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return bad("cannot read " + path + ": " + errno_text());
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const std::string why = errno_text();
        ::close(fd);
        return bad("cannot stat " + path + ": " + why);
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        ::close(fd);
        // The secret key proves this identity; anyone who could read it could be it.
        return Status(ErrorCode::unauthorized,
                      path +
                          " holds a secret key but group or others may access it; "
                          "run: chmod 600 " +
                          path);
    }
    std::string text;
    char buffer[4096];
    constexpr size_t kFileBytesMax = 64 * 1024;  // a credentials file is a few hundred bytes
    while (text.size() <= kFileBytesMax) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const std::string why = errno_text();
            ::close(fd);
            return bad("cannot read " + path + ": " + why);
        }
        if (n == 0) break;
        text.append(buffer, static_cast<size_t>(n));
    }
    ::close(fd);
    if (text.size() > kFileBytesMax) return bad(path + " is too large for a credentials file");
    return parse_credentials(text, path);
}

Status save_credentials(const std::string& path, const Credentials& credentials,
                        std::string_view comment, bool overwrite) {
    if (!is_curve_key_z85(credentials.pair.public_z85) ||
        public_key_of(credentials.pair.secret_z85) != credentials.pair.public_z85) {
        return bad("refusing to save an invalid key pair");
    }
    if (credentials.server_public_z85 && !is_curve_key_z85(*credentials.server_public_z85)) {
        return bad("refusing to save an invalid server key");
    }
    if (!overwrite && ::access(path.c_str(), F_OK) == 0) {
        return bad(path + " exists; refusing to overwrite it");
    }
    // A temporary name in the same directory, so link/rename stay atomic.
    std::random_device random;
    const std::string temp =
        path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(random());
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return bad("cannot create " + temp + ": " + errno_text());
    // The umask may only remove bits; make sure of 0600 anyway.
    const bool written = ::fchmod(fd, 0600) == 0 &&
                         write_all(fd, format_credentials(credentials, comment)) &&
                         ::fsync(fd) == 0;
    const std::string write_error = errno_text();
    ::close(fd);
    if (!written) {
        ::unlink(temp.c_str());
        return bad("cannot write " + temp + ": " + write_error);
    }
    // link() fails on an existing target, so a file made since the check above
    // is not replaced either; rename() replaces atomically when asked to.
    const int placed =
        overwrite ? ::rename(temp.c_str(), path.c_str()) : ::link(temp.c_str(), path.c_str());
    const int place_errno = errno;
    if (!overwrite || placed != 0) ::unlink(temp.c_str());
    if (placed != 0) {
        if (place_errno == EEXIST) return bad(path + " exists; refusing to overwrite it");
        return bad("cannot create " + path + ": " + std::strerror(place_errno));
    }
    const int dir = ::open(directory_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
        ::fsync(dir);  // the new name survives a crash
        ::close(dir);
    }
    return {};
}

std::optional<std::string> default_credentials_path() {
    if (const char* env = std::getenv("KV_KEY_FILE"); env != nullptr && *env != '\0') {
        return std::string(env);
    }
    std::string dir;
    if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg != '\0') {
        dir = xdg;
    } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
        dir = std::string(home) + "/.config";
    } else {
        return std::nullopt;
    }
    std::string path = dir + "/kvstore/credentials";
    if (::access(path.c_str(), F_OK) != 0) return std::nullopt;
    return path;
}

Result<CurveCredentials> to_curve_credentials(const Credentials& credentials,
                                              const std::optional<std::string>& server_override,
                                              std::string_view origin) {
    std::optional<std::string> server =
        server_override ? server_override : credentials.server_public_z85;
    if (!server) {
        return bad(std::string(origin) +
                   " has no 'server = ...' line: give the cluster's public key with "
                   "--server-key");
    }
    if (!is_curve_key_z85(*server)) {
        return bad("the server key is not a CURVE public key (40 characters of Z85)");
    }
    return CurveCredentials{credentials.pair.public_z85, credentials.pair.secret_z85, *server};
}

}  // namespace kv::client
