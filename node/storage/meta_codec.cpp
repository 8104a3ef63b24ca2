#include "node/storage/meta_codec.h"

#include <algorithm>

namespace kv::node::meta {

void put_u64(std::string& out, uint64_t v) {
    for (int b = 0; b < 8; ++b) out.push_back(static_cast<char>((v >> (8 * b)) & 0xff));
}

bool get_u64(std::string_view& in, uint64_t& v) {
    if (in.size() < 8) return false;
    v = 0;
    for (int b = 0; b < 8; ++b) v |= uint64_t{static_cast<uint8_t>(in[b])} << (8 * b);
    in.remove_prefix(8);
    return true;
}

std::string encode_u64_text(uint64_t v) {
    return std::to_string(v);
}

std::optional<uint64_t> decode_u64_text(std::string_view text) {
    if (text.empty() || text.size() > 20) return std::nullopt;
    uint64_t v = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        const uint64_t digit = static_cast<uint64_t>(c - '0');
        if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
        v = v * 10 + digit;
    }
    return v;
}

std::string encode_tokens(const std::vector<uint64_t>& tokens) {
    std::string out;
    out.reserve(tokens.size() * 8);
    for (uint64_t t : tokens) put_u64(out, t);
    return out;
}

std::optional<std::vector<uint64_t>> decode_tokens(std::string_view bytes, size_t tokens_max) {
    if (bytes.size() % 8 != 0 || bytes.size() / 8 > tokens_max) return std::nullopt;
    std::vector<uint64_t> tokens;
    tokens.reserve(bytes.size() / 8);
    uint64_t t = 0;
    while (get_u64(bytes, t)) tokens.push_back(t);
    std::sort(tokens.begin(), tokens.end());
    tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
    return tokens;
}

std::string encode_handoffs(const HandoffRecord& handoffs) {
    std::string out;
    for (const auto& [target, ranges] : handoffs) {
        put_u64(out, target.size());
        out += target;
        put_u64(out, ranges.size());
        for (const auto& r : ranges) {
            put_u64(out, r.start);
            put_u64(out, r.end);
        }
    }
    return out;
}

std::optional<HandoffRecord> decode_handoffs(std::string_view in) {
    HandoffRecord out;
    while (!in.empty()) {
        uint64_t size = 0;
        uint64_t count = 0;
        if (!get_u64(in, size) || size > in.size()) return std::nullopt;
        std::vector<ring::Range>& ranges = out[std::string(in.substr(0, size))];
        in.remove_prefix(size);
        if (!get_u64(in, count) || count > in.size() / 16) return std::nullopt;
        for (uint64_t i = 0; i < count; ++i) {
            ring::Range r;
            get_u64(in, r.start);
            get_u64(in, r.end);
            ranges.push_back(r);
        }
    }
    return out;
}

Status check_format(const std::optional<std::string>& stored) {
    if (!stored) return {};  // format 1 predates the record
    auto format = decode_u64_text(*stored);
    if (!format) return Status(ErrorCode::storage_error, "corrupt meta format record");
    if (*format == 1) {
        return Status(ErrorCode::storage_error,
                      "the data directory is format 1 and was not moved to format " +
                          std::to_string(kMetaFormat) + " (kvnode moves it at start)");
    }
    if (*format != kMetaFormat) {
        return Status(ErrorCode::storage_error,
                      "the data directory's meta records are format " + std::to_string(*format) +
                          "; this build reads format " + std::to_string(kMetaFormat));
    }
    return {};
}

}  // namespace kv::node::meta
