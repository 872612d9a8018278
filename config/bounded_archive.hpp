// Reads cereal's PortableBinary format from a byte span, refusing any size
// tag larger than the bytes left in the payload. cereal's own input archive
// resizes a container to whatever length the wire claims before reading it,
// so a 30-byte frame could ask for a 2^60-byte string; here every allocation
// a frame can cause is bounded by the frame's own length (times the element
// size), which the frame header already bounded by frame_bytes_max.
#pragma once

#include <cereal/archives/portable_binary.hpp>
#include <cereal/cereal.hpp>

#include <cstdint>
#include <cstring>
#include <span>
#include <string>

namespace rl {

class BoundedInputArchive
    : public cereal::InputArchive<BoundedInputArchive, cereal::AllowEmptyClassElision> {
public:
    explicit BoundedInputArchive(std::span<const std::uint8_t> data)
        : cereal::InputArchive<BoundedInputArchive, cereal::AllowEmptyClassElision>(this), data_(data) {
        std::uint8_t stream_little_endian = 0;
        (*this)(stream_little_endian);
        if (stream_little_endian > 1) throw cereal::Exception("bad endianness marker");
        swap_ = cereal::portable_binary_detail::is_little_endian() != (stream_little_endian == 1);
    }

    std::size_t remaining() const { return data_.size() - offset_; }

    template <std::streamsize DataSize>
    void loadBinary(void* const out, std::streamsize size) {
        const auto n = static_cast<std::size_t>(size);
        if (n > remaining()) {
            throw cereal::Exception("payload ends after " + std::to_string(remaining()) + " of " +
                                    std::to_string(n) + " bytes");
        }
        if (n == 0) return;  // an empty vector's data() may be null: memcpy must not see it
        std::memcpy(out, data_.data() + offset_, n);
        offset_ += n;
        if (swap_) {
            auto* p = static_cast<std::uint8_t*>(out);
            for (std::size_t i = 0; i < n; i += DataSize) cereal::portable_binary_detail::swap_bytes<DataSize>(p + i);
        }
    }

private:
    std::span<const std::uint8_t> data_;
    std::size_t offset_ = 0;
    bool swap_ = false;
};

template <class T>
inline std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, T& t) {
    ar.template loadBinary<sizeof(T)>(std::addressof(t), sizeof(t));
}

template <class T>
inline void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, cereal::NameValuePair<T>& t) {
    ar(t.value);
}

// Every element of a container takes at least one byte of payload, so a
// count above the bytes left can only be a lie: refuse it before cereal
// allocates for it.
template <class T>
inline void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, cereal::SizeTag<T>& t) {
    ar(t.size);
    if (t.size > ar.remaining()) {
        throw cereal::Exception("container claims " + std::to_string(t.size) + " elements with " +
                                std::to_string(ar.remaining()) + " bytes left");
    }
}

template <class T>
inline void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, cereal::BinaryData<T>& bd) {
    using Element = std::remove_pointer_t<T>;
    ar.template loadBinary<sizeof(Element)>(bd.data, static_cast<std::streamsize>(bd.size));
}

}  // namespace rl

CEREAL_REGISTER_ARCHIVE(rl::BoundedInputArchive)

// cereal pairs archives to check load/save symmetry. PortableBinaryOutput is
// already paired with cereal's own input archive, so only this direction is
// declared.
namespace cereal::traits::detail {
template <>
struct get_output_from_input<rl::BoundedInputArchive> {
    using type = cereal::PortableBinaryOutputArchive;
};
}  // namespace cereal::traits::detail
