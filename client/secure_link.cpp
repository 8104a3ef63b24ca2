#include "client/secure_link.h"

#include <algorithm>
#include <cassert>

namespace kv::client {

namespace {

// What the FrameLink must carry: a sealed frame of the owner's largest, and
// every handshake frame.
size_t wire_frame_bytes_max(size_t frame_bytes_max, bool plain) {
    if (plain) return frame_bytes_max;
    return std::max(frame_bytes_max + kSealOverheadBytes, kHandshakeFrameBytesMax);
}

}  // namespace

SecureLink::SecureLink(int fd, size_t frame_bytes_max, bool plain)
    : link_(fd, wire_frame_bytes_max(frame_bytes_max, plain)),
      frame_bytes_max_(frame_bytes_max),
      plain_(plain) {}

std::unique_ptr<SecureLink> SecureLink::client(int fd, size_t frame_bytes_max,
                                               const CurveKeys& ours, const CurveKey& server_key,
                                               std::string metadata, uint8_t ciphers) {
    std::unique_ptr<SecureLink> link(new SecureLink(fd, frame_bytes_max, false));
    link->handshake_client_.emplace(ours, server_key, std::move(metadata), ciphers);
    auto hello = link->handshake_client_->hello();
    link->failure_ = hello ? link->link_.send(hello.value()) : hello.status();
    return link;
}

std::unique_ptr<SecureLink> SecureLink::server(int fd, size_t frame_bytes_max,
                                               const CurveKeys& ours, HandshakeServer::Admit admit,
                                               std::string metadata) {
    std::unique_ptr<SecureLink> link(new SecureLink(fd, frame_bytes_max, false));
    link->handshake_server_.emplace(ours, std::move(admit), std::move(metadata));
    return link;
}

std::unique_ptr<SecureLink> SecureLink::plain(int fd, size_t frame_bytes_max) {
    return std::unique_ptr<SecureLink>(new SecureLink(fd, frame_bytes_max, true));
}

void SecureLink::on_handshake_frame(std::string_view frame) {
    HandshakeStep step =
        handshake_client_ ? handshake_client_->on_frame(frame) : handshake_server_->on_frame(frame);
    if (!step.reply.empty()) {
        // Handshake frames are below the link's limit by its construction.
        const Status queued = link_.send(step.reply);
        assert(queued.ok());
        (void)queued;
    }
    if (!step.status.ok()) {
        failure_ = std::move(step.status);
        return;
    }
    if (!step.established) return;
    session_ =
        handshake_client_ ? handshake_client_->take_session() : handshake_server_->take_session();
    handshake_client_.reset();
    handshake_server_.reset();
    for (const std::string& held : held_) {
        if (Status queued = queue_sealed(held); !queued.ok()) {
            failure_ = std::move(queued);
            break;
        }
    }
    held_.clear();
    held_.shrink_to_fit();
    held_bytes_ = 0;
}

bool SecureLink::open(std::string_view& frame) {
    Status opened = session_->opener.open(frame, opened_);
    if (!opened.ok()) {
        failure_ = std::move(opened);
        return false;
    }
    frame = opened_;
    return true;
}

Status SecureLink::queue_sealed(std::string_view frame) {
    sealed_.clear();
    if (Status sealed = session_->sealer.seal(frame, sealed_); !sealed.ok()) return sealed;
    return link_.send(sealed_);
}

Status SecureLink::send(std::string_view frame) {
    if (!failure_.ok()) return failure_;
    if (frame.size() > frame_bytes_max_) {
        return {ErrorCode::message_too_large, "a frame of " + std::to_string(frame.size()) +
                                                  " bytes, above the link's " +
                                                  std::to_string(frame_bytes_max_)};
    }
    if (plain_) return link_.send(frame);
    if (!session_) {
        held_.emplace_back(frame);
        held_bytes_ += frame.size();
        return {};
    }
    Status queued = queue_sealed(frame);
    if (!queued.ok()) failure_ = queued;
    return queued;
}

}  // namespace kv::client
