// Prometheus text exposition (format 0.0.4), both ways: the writer behind a
// node's /metrics page and its answer to `kvctl stats`, and the parser that
// turns that text back into families (kvctl stats --json, tests). One text,
// so the page and kvctl can never disagree (docs/OPERATIONS.md, "Metrics").
//
// Names follow the Prometheus conventions: a unit suffix (_seconds, _bytes),
// counters end in _total, histograms are _bucket{le=...}, _sum and _count.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "client/status.h"

namespace kv::metrics {

enum class Type : uint8_t { counter, gauge, histogram, untyped };
std::string_view type_name(Type type);

using LabelPair = std::pair<std::string_view, std::string_view>;
using LabelPairs = std::initializer_list<LabelPair>;

// Appends families to one text. A family's samples follow its family() call;
// the writer checks names (asserts: they are the code's, not input) and
// escapes label values, which may be anything (node ids, error codes).
class Exposition {
  public:
    void family(std::string_view name, Type type, std::string_view help);
    void sample(std::string_view name, LabelPairs labels, uint64_t value);
    void sample(std::string_view name, LabelPairs labels, double value);
    void sample(std::string_view name, uint64_t value) { sample(name, {}, value); }
    // Labels built at run time (a histogram adds le to its own).
    void sample_with(std::string_view name, const std::vector<LabelPair>& labels, double value);
    // A counter or gauge family with one unlabelled sample.
    void counter(std::string_view name, std::string_view help, uint64_t value);
    void gauge(std::string_view name, std::string_view help, double value);

    const std::string& text() const { return text_; }
    std::string take() { return std::move(text_); }

  private:
    void begin_sample(std::string_view name, const LabelPair* labels, size_t count);

    std::string text_;
};

struct Label {
    std::string name;
    std::string value;
    bool operator==(const Label&) const = default;
};

struct Sample {
    std::string name;  // the family's, or with _bucket, _sum, _count for a histogram
    std::vector<Label> labels;
    double value = 0;
    bool operator==(const Sample&) const = default;
};

struct Family {
    std::string name;
    Type type = Type::untyped;
    std::string help;
    std::vector<Sample> samples;
    bool operator==(const Family&) const = default;
};

// Parses exposition text: HELP and TYPE lines, samples with or without labels
// and timestamps (dropped), other comments skipped. A sample belongs to the
// family whose TYPE line named it (or its histogram suffixes); one with no
// TYPE gets an untyped family of its own name. invalid_argument naming the
// line for anything else.
Result<std::vector<Family>> parse(std::string_view text);

// {"families":[{"name":..,"type":..,"help":..,"samples":[{"name":..,
// "labels":{..},"value":..}]}]}; +Inf, -Inf and NaN as strings.
std::string to_json(const std::vector<Family>& families);

}  // namespace kv::metrics
