#include "node/resp/resp_writer.h"

namespace kv::node::resp {

void ReplyWriter::line(char type, std::string_view text) {
    out_.push_back(type);
    const size_t start = out_.size();
    out_.append(text);
    for (size_t i = start; i < out_.size(); ++i) {
        if (out_[i] == '\r' || out_[i] == '\n') out_[i] = ' ';
    }
    out_.append("\r\n");
}

void ReplyWriter::simple(std::string_view text) {
    line('+', text);
}

void ReplyWriter::error(std::string_view code_and_message) {
    line('-', code_and_message);
}

void ReplyWriter::integer(int64_t value) {
    out_.push_back(':');
    out_.append(std::to_string(value));
    out_.append("\r\n");
}

void ReplyWriter::bulk(std::string_view bytes) {
    out_.push_back('$');
    out_.append(std::to_string(bytes.size()));
    out_.append("\r\n");
    out_.append(bytes);
    out_.append("\r\n");
}

void ReplyWriter::null() {
    out_.append(protocol_ >= 3 ? "_\r\n" : "$-1\r\n");
}

void ReplyWriter::null_array() {
    out_.append(protocol_ >= 3 ? "_\r\n" : "*-1\r\n");
}

void ReplyWriter::array(size_t items) {
    out_.push_back('*');
    out_.append(std::to_string(items));
    out_.append("\r\n");
}

void ReplyWriter::map(size_t pairs) {
    if (protocol_ >= 3) {
        out_.push_back('%');
        out_.append(std::to_string(pairs));
        out_.append("\r\n");
    } else {
        array(2 * pairs);
    }
}

}  // namespace kv::node::resp
