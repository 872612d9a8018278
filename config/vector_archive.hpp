// Writes cereal's PortableBinary format, little-endian, straight onto the
// end of a byte vector: the same bytes as cereal::PortableBinaryOutputArchive
// with Options::LittleEndian() over a std::ostringstream, without the stream
// (its locale lookups, its buffer and the copies out of it). Every frame and
// every WAL record is encoded with it (docs/performance.md). BoundedInputArchive
// (config/bounded_archive.hpp) reads what it writes.
#pragma once

#include <cereal/archives/portable_binary.hpp>
#include <cereal/cereal.hpp>

#include <bit>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

namespace rl {

class VectorOutputArchive : public cereal::OutputArchive<VectorOutputArchive, cereal::AllowEmptyClassElision> {
public:
    // Appends to `out`, starting with the little-endian marker cereal's
    // portable archive writes first.
    explicit VectorOutputArchive(std::vector<std::uint8_t>& out)
        : cereal::OutputArchive<VectorOutputArchive, cereal::AllowEmptyClassElision>(this), out_(out) {
        (*this)(std::uint8_t{1});
    }

    template <std::streamsize DataSize>
    void saveBinary(const void* data, std::streamsize size) {
        const auto* bytes = static_cast<const std::uint8_t*>(data);
        const auto n = static_cast<std::size_t>(size);
        if constexpr (std::endian::native == std::endian::little) {
            out_.insert(out_.end(), bytes, bytes + n);
        } else {
            for (std::size_t i = 0; i < n; i += DataSize) {
                for (std::size_t j = 0; j < DataSize; ++j) out_.push_back(bytes[i + DataSize - j - 1]);
            }
        }
    }

private:
    std::vector<std::uint8_t>& out_;
};

template <class T>
inline std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_SAVE_FUNCTION_NAME(VectorOutputArchive& ar, const T& t) {
    ar.template saveBinary<sizeof(T)>(std::addressof(t), sizeof(t));
}

template <class T>
inline void CEREAL_SAVE_FUNCTION_NAME(VectorOutputArchive& ar, const cereal::NameValuePair<T>& t) {
    ar(t.value);
}

template <class T>
inline void CEREAL_SAVE_FUNCTION_NAME(VectorOutputArchive& ar, const cereal::SizeTag<T>& t) {
    ar(t.size);
}

template <class T>
inline void CEREAL_SAVE_FUNCTION_NAME(VectorOutputArchive& ar, const cereal::BinaryData<T>& bd) {
    using Element = std::remove_pointer_t<T>;
    ar.template saveBinary<sizeof(Element)>(bd.data, static_cast<std::streamsize>(bd.size));
}

}  // namespace rl

CEREAL_REGISTER_ARCHIVE(rl::VectorOutputArchive)

// cereal pairs archives to check load/save symmetry: this one writes what
// its portable input archive reads.
namespace cereal::traits::detail {
template <>
struct get_input_from_output<rl::VectorOutputArchive> {
    using type = cereal::PortableBinaryInputArchive;
};
}  // namespace cereal::traits::detail
