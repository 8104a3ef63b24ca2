// The HTTP side of --metrics-listen: just enough HTTP/1.1 for a Prometheus
// scrape (GET or HEAD of /metrics), curl, or a browser. Pure, like the Redis
// gateway: the runtime hands it each connection's bytes (a ZMQ_STREAM socket
// polled by the node's loop, so no thread and no lock: the page is rendered
// from the node's live state when asked) and sends what it returns.
//
// Bounds: a request's head (request line and headers) is at most
// kHeadBytesMax; a request with a body, a malformed one or a longer head is
// answered 4xx and the connection closed. Keep-alive as HTTP/1.1 defines it
// (HTTP/1.0: closed after the answer unless it asked to keep it). At most
// kConnectionsMax connections are served at once (a scraper needs one); one
// more is answered 503 and closed, so the page's memory stays bounded.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace kv::node::metrics {

class HttpServer {
  public:
    static constexpr size_t kHeadBytesMax = 16 * 1024;
    static constexpr size_t kConnectionsMax = 64;

    // Renders the /metrics page (Prometheus text exposition).
    using Render = std::function<std::string()>;
    explicit HttpServer(Render render) : render_(std::move(render)) {}

    void open(uint64_t conn);
    void receive(uint64_t conn, std::string_view bytes);
    void close(uint64_t conn);

    struct Output {
        uint64_t conn = 0;
        std::string bytes;
        bool close_after = false;
    };
    // What to send since the last call, in order.
    void take_output(std::vector<Output>& out);

    uint64_t requests() const { return requests_; }
    size_t connections() const { return input_.size(); }

  private:
    // Answers the complete requests at the front of `conn`'s input; false once
    // the connection is to close.
    bool serve(uint64_t conn, std::string& input);
    void answer(uint64_t conn, int status, std::string_view reason, std::string_view content_type,
                const std::string& body, bool head_only, bool close,
                std::string_view extra_headers = {});

    Render render_;
    std::map<uint64_t, std::string> input_;  // unparsed bytes by open connection
    std::vector<Output> output_;
    uint64_t requests_ = 0;
};

}  // namespace kv::node::metrics
