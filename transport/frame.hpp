// Framing (docs/design.md section 3):
//   u32 length  big-endian, bytes after this field (header rest + payload)
//   u16 magic   0x524C ("RL")
//   u8  version 1
//   u8  type    message kind
//   u32 crc32c  of payload
//   ... payload cereal PortableBinary of the message struct
// FrameDecoder is sans-I/O: bytes in, frames or one error out. The header is
// checked before the body is awaited, so a bogus length never makes it hold
// more than frame_bytes_max.
#pragma once

#include "transport/messages.hpp"

#include <cstdint>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace rl::transport {

inline constexpr std::uint16_t kMagic = 0x524C;
inline constexpr std::size_t kLengthFieldBytes = 4;
inline constexpr std::size_t kHeaderBytes = 12;  // length + magic + version + type + crc

using Bytes = std::vector<std::uint8_t>;

enum class FrameError {
    bad_magic,
    bad_version,
    bad_length,     // shorter than a header or longer than frame_bytes_max
    unknown_type,
    bad_crc,
    bad_payload,    // CRC fine, but the payload does not decode as its type
    truncated,      // the connection ended inside a frame
};
const char* to_string(FrameError e);
inline std::ostream& operator<<(std::ostream& os, FrameError e) { return os << to_string(e); }

struct DecodeFailure {
    FrameError error;
    std::string detail;  // one line for the log
};

// Encodes one message as a complete frame. Returns nullopt when the frame
// would exceed frame_bytes_max (the caller logs and drops it).
std::optional<Bytes> encode_frame(const Message& m, std::uint32_t frame_bytes_max);

// Decodes a payload of the given type (CRC already checked).
std::variant<Message, DecodeFailure> decode_payload(std::uint8_t type, std::span<const std::uint8_t> payload);

class FrameDecoder {
public:
    struct NeedMore {};
    using Result = std::variant<NeedMore, Message, DecodeFailure>;

    explicit FrameDecoder(std::uint32_t frame_bytes_max) : frame_bytes_max_(frame_bytes_max) {}

    // Appends received bytes. Never call again after next() failed.
    void feed(std::span<const std::uint8_t> bytes);
    // The next complete message, NeedMore, or the error that must close the
    // connection.
    Result next();
    // Call when the stream ends: a failure if a frame was cut short.
    std::optional<DecodeFailure> finish() const;
    // Bytes currently held (for the memory bound tests).
    std::size_t buffered() const { return buffer_.size() - consumed_; }

private:
    std::uint32_t frame_bytes_max_;
    Bytes buffer_;
    std::size_t consumed_ = 0;
};

}  // namespace rl::transport
