// CRC-32C (Castagnoli), the checksum of every frame payload and WAL record.
#pragma once

#include <boost/crc.hpp>

#include <cstdint>
#include <span>

namespace rl {

inline std::uint32_t crc32c(std::span<const std::uint8_t> bytes) {
    boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
    crc.process_bytes(bytes.data(), bytes.size());
    return crc.checksum();
}

}  // namespace rl
