// One end of a connection as a node or a client will own it: a FrameLink
// (client/frame_link.h) that first runs the handshake (client/frame_handshake.h)
// and then seals every frame it sends and opens every frame it receives
// (client/frame_seal.h), or, without keys, carries frames as they are (the
// node's protected and insecure modes, docs/SECURITY.md).
//
// Why one object: the three layers must agree on every frame's fate. A frame
// queued before the session exists waits in the clear until it does; a frame
// too long is refused before it is sealed (a sealed frame the link then
// refused would leave a gap in the counter, and the peer would end the
// session); after any failure no frame is handed over, however many the same
// read brought.
//
// Driving it: as a FrameLink. The owner waits on fd() for input (and for
// output while wants_write()), calls receive() and flush(), and closes the
// link (destroys it) once either is not ok: after a failed handshake, one
// flush() first writes the ERROR that says why (best effort). The owner also
// keeps the time: a link not established() soon enough is closed by it.
// Thread-safety: none; one owner.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/frame_handshake.h"
#include "client/frame_link.h"
#include "client/status.h"

namespace kv::client {

class SecureLink {
  public:
    // The client end: queues HELLO at once (flush() sends it), and proves
    // `ours` to a server that must prove `server_key`, offering `ciphers`.
    static std::unique_ptr<SecureLink> client(int fd, size_t frame_bytes_max, const CurveKeys& ours,
                                              const CurveKey& server_key, std::string metadata,
                                              uint8_t ciphers = ciphers_available());
    // The server end: proves `ours` and admits the client keys `admit` takes.
    static std::unique_ptr<SecureLink> server(int fd, size_t frame_bytes_max, const CurveKeys& ours,
                                              HandshakeServer::Admit admit, std::string metadata);
    // Either end without keys: frames as they are, established at once.
    static std::unique_ptr<SecureLink> plain(int fd, size_t frame_bytes_max);

    SecureLink(const SecureLink&) = delete;
    SecureLink& operator=(const SecureLink&) = delete;

    int fd() const { return link_.fd(); }
    // The largest frame send() takes and receive() hands over (before
    // sealing: what the owner's messages may be).
    size_t frame_bytes_max() const { return frame_bytes_max_; }

    // Reads what the kernel holds; handshake frames go to the handshake (its
    // replies are queued), and once established each frame is opened and
    // handed to on_frame(std::string_view) in order (a view lives until
    // on_frame returns). Not ok once the link is finished: the handshake
    // failed (its status: unauthorized for a key refused at either end), a
    // frame did not open (bad_request), the peer closed (connection) or sent
    // a frame too long (message_too_large); then nothing more is handed over.
    template <typename OnFrame>
    Status receive(OnFrame&& on_frame) {
        if (!failure_.ok()) return failure_;
        const Status read = link_.receive([&](std::string_view frame) {
            if (!failure_.ok()) return;
            if (!session_ && !plain_) return on_handshake_frame(frame);
            if (session_ && !open(frame)) return;
            on_frame(frame);
        });
        if (!failure_.ok()) return failure_;
        return read;
    }

    // Queues one frame; sealed and written by flush() once the session is
    // established (in order with every frame queued before). Refused
    // (message_too_large) above frame_bytes_max(), and after a failure.
    Status send(std::string_view frame);
    Status flush() { return link_.flush(); }
    bool wants_write() const { return link_.wants_write(); }
    // Bytes waiting: queued on the link, plus frames held until the session
    // is established. The owner bounds what it queues for a slow peer by it.
    size_t queued_bytes() const { return link_.queued_bytes() + held_bytes_; }

    bool established() const { return plain_ || session_ != nullptr; }
    // The link failed before its session was made (the handshake, or the
    // connection during it).
    bool failed_in_handshake() const { return !failure_.ok() && !established(); }
    // The other end's long-term key (the client's at a server, the expected
    // server key at a client) once established; null without keys.
    const CurveKey* peer_key() const { return session_ ? &session_->peer_key : nullptr; }
    // The cipher the session seals with, once established with keys.
    std::optional<SealCipher> cipher() const {
        return session_ ? std::optional<SealCipher>(session_->cipher) : std::nullopt;
    }
    std::string_view peer_metadata() const {
        return session_ ? std::string_view(session_->peer_metadata) : std::string_view();
    }

  private:
    SecureLink(int fd, size_t frame_bytes_max, bool plain);
    void on_handshake_frame(std::string_view frame);
    // Points `frame` at its opened bytes (in opened_); false (and failure_)
    // when it does not open.
    bool open(std::string_view& frame);
    Status queue_sealed(std::string_view frame);

    FrameLink link_;
    size_t frame_bytes_max_;
    bool plain_;
    std::optional<HandshakeClient> handshake_client_;
    std::optional<HandshakeServer> handshake_server_;
    std::unique_ptr<HandshakeSession> session_;
    Status failure_;
    std::vector<std::string> held_;  // sent before the session was established
    size_t held_bytes_ = 0;
    std::string sealed_, opened_;  // scratch, reused
};

}  // namespace kv::client
