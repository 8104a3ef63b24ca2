// Batch frames (client/frame_batch.h): what is added comes back out, in
// order; what is malformed is refused, never read past its end.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "client/frame_batch.h"
#include "client/protocol.h"

namespace {

using kv::proto::BatchFrame;
using kv::proto::is_batch_frame;
using kv::proto::kBatchFrameBytesMax;
using kv::proto::split_batch_frame;

}  // namespace

TEST_CASE("batch frame: messages come back in order, empty ones included", "[frame_batch]") {
    const std::vector<std::string> messages = {"one", "", std::string(1000, 'x'),
                                               "\xc1 leading marker"};
    BatchFrame frame;
    for (const auto& m : messages) frame.add(m);
    CHECK(frame.count() == messages.size());
    REQUIRE(is_batch_frame(frame.bytes()));
    std::vector<std::string_view> parts;
    REQUIRE(split_batch_frame(frame.bytes(), parts));
    CHECK(std::vector<std::string>(parts.begin(), parts.end()) == messages);
}

TEST_CASE("batch frame: a message's own frame never looks like a batch", "[frame_batch]") {
    // Every single message is a msgpack map, whose first byte is never 0xc1.
    const std::string single = kv::proto::encode(kv::proto::StatusRequest{});
    CHECK_FALSE(is_batch_frame(single));
    CHECK_FALSE(is_batch_frame(""));
}

TEST_CASE("batch frame: malformed frames are refused", "[frame_batch]") {
    std::vector<std::string_view> parts;
    BatchFrame frame;
    frame.add("hello");
    const std::string whole = frame.bytes();
    CHECK_FALSE(split_batch_frame(std::string(1, '\xc1'), parts));  // no message
    CHECK_FALSE(split_batch_frame("not a batch", parts));
    for (size_t cut = 1; cut < whole.size(); ++cut) {
        INFO("cut at " << cut);
        CHECK_FALSE(split_batch_frame(whole.substr(0, cut), parts));
    }
    std::string too_long = whole;
    too_long[1] = '\x7f';  // a length past the end
    CHECK_FALSE(split_batch_frame(too_long, parts));
}

TEST_CASE("batch frame: fits keeps a frame under the cap, a first message always fits",
          "[frame_batch]") {
    BatchFrame frame;
    CHECK(frame.fits(kBatchFrameBytesMax * 2));
    frame.add(std::string(kBatchFrameBytesMax / 2, 'a'));
    CHECK(frame.fits(kBatchFrameBytesMax / 2 - 10));
    CHECK_FALSE(frame.fits(kBatchFrameBytesMax / 2));
}

TEST_CASE("batch frame: a smaller cap is kept the same way", "[frame_batch]") {
    BatchFrame frame(100);
    CHECK(frame.fits(1000));  // a first message always fits
    frame.add(std::string(50, 'a'));  // 1 + 4 + 50 bytes
    CHECK(frame.fits(100 - 55 - 4));
    CHECK_FALSE(frame.fits(100 - 55 - 4 + 1));
}
