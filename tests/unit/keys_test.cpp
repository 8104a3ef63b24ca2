#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <string>

#include "client/keys.h"
#include "client/z85.h"

using namespace kv;
using namespace kv::client;

namespace {

// A fresh directory under /tmp, removed at the end of the test.
struct TempDir {
    std::string path;
    TempDir() {
        char pattern[] = "/tmp/kv-keys-test-XXXXXX";
        REQUIRE(::mkdtemp(pattern) != nullptr);
        path = pattern;
    }
    ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

void write_file(const std::string& path, const std::string& text, mode_t mode) {
    std::ofstream(path) << text;
    REQUIRE(::chmod(path.c_str(), mode) == 0);
}

mode_t mode_of(const std::string& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 0777;
}

}  // namespace

TEST_CASE("a generated key pair is two Z85 keys that belong together", "[keys]") {
    auto pair = generate_key_pair();
    REQUIRE(pair);
    CHECK(is_curve_key_z85(pair->public_z85));
    CHECK(is_curve_key_z85(pair->secret_z85));
    CHECK(public_key_of(pair->secret_z85) == pair->public_z85);
    auto other = generate_key_pair();
    REQUIRE(other);
    CHECK(other->secret_z85 != pair->secret_z85);
    CHECK_FALSE(public_key_of("not a key"));
}

TEST_CASE("credentials text round-trips, with comments and a server key", "[keys]") {
    auto pair = generate_key_pair();
    auto server = generate_key_pair();
    REQUIRE(pair);
    REQUIRE(server);
    Credentials c{pair.value(), server->public_z85};
    const std::string text = format_credentials(c, "line one\nline two");
    CHECK(text.rfind("# line one\n# line two\n", 0) == 0);
    auto parsed = parse_credentials(text, "x");
    REQUIRE(parsed);
    CHECK(parsed.value() == c);

    // Blank lines, indentation, CRLF; no server line.
    auto no_server = parse_credentials(
        "\n  # c\r\n  secret=" + pair->secret_z85 + "\r\npublic   =  " + pair->public_z85 + "\n",
        "x");
    REQUIRE(no_server);
    CHECK(no_server->pair == pair.value());
    CHECK_FALSE(no_server->server_public_z85);
}

TEST_CASE("credentials parsing names what is wrong and never echoes a key", "[keys]") {
    auto pair = generate_key_pair();
    auto other = generate_key_pair();
    REQUIRE(pair);
    REQUIRE(other);
    const std::string pub = "public = " + pair->public_z85 + "\n";
    const std::string sec = "secret = " + pair->secret_z85 + "\n";
    auto error_of = [](const std::string& text) {
        auto r = parse_credentials(text, "f");
        REQUIRE_FALSE(r);
        CHECK(r.status().code() == ErrorCode::invalid_argument);
        return r.status().message();
    };
    CHECK(error_of(pub) == "f: no 'secret = ...' line");
    CHECK(error_of(sec) == "f: no 'public = ...' line");
    CHECK(error_of(pub + sec + "server = short\n").find("f:3: 'server' is not a CURVE key") == 0);
    CHECK(error_of(pub + pub + sec) == "f:2: 'public' given twice");
    CHECK(error_of(pub + sec + "colour = blue\n").find("f:3: unknown name 'colour'") == 0);
    CHECK(error_of(pub + "just words\n") == "f:2: expected 'name = value'");
    CHECK(error_of("public = " + other->public_z85 + "\n" + sec) ==
          "f: the public key does not belong to the secret key");
    const std::string bad_secret = "secret = " + pair->secret_z85.substr(0, 39) + ",\n";
    const std::string message = error_of(pub + bad_secret);
    CHECK(message.find(pair->secret_z85.substr(0, 39)) == std::string::npos);
}

TEST_CASE("save creates the file 0600 and never overwrites unless asked", "[keys]") {
    TempDir dir;
    const std::string path = dir.path + "/cred";
    auto pair = generate_key_pair();
    REQUIRE(pair);
    Credentials c{pair.value(), std::nullopt};
    ::umask(0);  // the file must be 0600 whatever the umask lets through
    REQUIRE(save_credentials(path, c, "mine").ok());
    ::umask(022);
    CHECK(mode_of(path) == 0600);
    auto loaded = load_credentials(path);
    REQUIRE(loaded);
    CHECK(loaded.value() == c);

    auto second = generate_key_pair();
    REQUIRE(second);
    Status again = save_credentials(path, Credentials{second.value(), std::nullopt});
    CHECK(again.code() == ErrorCode::invalid_argument);
    CHECK(again.message() == path + " exists; refusing to overwrite it");
    CHECK(load_credentials(path).value() == c);  // untouched

    REQUIRE(save_credentials(path, Credentials{second.value(), std::nullopt}, {}, true).ok());
    CHECK(load_credentials(path).value().pair == second.value());
    CHECK(mode_of(path) == 0600);
    // No temporary file left behind.
    CHECK(std::system(("test $(ls -A '" + dir.path + "' | wc -l) -eq 1").c_str()) == 0);

    CHECK_FALSE(save_credentials(dir.path + "/missing-dir/cred", c).ok());
}

TEST_CASE("load refuses a key file group or others can read, and says how to fix it", "[keys]") {
    TempDir dir;
    const std::string path = dir.path + "/cred";
    auto pair = generate_key_pair();
    REQUIRE(pair);
    write_file(path, format_credentials(Credentials{pair.value(), std::nullopt}), 0644);
    auto r = load_credentials(path);
    REQUIRE_FALSE(r);
    CHECK(r.status().code() == ErrorCode::unauthorized);
    CHECK(r.status().message().find("chmod 600 " + path) != std::string::npos);
    REQUIRE(::chmod(path.c_str(), 0640) == 0);
    CHECK_FALSE(load_credentials(path));
    REQUIRE(::chmod(path.c_str(), 0600) == 0);
    CHECK(load_credentials(path));
    REQUIRE(::chmod(path.c_str(), 0400) == 0);
    CHECK(load_credentials(path));

    auto missing = load_credentials(dir.path + "/nothing");
    REQUIRE_FALSE(missing);
    CHECK(missing.status().message().find("cannot read") == 0);
}
