#include "sim/history.h"

#include <cstdio>

namespace kv::sim {

std::string_view op_kind_name(OpKind kind) {
    switch (kind) {
        case OpKind::get:
            return "get";
        case OpKind::put:
            return "put";
        case OpKind::del:
            return "del";
    }
    return "?";
}

std::string_view outcome_name(Outcome outcome) {
    switch (outcome) {
        case Outcome::ok:
            return "ok";
        case Outcome::not_found:
            return "not_found";
        case Outcome::failed:
            return "failed";
        case Outcome::indeterminate:
            return "indeterminate";
    }
    return "?";
}

namespace {
std::string hex(std::string_view bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

std::string values_text(const std::vector<std::string>& values) {
    std::string out = "[";
    for (size_t i = 0; i < values.size(); ++i) {
        if (i) out += ",";
        out += values[i];
    }
    return out + "]";
}
}  // namespace

std::string describe(const HistoryEntry& e) {
    std::string out = "#" + std::to_string(e.index) + " c" + std::to_string(e.client) + "@n" +
                      std::to_string(e.node + 1) + " " + std::string(op_kind_name(e.kind)) + " " +
                      e.key;
    if (e.kind == OpKind::put) out += " = " + e.value;
    if (e.kind != OpKind::get) {
        out += e.context_from != kNoOp ? " ctx-of #" + std::to_string(e.context_from)
                                       : (e.context ? " ctx" : " no-ctx");
    }
    if (e.retry_of != kNoOp) out += " retry-of #" + std::to_string(e.retry_of);
    if (e.also_sent_to) out += " also@n" + std::to_string(*e.also_sent_to + 1);
    out += " " + std::string(proto::level_name(e.level)) + (e.strict ? " strict" : "") + " [" +
           std::to_string(e.start_ms) + ".." + std::to_string(e.end_ms) + " ms] -> " +
           std::string(outcome_name(e.outcome));
    if (e.outcome == Outcome::failed) out += " (" + std::string(error_name(e.code)) + ")";
    if (e.kind == OpKind::get && e.outcome != Outcome::failed &&
        e.outcome != Outcome::indeterminate) {
        out += " " + values_text(e.values);
    }
    if (e.stand_in_used) out += " (stand-in)";
    return out;
}

std::string serialize(const History& history) {
    std::string out = "n=" + std::to_string(history.n_replicas) + "\n";
    for (const auto& e : history.entries) {
        out += std::to_string(e.index) + " " + std::to_string(e.client) + " " +
               std::to_string(e.node) + " " + std::string(op_kind_name(e.kind)) + " " + hex(e.key) +
               " " + hex(e.value) + " " + (e.context ? hex(*e.context) : "-") + " " +
               std::to_string(e.context_from) + " " + std::string(proto::level_name(e.level)) +
               " " + std::to_string(e.start_ms) + " " + std::to_string(e.end_ms) + " " +
               std::string(outcome_name(e.outcome)) + " " + std::string(error_name(e.code)) + " ";
        for (const auto& v : e.values) out += hex(v) + ",";
        out += " " + hex(e.context_returned);
        // Only when set, so histories without retries or duplicates keep their digests.
        if (e.retry_of != kNoOp) out += " retry-of " + std::to_string(e.retry_of);
        if (e.also_sent_to) out += " also " + std::to_string(*e.also_sent_to);
        if (e.strict) out += " strict";
        if (e.stand_in_used) out += " stand-in";
        out += "\n";
    }
    return out;
}

uint64_t fnv1a64(std::string_view bytes, uint64_t seed) {
    uint64_t h = seed;
    for (unsigned char c : bytes) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t digest(const History& history) {
    return fnv1a64(serialize(history));
}

}  // namespace kv::sim
