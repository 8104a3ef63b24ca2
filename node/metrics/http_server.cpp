#include "node/metrics/http_server.h"

#include <algorithm>
#include <cctype>

namespace kv::node::metrics {

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Whether a comma-separated header value lists `token` (Connection: keep-alive, Upgrade).
bool lists(std::string_view value, std::string_view token) {
    while (!value.empty()) {
        const size_t comma = value.find(',');
        if (iequals(trim(value.substr(0, comma)), token)) return true;
        if (comma == std::string_view::npos) break;
        value.remove_prefix(comma + 1);
    }
    return false;
}

constexpr std::string_view kExpositionType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace

void HttpServer::open(uint64_t conn) {
    if (input_.size() >= kConnectionsMax) {
        answer(conn, 503, "Service Unavailable", "text/plain",
               "too many connections to the metrics page\n", false, true);
        return;
    }
    input_[conn];
}

void HttpServer::close(uint64_t conn) {
    input_.erase(conn);
}

void HttpServer::receive(uint64_t conn, std::string_view bytes) {
    auto it = input_.find(conn);
    if (it == input_.end()) return;  // closed by us; bytes still in flight
    it->second.append(bytes);
    if (!serve(conn, it->second)) input_.erase(conn);
}

bool HttpServer::serve(uint64_t conn, std::string& input) {
    for (;;) {
        const size_t end = input.find("\r\n\r\n");
        if (end == std::string::npos) {
            if (input.size() <= kHeadBytesMax) return true;  // wait for the rest
            answer(conn, 431, "Request Header Fields Too Large", "text/plain",
                   "request head over 16 KiB\n", false, true);
            return false;
        }
        if (end + 4 > kHeadBytesMax) {
            answer(conn, 431, "Request Header Fields Too Large", "text/plain",
                   "request head over 16 KiB\n", false, true);
            return false;
        }
        const std::string head = input.substr(0, end);
        input.erase(0, end + 4);
        ++requests_;

        // Request line: METHOD SP target SP HTTP/1.x
        const size_t eol = head.find("\r\n");
        const std::string_view line = std::string_view(head).substr(0, eol);
        const size_t sp1 = line.find(' ');
        const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
        if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
            answer(conn, 400, "Bad Request", "text/plain", "malformed request line\n", false, true);
            return false;
        }
        const std::string_view method = line.substr(0, sp1);
        std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
        const std::string_view version = line.substr(sp2 + 1);
        if (version != "HTTP/1.1" && version != "HTTP/1.0") {
            answer(conn, 505, "HTTP Version Not Supported", "text/plain",
                   "HTTP/1.0 and HTTP/1.1 only\n", false, true);
            return false;
        }
        bool keep_alive = version == "HTTP/1.1";
        bool has_body = false;
        std::string_view headers =
            eol == std::string::npos ? std::string_view() : std::string_view(head).substr(eol + 2);
        while (!headers.empty()) {
            const size_t next = headers.find("\r\n");
            const std::string_view field = headers.substr(0, next);
            headers.remove_prefix(next == std::string_view::npos ? headers.size() : next + 2);
            const size_t colon = field.find(':');
            if (colon == std::string_view::npos || colon == 0) {
                answer(conn, 400, "Bad Request", "text/plain", "malformed header\n", false, true);
                return false;
            }
            const std::string_view name = field.substr(0, colon);
            const std::string_view value = trim(field.substr(colon + 1));
            if (iequals(name, "Connection")) {
                if (lists(value, "close")) keep_alive = false;
                if (lists(value, "keep-alive")) keep_alive = true;
            } else if (iequals(name, "Content-Length")) {
                has_body |= value != "0";
            } else if (iequals(name, "Transfer-Encoding")) {
                has_body = true;
            }
        }
        if (has_body) {
            // Nothing here takes a body, and skipping one safely is not worth it.
            answer(conn, 400, "Bad Request", "text/plain", "requests with a body are not served\n",
                   false, true);
            return false;
        }
        const bool head_only = method == "HEAD";
        if (method != "GET" && !head_only) {
            answer(conn, 405, "Method Not Allowed", "text/plain", "GET or HEAD only\n", false,
                   !keep_alive, "Allow: GET, HEAD\r\n");
        } else {
            target = target.substr(0, target.find('?'));  // Prometheus may add a query
            if (target == "/metrics") {
                answer(conn, 200, "OK", kExpositionType, render_(), head_only, !keep_alive);
            } else if (target == "/") {
                answer(conn, 200, "OK", "text/plain; charset=utf-8",
                       "kvnode: metrics at /metrics (Prometheus text format)\n", head_only,
                       !keep_alive);
            } else {
                answer(conn, 404, "Not Found", "text/plain", "not found; metrics are at /metrics\n",
                       head_only, !keep_alive);
            }
        }
        if (!keep_alive) return false;
    }
}

void HttpServer::answer(uint64_t conn, int status, std::string_view reason,
                        std::string_view content_type, const std::string& body, bool head_only,
                        bool close, std::string_view extra_headers) {
    Output out;
    out.conn = conn;
    out.close_after = close;
    out.bytes.reserve(160 + (head_only ? 0 : body.size()));
    out.bytes += "HTTP/1.1 " + std::to_string(status) + " ";
    out.bytes += reason;
    out.bytes += "\r\nContent-Type: ";
    out.bytes += content_type;
    out.bytes += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    out.bytes += extra_headers;
    if (close) out.bytes += "Connection: close\r\n";
    out.bytes += "\r\n";
    if (!head_only) out.bytes += body;
    output_.push_back(std::move(out));
}

void HttpServer::take_output(std::vector<Output>& out) {
    out.swap(output_);
    output_.clear();
}

}  // namespace kv::node::metrics
