#include "transport/frame.hpp"

#include "config/crc32c.hpp"
#include "config/bounded_archive.hpp"
#include "config/vector_archive.hpp"

#include <cereal/archives/portable_binary.hpp>

#include <array>

namespace rl::transport {
namespace {

template <class... A>
constexpr bool unique_wire_types(std::variant<A...>*) {
    constexpr std::array<std::uint8_t, sizeof...(A)> types{A::kWireType...};
    for (std::size_t i = 0; i < types.size(); ++i)
        for (std::size_t j = i + 1; j < types.size(); ++j)
            if (types[i] == types[j]) return false;
    return true;
}
static_assert(unique_wire_types(static_cast<Message*>(nullptr)), "two message kinds share a wire type");

void put_u32(std::uint8_t* p, std::uint32_t v) {
    p[0] = static_cast<std::uint8_t>(v >> 24);
    p[1] = static_cast<std::uint8_t>(v >> 16);
    p[2] = static_cast<std::uint8_t>(v >> 8);
    p[3] = static_cast<std::uint8_t>(v);
}

std::uint32_t get_u32(const std::uint8_t* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

template <class T>
Message decode_as(std::span<const std::uint8_t> payload) {
    T value{};
    BoundedInputArchive ar(payload);
    ar(value);
    if (ar.remaining() != 0) {
        throw cereal::Exception(std::to_string(ar.remaining()) + " trailing bytes after the message");
    }
    return Message{std::move(value)};
}

// One decoder per message kind, indexed by type byte; built once from the
// Message variant so a new kind needs no edit here.
using DecodeFn = Message (*)(std::span<const std::uint8_t>);

template <class... A>
constexpr std::array<DecodeFn, 256> make_decoders(std::variant<A...>*) {
    std::array<DecodeFn, 256> table{};
    ((table[A::kWireType] = &decode_as<A>), ...);
    return table;
}
constexpr std::array<DecodeFn, 256> kDecoders = make_decoders(static_cast<Message*>(nullptr));

}  // namespace

const char* to_string(FrameError e) {
    switch (e) {
        case FrameError::bad_magic: return "bad_magic";
        case FrameError::bad_version: return "bad_version";
        case FrameError::bad_length: return "bad_length";
        case FrameError::unknown_type: return "unknown_type";
        case FrameError::bad_crc: return "bad_crc";
        case FrameError::bad_payload: return "bad_payload";
        case FrameError::truncated: return "truncated";
    }
    return "unknown";
}

std::uint8_t wire_type(const Message& m) {
    return std::visit([](const auto& v) { return std::decay_t<decltype(v)>::kWireType; }, m);
}

bool known_wire_type(std::uint8_t type) { return kDecoders[type] != nullptr; }

// The payload is encoded in place after room for the header.
std::optional<Bytes> encode_frame(const Message& m, std::uint32_t frame_bytes_max) {
    Bytes frame(kHeaderBytes);
    frame.reserve(256);
    {
        VectorOutputArchive ar(frame);
        std::visit([&](const auto& v) { ar(v); }, m);
    }
    const std::size_t payload_bytes = frame.size() - kHeaderBytes;
    const std::size_t length = kHeaderBytes - kLengthFieldBytes + payload_bytes;
    if (length > frame_bytes_max) return std::nullopt;

    put_u32(frame.data(), static_cast<std::uint32_t>(length));
    frame[4] = static_cast<std::uint8_t>(kMagic >> 8);
    frame[5] = static_cast<std::uint8_t>(kMagic & 0xFF);
    frame[6] = kProtocolVersion;
    frame[7] = wire_type(m);
    put_u32(frame.data() + 8, crc32c({frame.data() + kHeaderBytes, payload_bytes}));
    return frame;
}

std::variant<Message, DecodeFailure> decode_payload(std::uint8_t type, std::span<const std::uint8_t> payload) {
    if (kDecoders[type] == nullptr) {
        return DecodeFailure{FrameError::unknown_type, "type " + std::to_string(type)};
    }
    try {
        return kDecoders[type](payload);
    } catch (const cereal::Exception& e) {
        return DecodeFailure{FrameError::bad_payload, "type " + std::to_string(type) + ": " + e.what()};
    } catch (const std::exception& e) {
        return DecodeFailure{FrameError::bad_payload, "type " + std::to_string(type) + ": " + e.what()};
    }
}

void FrameDecoder::feed(std::span<const std::uint8_t> bytes) {
    // Reclaim consumed space before growing, so a long-lived connection
    // holds at most one partial frame plus one read.
    if (consumed_ > 0 && consumed_ * 2 >= buffer_.size()) {
        buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(consumed_));
        consumed_ = 0;
    }
    buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

FrameDecoder::Result FrameDecoder::next() {
    const std::size_t avail = buffer_.size() - consumed_;
    if (avail < kHeaderBytes) return NeedMore{};
    const std::uint8_t* h = buffer_.data() + consumed_;

    const std::uint32_t length = get_u32(h);
    const std::uint16_t magic = static_cast<std::uint16_t>((h[4] << 8) | h[5]);
    const std::uint8_t version = h[6];
    const std::uint8_t type = h[7];
    if (magic != kMagic) return DecodeFailure{FrameError::bad_magic, "magic " + std::to_string(magic)};
    if (version != kProtocolVersion) {
        return DecodeFailure{FrameError::bad_version, "version " + std::to_string(version)};
    }
    if (length < kHeaderBytes - kLengthFieldBytes || length > frame_bytes_max_) {
        return DecodeFailure{FrameError::bad_length,
                             "length " + std::to_string(length) + " max " + std::to_string(frame_bytes_max_)};
    }
    if (!known_wire_type(type)) return DecodeFailure{FrameError::unknown_type, "type " + std::to_string(type)};
    if (avail < kLengthFieldBytes + length) return NeedMore{};

    const std::span<const std::uint8_t> payload{h + kHeaderBytes, length - (kHeaderBytes - kLengthFieldBytes)};
    const std::uint32_t want_crc = get_u32(h + 8);
    if (crc32c(payload) != want_crc) return DecodeFailure{FrameError::bad_crc, "type " + std::to_string(type)};
    auto decoded = decode_payload(type, payload);
    consumed_ += kLengthFieldBytes + length;
    if (auto* failure = std::get_if<DecodeFailure>(&decoded)) return *failure;
    return std::get<Message>(std::move(decoded));
}

std::optional<DecodeFailure> FrameDecoder::finish() const {
    const std::size_t left = buffer_.size() - consumed_;
    if (left == 0) return std::nullopt;
    return DecodeFailure{FrameError::truncated, std::to_string(left) + " bytes of an unfinished frame"};
}

}  // namespace rl::transport
