// The file-system calls of the write-ahead log (docs/design.md section 6)
// behind one interface, so that tests and the simulator run the real Wal on
// an in-memory disk that crashes and fails on command (section 7.2). Every
// call returns an error code instead of throwing; the Wal turns a failure
// into WalIoError.
//
// The durability contract is POSIX's, and the Wal relies on nothing more:
// written bytes are durable once sync_data() on their file returns success,
// a name created, renamed or removed once sync_dir() on its folder does.
// After a failed sync_data() the bytes written since the last success may
// be lost even though reads still return them, and a later success says
// nothing about them: they must be written again.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace rl::txn {

// A file open for writing; destroying it closes the file.
class StorageFile {
public:
    virtual ~StorageFile() = default;

    // Writes all of `bytes` at `offset` (pwrite). After a failure any part
    // of them may have been written.
    virtual std::error_code write_at(std::uint64_t offset, std::span<const std::uint8_t> bytes) = 0;
    // Makes the bytes written so far durable (fdatasync).
    virtual std::error_code sync_data() = 0;
    // Sets the file's size (ftruncate); durable with the next sync_data().
    virtual std::error_code truncate(std::uint64_t size_bytes) = 0;
    // Makes the file at least `size_bytes` long, the new bytes reading as
    // zeros, with their blocks reserved (fallocate), so that later writes
    // inside it change no metadata their sync_data() must also write.
    // Durable with the next sync_data(). A file system that cannot reserve
    // space fails it, and nothing depends on it.
    virtual std::error_code allocate(std::uint64_t size_bytes) {
        (void)size_bytes;
        return std::make_error_code(std::errc::operation_not_supported);
    }
    // The file descriptor, for a host that runs the fdatasync itself
    // without blocking its thread (io_uring); -1 for a file that has none.
    virtual int native_handle() const { return -1; }
};

class Storage {
public:
    virtual ~Storage() = default;

    // Creates `dir` and any missing parent; an existing folder is fine.
    virtual std::error_code create_dir(const std::filesystem::path& dir) = 0;
    // The names of the entries in `dir`, in no particular order.
    virtual std::error_code list_dir(const std::filesystem::path& dir, std::vector<std::string>& names) = 0;
    // errc::no_such_file_or_directory when there is no such file.
    virtual std::error_code file_size(const std::filesystem::path& path, std::uint64_t& size_bytes) = 0;
    // At most `max_bytes` from the start of `path`.
    virtual std::error_code read_file(const std::filesystem::path& path, std::uint64_t max_bytes,
                                      std::vector<std::uint8_t>& bytes) = 0;
    // Opens an existing file for writing.
    virtual std::error_code open_file(const std::filesystem::path& path, std::unique_ptr<StorageFile>& file) = 0;
    // Creates `path` for writing, or empties it if it exists (O_CREAT | O_TRUNC).
    virtual std::error_code create_file(const std::filesystem::path& path, std::unique_ptr<StorageFile>& file) = 0;
    // Renames `from` to `to` in the same folder, replacing `to` if it exists.
    virtual std::error_code rename(const std::filesystem::path& from, const std::filesystem::path& to) = 0;
    // Removes the name `path` (unlink).
    virtual std::error_code remove(const std::filesystem::path& path) = 0;
    // Makes every creation, rename and removal in `dir` durable (fsync of the folder).
    virtual std::error_code sync_dir(const std::filesystem::path& dir) = 0;
};

// The real file system, through POSIX calls; EINTR is retried. Holds no
// state, so one object can serve any number of Wals.
class PosixStorage final : public Storage {
public:
    std::error_code create_dir(const std::filesystem::path& dir) override;
    std::error_code list_dir(const std::filesystem::path& dir, std::vector<std::string>& names) override;
    std::error_code file_size(const std::filesystem::path& path, std::uint64_t& size_bytes) override;
    std::error_code read_file(const std::filesystem::path& path, std::uint64_t max_bytes,
                              std::vector<std::uint8_t>& bytes) override;
    std::error_code open_file(const std::filesystem::path& path, std::unique_ptr<StorageFile>& file) override;
    std::error_code create_file(const std::filesystem::path& path, std::unique_ptr<StorageFile>& file) override;
    std::error_code rename(const std::filesystem::path& from, const std::filesystem::path& to) override;
    std::error_code remove(const std::filesystem::path& path) override;
    std::error_code sync_dir(const std::filesystem::path& dir) override;
};

}  // namespace rl::txn
