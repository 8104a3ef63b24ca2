#include "client/metrics.h"

#include <array>
#include <cassert>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>

#include "client/json_util.h"

namespace kv::metrics {

namespace {

bool is_name_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool is_name_char(char c) {
    return is_name_start(c) || (c >= '0' && c <= '9');
}

bool valid_name(std::string_view name) {
    if (name.empty() || !is_name_start(name[0])) return false;
    for (char c : name) {
        if (!is_name_char(c)) return false;
    }
    return true;
}

void append_escaped(std::string& out, std::string_view value, bool quote_too) {
    for (char c : value) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '"' && quote_too) {
            out += "\\\"";
        } else {
            out += c;
        }
    }
}

void append_double(std::string& out, double value) {
    if (std::isnan(value)) {
        out += "NaN";
    } else if (std::isinf(value)) {
        out += value > 0 ? "+Inf" : "-Inf";
    } else {
        std::array<char, 32> buf{};
        auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), value);
        assert(ec == std::errc());
        out.append(buf.data(), end);
    }
}

std::optional<double> parse_value(std::string_view s) {
    if (s == "+Inf" || s == "Inf") return std::numeric_limits<double>::infinity();
    if (s == "-Inf") return -std::numeric_limits<double>::infinity();
    if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
    if (!s.empty() && s[0] == '+') s.remove_prefix(1);
    double value = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return value;
}

std::optional<Type> type_from_name(std::string_view name) {
    if (name == "counter") return Type::counter;
    if (name == "gauge") return Type::gauge;
    if (name == "histogram") return Type::histogram;
    if (name == "untyped") return Type::untyped;
    return std::nullopt;
}

// The family a sample name belongs to: itself, or a histogram's base name.
std::string_view family_of(std::string_view sample, const std::map<std::string, size_t>& known) {
    if (known.contains(std::string(sample))) return sample;
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
        if (sample.size() > suffix.size() && sample.ends_with(suffix)) {
            std::string_view base = sample.substr(0, sample.size() - suffix.size());
            if (known.contains(std::string(base))) return base;
        }
    }
    return sample;
}

Status line_error(size_t line, std::string_view why) {
    return Status(ErrorCode::invalid_argument,
                  "metrics text line " + std::to_string(line) + ": " + std::string(why));
}

}  // namespace

std::string_view type_name(Type type) {
    switch (type) {
        case Type::counter:
            return "counter";
        case Type::gauge:
            return "gauge";
        case Type::histogram:
            return "histogram";
        case Type::untyped:
            return "untyped";
    }
    return "untyped";
}

// ---- writer ---------------------------------------------------------------------

void Exposition::family(std::string_view name, Type type, std::string_view help) {
    assert(valid_name(name));
    text_ += "# HELP ";
    text_ += name;
    text_ += ' ';
    append_escaped(text_, help, false);
    text_ += "\n# TYPE ";
    text_ += name;
    text_ += ' ';
    text_ += type_name(type);
    text_ += '\n';
}

void Exposition::begin_sample(std::string_view name, const LabelPair* labels, size_t count) {
    assert(valid_name(name));
    text_ += name;
    if (count != 0) {
        text_ += '{';
        bool first = true;
        for (const auto& [label, value] : std::span(labels, count)) {
            assert(valid_name(label));
            if (!first) text_ += ',';
            first = false;
            text_ += label;
            text_ += "=\"";
            append_escaped(text_, value, true);
            text_ += '"';
        }
        text_ += '}';
    }
    text_ += ' ';
}

void Exposition::sample(std::string_view name, LabelPairs labels, uint64_t value) {
    begin_sample(name, labels.begin(), labels.size());
    text_ += std::to_string(value);
    text_ += '\n';
}

void Exposition::sample(std::string_view name, LabelPairs labels, double value) {
    begin_sample(name, labels.begin(), labels.size());
    append_double(text_, value);
    text_ += '\n';
}

void Exposition::sample_with(std::string_view name, const std::vector<LabelPair>& labels,
                             double value) {
    begin_sample(name, labels.data(), labels.size());
    append_double(text_, value);
    text_ += '\n';
}

void Exposition::counter(std::string_view name, std::string_view help, uint64_t value) {
    family(name, Type::counter, help);
    sample(name, value);
}

void Exposition::gauge(std::string_view name, std::string_view help, double value) {
    family(name, Type::gauge, help);
    sample(name, {}, value);
}

// ---- parser ---------------------------------------------------------------------

