// CRC-32C (Castagnoli), the checksum of every frame payload and WAL record.
// Intel's ISA-L computes it with the CPU's CRC and carry-less multiply
// instructions where it has them (over a hundred times faster here than a
// table-driven loop), and in software elsewhere.
#pragma once

#include <isa-l/crc.h>

#include <cstdint>
#include <span>

namespace rl {

inline std::uint32_t crc32c(std::span<const std::uint8_t> bytes) {
    // ISA-L's iSCSI CRC is CRC-32C without the final inversion; it reads
    // the buffer only (its parameter is not const) and takes an int length,
    // which every frame and WAL batch (at most 64 MiB) fits.
    auto* data = const_cast<unsigned char*>(bytes.data());
    return crc32_iscsi(data, static_cast<int>(bytes.size()), 0xFFFFFFFFU) ^ 0xFFFFFFFFU;
}

}  // namespace rl
