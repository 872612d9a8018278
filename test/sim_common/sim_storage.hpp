// An in-memory disk for tests and the simulator (docs/design.md section 7.2):
// the real txn::Wal runs on it, and it loses what a power cut may lose and
// fails calls on command. Every choice it makes comes from an rl::Rng the
// caller passes, so a seed replays exactly.
//
// Each file is an inode with its durable bytes and its unsynced changes
// (writes and truncations), which reads see at once. sync_data() makes them
// durable; a failed one drops them, as Linux may after a write-back error,
// so that a retry which only fsyncs again loses them for good. Each folder
// has its durable names and its unsynced operations (create, rename,
// remove), made durable by sync_dir(). Folders themselves are durable as
// soon as they are made.
//
// crash() is a power cut and a reboot: each file keeps any subset of its
// unsynced changes, a write 512-byte sector by sector (a sector may also
// read as zeros where the file grew but the data did not land); each folder
// keeps a random prefix of its unsynced operations; files still open are
// closed for good.
#pragma once

#include "config/random.hpp"
#include "txn/storage.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace rl::simcommon {

// The calls a fault can strike.
enum class StorageCall : std::uint8_t {
    create_dir, list, read, create, open, write, sync, truncate /* and allocate */, rename, remove, sync_dir,
};
inline constexpr std::size_t kStorageCalls = 11;

class SimFile;

class SimStorage final : public txn::Storage {
public:
    static constexpr std::uint64_t kSectorBytes = 512;

    SimStorage() = default;
    SimStorage(const SimStorage&) = delete;
    SimStorage& operator=(const SimStorage&) = delete;
    ~SimStorage() override = default;

    // ---- txn::Storage
    std::error_code create_dir(const std::filesystem::path& dir) override;
    std::error_code list_dir(const std::filesystem::path& dir, std::vector<std::string>& names) override;
    std::error_code file_size(const std::filesystem::path& path, std::uint64_t& size_bytes) override;
    std::error_code read_file(const std::filesystem::path& path, std::uint64_t max_bytes,
                              std::vector<std::uint8_t>& bytes) override;
    std::error_code open_file(const std::filesystem::path& path, std::unique_ptr<txn::StorageFile>& file) override;
    std::error_code create_file(const std::filesystem::path& path, std::unique_ptr<txn::StorageFile>& file) override;
    std::error_code rename(const std::filesystem::path& from, const std::filesystem::path& to) override;
    std::error_code remove(const std::filesystem::path& path) override;
    std::error_code sync_dir(const std::filesystem::path& dir) override;

    // ---- Crashes

    // Power cut and reboot, as described above. Clears a cut_power_after();
    // faults set with fail_next() and fail_randomly() stay.
    void crash(rl::Rng& rng);
    // After `calls` more calls (of any kind), every call fails with EIO and
    // changes nothing, until crash(): the machine lost power mid-operation,
    // and the crash decides what reached the disk.
    void cut_power_after(std::uint64_t calls);

    // ---- Faults. A failed write may have written a prefix of its bytes; a
    // failed sync drops the file's unsynced changes; any other failed call
    // changes nothing.

    // After `skip` calls of `call` that succeed, the next `count` fail with `error`.
    void fail_next(StorageCall call, std::uint64_t count, std::errc error, std::uint64_t skip = 0);
    // Each call of `call` fails with `error` with probability `probability`,
    // drawn from `rng`, which must outlive the setting. Draws nothing while
    // the probability is 0.
    void fail_randomly(StorageCall call, double probability, std::errc error, rl::Rng& rng);
    // Ends every fail_next() and fail_randomly().
    void clear_faults();

    // ---- Counters

    std::uint64_t injected(StorageCall call) const { return injected_[index(call)]; }  // failures it caused
    std::uint64_t injected_total() const;
    std::uint64_t crashes() const { return crashes_; }
    // Unsynced file changes and folder operations: what a crash may lose.
    std::uint64_t unsynced() const;

private:
    friend class SimFile;

    // A write (`bytes` at `offset`) or a truncation (to `offset`), not yet durable.
    struct Change {
        bool truncate = false;
        std::uint64_t offset = 0;
        std::vector<std::uint8_t> bytes;
    };
    struct Inode {
        std::vector<std::uint8_t> durable;
        std::vector<std::uint8_t> current;  // durable with the unsynced changes applied
        std::vector<Change> unsynced;
        std::uint64_t open_files = 0;
    };
    enum class OpKind : std::uint8_t { create, rename, remove };
    struct FolderOp {
        OpKind kind = OpKind::create;
        std::string name;
        std::string to;          // rename only
        std::uint64_t inode = 0;  // create only
    };
    using Names = std::map<std::string, std::uint64_t>;  // name -> inode
    struct Folder {
        Names durable;
        Names current;  // durable with the unsynced operations applied
        std::vector<FolderOp> unsynced;
    };
    struct Fault {
        std::uint64_t skip = 0;
        std::uint64_t count = 0;
        std::errc error = std::errc::io_error;
        double probability = 0;
        std::errc random_error = std::errc::io_error;
    };

    static constexpr std::size_t index(StorageCall call) { return static_cast<std::size_t>(call); }
    static std::string folder_key(const std::filesystem::path& dir);

    std::error_code fault(StorageCall call);
    bool power_off() const { return power_left_ && *power_left_ == 0; }
    Folder* folder_of(const std::filesystem::path& path);
    std::optional<std::uint64_t> inode_at(const std::filesystem::path& path);
    std::unique_ptr<txn::StorageFile> open_inode(std::uint64_t inode);
    void change(Inode& inode, Change c);
    static void apply(std::vector<std::uint8_t>& file, const Change& c);
    static void apply(Names& names, const FolderOp& op);
    static void settle(Inode& inode, rl::Rng& rng);
    void collect_garbage();

    // SimFile's calls; `generation` names the boot that opened the file.
    std::error_code file_write(std::uint64_t inode, std::uint64_t generation, std::uint64_t offset,
                               std::span<const std::uint8_t> bytes);
    std::error_code file_sync(std::uint64_t inode, std::uint64_t generation);
    std::error_code file_truncate(std::uint64_t inode, std::uint64_t generation, std::uint64_t size_bytes);
    std::error_code file_allocate(std::uint64_t inode, std::uint64_t generation, std::uint64_t size_bytes);
    void file_closed(std::uint64_t inode, std::uint64_t generation);

    std::map<std::string, Folder> folders_;
    std::map<std::uint64_t, Inode> inodes_;
    std::uint64_t next_inode_ = 1;
    std::uint64_t generation_ = 0;  // bumped by crash(): files opened before fail with EBADF

    std::array<Fault, kStorageCalls> faults_{};
    rl::Rng* fault_rng_ = nullptr;               // for fail_randomly() and the prefix of a failed write
    std::optional<std::uint64_t> power_left_;    // calls before the power goes
    std::array<std::uint64_t, kStorageCalls> injected_{};
    std::uint64_t crashes_ = 0;
};

}  // namespace rl::simcommon
