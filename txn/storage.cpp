#include "txn/storage.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace rl::txn {
namespace fs = std::filesystem;

namespace {

std::error_code errno_code(int err) { return {err, std::generic_category()}; }

std::error_code last_error() { return errno_code(errno); }

class PosixFile final : public StorageFile {
public:
    explicit PosixFile(int fd) : fd_(fd) {}
    PosixFile(const PosixFile&) = delete;
    PosixFile& operator=(const PosixFile&) = delete;
    ~PosixFile() override { ::close(fd_); }

    std::error_code write_at(std::uint64_t offset, std::span<const std::uint8_t> bytes) override {
        while (!bytes.empty()) {
            const ssize_t n = ::pwrite(fd_, bytes.data(), bytes.size(), static_cast<off_t>(offset));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return n < 0 ? last_error() : errno_code(EIO);
            offset += static_cast<std::uint64_t>(n);
            bytes = bytes.subspan(static_cast<std::size_t>(n));
        }
        return {};
    }

    std::error_code sync_data() override {
        while (::fdatasync(fd_) != 0) {
            if (errno != EINTR) return last_error();
        }
        return {};
    }

    std::error_code truncate(std::uint64_t size_bytes) override {
        while (::ftruncate(fd_, static_cast<off_t>(size_bytes)) != 0) {
            if (errno != EINTR) return last_error();
        }
        return {};
    }

    std::error_code allocate(std::uint64_t size_bytes) override {
        while (::fallocate(fd_, 0, 0, static_cast<off_t>(size_bytes)) != 0) {
            if (errno != EINTR) return last_error();
        }
        return {};
    }

    int native_handle() const override { return fd_; }

private:
    int fd_;
};

std::error_code open_fd(const fs::path& path, int flags, std::unique_ptr<StorageFile>& file) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
    if (fd < 0) return last_error();
    file = std::make_unique<PosixFile>(fd);
    return {};
}

}  // namespace

std::error_code PosixStorage::create_dir(const fs::path& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    return ec;
}

std::error_code PosixStorage::list_dir(const fs::path& dir, std::vector<std::string>& names) {
    names.clear();
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        names.push_back(it->path().filename().string());
    }
    return ec;
}

std::error_code PosixStorage::file_size(const fs::path& path, std::uint64_t& size_bytes) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return last_error();
    size_bytes = static_cast<std::uint64_t>(st.st_size);
    return {};
}

std::error_code PosixStorage::read_file(const fs::path& path, std::uint64_t max_bytes,
                                        std::vector<std::uint8_t>& bytes) {
    bytes.clear();
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return last_error();
    struct stat st {};
    int err = ::fstat(fd, &st) == 0 ? 0 : errno;
    if (err == 0) bytes.resize(std::min(static_cast<std::uint64_t>(st.st_size), max_bytes));
    for (std::size_t got = 0; err == 0 && got < bytes.size();) {
        const ssize_t n = ::pread(fd, bytes.data() + got, bytes.size() - got, static_cast<off_t>(got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) err = n < 0 ? errno : EIO;  // EOF early: the file shrank under us
        else got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    return err == 0 ? std::error_code{} : errno_code(err);
}

std::error_code PosixStorage::open_file(const fs::path& path, std::unique_ptr<StorageFile>& file) {
    return open_fd(path, O_WRONLY, file);
}

std::error_code PosixStorage::create_file(const fs::path& path, std::unique_ptr<StorageFile>& file) {
    return open_fd(path, O_CREAT | O_TRUNC | O_WRONLY, file);
}

std::error_code PosixStorage::rename(const fs::path& from, const fs::path& to) {
    return ::rename(from.c_str(), to.c_str()) == 0 ? std::error_code{} : last_error();
}

std::error_code PosixStorage::remove(const fs::path& path) {
    return ::unlink(path.c_str()) == 0 ? std::error_code{} : last_error();
}

std::error_code PosixStorage::sync_dir(const fs::path& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return last_error();
    int err = 0;
    while (::fsync(fd) != 0) {
        if (errno != EINTR) {
            err = errno;
            break;
        }
    }
    ::close(fd);
    return err == 0 ? std::error_code{} : errno_code(err);
}

}  // namespace rl::txn
