#include "node/runtime/stream_socket.h"

namespace kv::node {

StreamSocket::StreamSocket(zmq::context_t& ctx, const std::string& endpoint, int high_water_mark)
    : socket_(ctx, zmq::socket_type::stream) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::sndhwm, high_water_mark);
    socket_.set(zmq::sockopt::rcvhwm, high_water_mark);
    socket_.bind(endpoint);
}

uint32_t StreamSocket::receive(uint32_t max, const Handler& handler, std::string& error) {
    uint32_t handled = 0;
    while (handled < max) {
        zmq::message_t route;
        zmq::message_t data;
        try {
            if (!socket_.recv(route, zmq::recv_flags::dontwait)) break;
            if (!route.more() || !socket_.recv(data, zmq::recv_flags::dontwait)) continue;
        } catch (const zmq::error_t& e) {
            error = e.what();
            break;
        }
        ++handled;
        std::string id = route.to_string();
        auto known = conns_.find(id);
        if (data.size() == 0) {
            if (closed_.erase(id) != 0) continue;  // one closed here
            if (known == conns_.end()) {           // a new connection
                const uint64_t conn = next_conn_++;
                conns_.emplace(id, conn);
                routes_.emplace(conn, std::move(id));
                handler.open(conn);
            } else {  // the client closed it
                const uint64_t conn = known->second;
                routes_.erase(conn);
                conns_.erase(known);
                handler.close(conn);
            }
            continue;
        }
        if (known == conns_.end()) continue;  // closed here, data still in flight
        handler.receive(known->second, data.to_string_view());
    }
    return handled;
}

bool StreamSocket::send(uint64_t conn, std::string_view bytes, std::string& error) {
    auto route = routes_.find(conn);
    if (route == routes_.end()) return false;
    try {
        return socket_
                   .send(zmq::buffer(route->second),
                         zmq::send_flags::sndmore | zmq::send_flags::dontwait)
                   .has_value() &&
               socket_.send(zmq::buffer(bytes), zmq::send_flags::dontwait).has_value();
    } catch (const zmq::error_t& e) {
        if (e.num() != EHOSTUNREACH) error = e.what();
        return false;
    }
}

void StreamSocket::close(uint64_t conn) {
    auto route = routes_.find(conn);
    if (route == routes_.end()) return;
    const std::string id = std::move(route->second);
    routes_.erase(route);
    conns_.erase(id);
    try {
        socket_.send(zmq::buffer(id), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
        socket_.send(zmq::const_buffer(), zmq::send_flags::dontwait);
    } catch (const zmq::error_t&) {
        // Gone already.
    }
    // Its close notice may still come: it must not read as a new connection.
    if (closed_.size() >= kClosedRemembered) closed_.clear();
    closed_.insert(id);
}

}  // namespace kv::node
