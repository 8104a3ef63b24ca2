#include "client/frame_batch.h"

namespace kv::proto {

bool split_batch_frame(std::string_view frame, std::vector<std::string_view>& messages) {
    messages.clear();
    if (!is_batch_frame(frame)) return false;
    frame.remove_prefix(1);
    while (!frame.empty()) {
        if (frame.size() < 4) return false;
        uint32_t length = 0;
        for (int i = 0; i < 4; ++i) length |= uint32_t{static_cast<uint8_t>(frame[i])} << (8 * i);
        frame.remove_prefix(4);
        if (frame.size() < length) return false;
        messages.push_back(frame.substr(0, length));
        frame.remove_prefix(length);
    }
    return !messages.empty();
}

void BatchFrame::add(std::string_view message) {
    const auto length = static_cast<uint32_t>(message.size());
    for (int i = 0; i < 4; ++i) bytes_.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
    bytes_.append(message);
    ++count_;
}

}  // namespace kv::proto