Result<std::vector<Family>> parse(std::string_view text) {
    std::vector<Family> families;
    std::map<std::string, size_t> index;  // family name -> position in families
    std::set<std::string> sample_names;   // seen so far
    auto family_named = [&](std::string_view name) -> Family& {
        auto [it, added] = index.emplace(std::string(name), families.size());
        if (added) families.push_back(Family{std::string(name), Type::untyped, {}, {}});
        return families[it->second];
    };
    size_t line_number = 0;
    while (!text.empty()) {
        ++line_number;
        const size_t eol = text.find('\n');
        std::string_view line = text.substr(0, eol);
        text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
        while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
        while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
            line.remove_prefix(1);
        }
        if (line.empty()) continue;
        if (line[0] == '#') {
            // "# HELP name text" or "# TYPE name type"; any other comment is free text.
            std::string_view rest = line.substr(1);
            while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
            const bool help = rest.starts_with("HELP ");
            const bool type = rest.starts_with("TYPE ");
            if (!help && !type) continue;
            rest.remove_prefix(5);
            while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
            const size_t space = rest.find(' ');
            std::string_view name = rest.substr(0, space);
            std::string_view what =
                space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
            if (!valid_name(name)) return line_error(line_number, "bad metric name");
            if (!index.contains(std::string(name)) && sample_names.contains(std::string(name))) {
                // Its samples went to another family already (a histogram's).
                return line_error(line_number, "HELP or TYPE after samples of that name");
            }
            Family& family = family_named(name);
            if (help) {
                family.help.clear();
                for (size_t i = 0; i < what.size(); ++i) {
                    if (what[i] == '\\' && i + 1 < what.size() &&
                        (what[i + 1] == '\\' || what[i + 1] == 'n')) {
                        family.help += what[i + 1] == 'n' ? '\n' : '\\';
                        ++i;
                    } else {
                        family.help += what[i];
                    }
                }
            } else {
                auto parsed = type_from_name(what);
                if (!parsed)
                    return line_error(line_number, "unknown type '" + std::string(what) + "'");
                if (!family.samples.empty()) {
                    return line_error(line_number, "TYPE after the family's samples");
                }
                family.type = *parsed;
            }
            continue;
        }
        Sample sample;
        size_t i = 0;
        while (i < line.size() && is_name_char(line[i])) ++i;
        sample.name = std::string(line.substr(0, i));
        if (!valid_name(sample.name)) return line_error(line_number, "bad metric name");
        if (i < line.size() && line[i] == '{') {
            ++i;
            for (;;) {
                while (i < line.size() && line[i] == ' ') ++i;
                if (i < line.size() && line[i] == '}') {
                    ++i;
                    break;
                }
                const size_t start = i;
                while (i < line.size() && is_name_char(line[i])) ++i;
                Label label{std::string(line.substr(start, i - start)), {}};
                if (!valid_name(label.name)) return line_error(line_number, "bad label name");
                if (i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') {
                    return line_error(line_number, "expected =\" after label " + label.name);
                }
                i += 2;
                bool closed = false;
                while (i < line.size()) {
                    const char c = line[i++];
                    if (c == '"') {
                        closed = true;
                        break;
                    }
                    if (c == '\\') {
                        if (i >= line.size()) break;
                        const char e = line[i++];
                        if (e == 'n') {
                            label.value += '\n';
                        } else if (e == '\\' || e == '"') {
                            label.value += e;
                        } else {
                            return line_error(line_number, "bad escape in label value");
                        }
                    } else {
                        label.value += c;
                    }
                }
                if (!closed) return line_error(line_number, "unterminated label value");
                for (const auto& l : sample.labels) {
                    if (l.name == label.name) {
                        return line_error(line_number, "label " + label.name + " twice");
                    }
                }
                sample.labels.push_back(std::move(label));
                while (i < line.size() && line[i] == ' ') ++i;
                if (i < line.size() && line[i] == ',') {
                    ++i;
                    continue;
                }
                if (i < line.size() && line[i] == '}') {
                    ++i;
                    break;
                }
                return line_error(line_number, "expected , or } in labels");
            }
        }
        if (i >= line.size() || (line[i] != ' ' && line[i] != '\t')) {
            return line_error(line_number, "expected a value after the name");
        }
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
        std::string_view rest = line.substr(i);
        const size_t space = rest.find_first_of(" \t");
        auto value = parse_value(rest.substr(0, space));
        if (!value) return line_error(line_number, "bad value");
        if (space != std::string_view::npos) {
            // An optional timestamp (milliseconds): an integer, dropped.
            std::string_view stamp = rest.substr(space);
            while (!stamp.empty() && (stamp.front() == ' ' || stamp.front() == '\t')) {
                stamp.remove_prefix(1);
            }
            int64_t ms = 0;
            auto [end, ec] = std::from_chars(stamp.data(), stamp.data() + stamp.size(), ms);
            if (ec != std::errc() || end != stamp.data() + stamp.size()) {
                return line_error(line_number, "bad timestamp");
            }
        }
        sample.value = *value;
        sample_names.insert(sample.name);
        family_named(family_of(sample.name, index)).samples.push_back(std::move(sample));
    }
    return families;
}

std::string to_json(const std::vector<Family>& families) {
    auto number = [](double v) -> std::string {
        if (std::isnan(v)) return "\"NaN\"";
        if (std::isinf(v)) return v > 0 ? "\"+Inf\"" : "\"-Inf\"";
        std::string out;
        append_double(out, v);
        return out;
    };
    std::string out = "{\"families\":[";
    for (size_t f = 0; f < families.size(); ++f) {
        const Family& family = families[f];
        if (f != 0) out += ',';
        out += "{\"name\":" + client::json_quote(family.name) + ",\"type\":\"" +
               std::string(type_name(family.type)) +
               "\",\"help\":" + client::json_quote(family.help) + ",\"samples\":[";
        for (size_t s = 0; s < family.samples.size(); ++s) {
            const Sample& sample = family.samples[s];
            if (s != 0) out += ',';
            out += "{\"name\":" + client::json_quote(sample.name) + ",\"labels\":{";
            for (size_t l = 0; l < sample.labels.size(); ++l) {
                if (l != 0) out += ',';
                out += client::json_quote(sample.labels[l].name) + ":" +
                       client::json_quote(sample.labels[l].value);
            }
            out += "},\"value\":" + number(sample.value) + "}";
        }
        out += "]}";
    }
    out += "]}";
    return out;
}

}  // namespace kv::metrics
