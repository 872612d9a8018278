#include "sim_storage.hpp"

#include <algorithm>
#include <numeric>
#include <set>
#include <utility>

namespace rl::simcommon {
namespace fs = std::filesystem;

namespace {

std::error_code error(std::errc e) { return std::make_error_code(e); }

}  // namespace

// A file open for writing: an inode of the boot that opened it.
class SimFile final : public txn::StorageFile {
public:
    SimFile(SimStorage& storage, std::uint64_t inode, std::uint64_t generation)
        : storage_(storage), inode_(inode), generation_(generation) {}
    SimFile(const SimFile&) = delete;
    SimFile& operator=(const SimFile&) = delete;
    ~SimFile() override { storage_.file_closed(inode_, generation_); }

    std::error_code write_at(std::uint64_t offset, std::span<const std::uint8_t> bytes) override {
        return storage_.file_write(inode_, generation_, offset, bytes);
    }
    std::error_code sync_data() override { return storage_.file_sync(inode_, generation_); }
    std::error_code truncate(std::uint64_t size_bytes) override {
        return storage_.file_truncate(inode_, generation_, size_bytes);
    }
    std::error_code allocate(std::uint64_t size_bytes) override {
        return storage_.file_allocate(inode_, generation_, size_bytes);
    }

private:
    SimStorage& storage_;
    std::uint64_t inode_;
    std::uint64_t generation_;
};

// ---- Paths

std::string SimStorage::folder_key(const fs::path& dir) {
    fs::path p = dir.lexically_normal();
    if (!p.has_filename() && p != p.root_path()) p = p.parent_path();  // "a/b/" names folder "a/b"
    return p.string();
}

SimStorage::Folder* SimStorage::folder_of(const fs::path& path) {
    const auto it = folders_.find(folder_key(path.lexically_normal().parent_path()));
    return it == folders_.end() ? nullptr : &it->second;
}

std::optional<std::uint64_t> SimStorage::inode_at(const fs::path& path) {
    const Folder* folder = folder_of(path);
    if (folder == nullptr) return std::nullopt;
    const auto it = folder->current.find(path.filename().string());
    if (it == folder->current.end()) return std::nullopt;
    return it->second;
}

std::unique_ptr<txn::StorageFile> SimStorage::open_inode(std::uint64_t inode) {
    ++inodes_.at(inode).open_files;
    return std::make_unique<SimFile>(*this, inode, generation_);
}

// ---- Faults

std::error_code SimStorage::fault(StorageCall call) {
    if (power_left_) {
        if (*power_left_ == 0) {
            ++injected_[index(call)];
            return error(std::errc::io_error);
        }
        --*power_left_;
    }
    Fault& f = faults_[index(call)];
    if (f.count > 0) {
        if (f.skip > 0) {
            --f.skip;
        } else {
            --f.count;
            ++injected_[index(call)];
            return error(f.error);
        }
    }
    if (fault_rng_ != nullptr && chance(*fault_rng_, f.probability)) {
        ++injected_[index(call)];
        return error(f.random_error);
    }
    return {};
}

void SimStorage::fail_next(StorageCall call, std::uint64_t count, std::errc error, std::uint64_t skip) {
    Fault& f = faults_[index(call)];
    f.skip = skip;
    f.count = count;
    f.error = error;
}

void SimStorage::fail_randomly(StorageCall call, double probability, std::errc error, rl::Rng& rng) {
    Fault& f = faults_[index(call)];
    f.probability = probability;
    f.random_error = error;
    fault_rng_ = &rng;
}

void SimStorage::clear_faults() {
    faults_ = {};
    fault_rng_ = nullptr;
}

void SimStorage::cut_power_after(std::uint64_t calls) { power_left_ = calls; }

std::uint64_t SimStorage::injected_total() const {
    return std::accumulate(injected_.begin(), injected_.end(), std::uint64_t{0});
}

std::uint64_t SimStorage::unsynced() const {
    std::uint64_t n = 0;
    for (const auto& [id, inode] : inodes_) n += inode.unsynced.size();
    for (const auto& [key, folder] : folders_) n += folder.unsynced.size();
    return n;
}

// ---- Folders and names

std::error_code SimStorage::create_dir(const fs::path& dir) {
    if (const auto ec = fault(StorageCall::create_dir)) return ec;
    folders_.try_emplace(folder_key(dir));
    return {};
}

std::error_code SimStorage::list_dir(const fs::path& dir, std::vector<std::string>& names) {
    names.clear();
    if (const auto ec = fault(StorageCall::list)) return ec;
    const auto it = folders_.find(folder_key(dir));
    if (it == folders_.end()) return error(std::errc::no_such_file_or_directory);
    for (const auto& [name, inode] : it->second.current) names.push_back(name);
    return {};
}

std::error_code SimStorage::file_size(const fs::path& path, std::uint64_t& size_bytes) {
    if (const auto ec = fault(StorageCall::read)) return ec;
    const auto inode = inode_at(path);
    if (!inode) return error(std::errc::no_such_file_or_directory);
    size_bytes = inodes_.at(*inode).current.size();
    return {};
}

std::error_code SimStorage::read_file(const fs::path& path, std::uint64_t max_bytes, std::vector<std::uint8_t>& bytes) {
    bytes.clear();
    if (const auto ec = fault(StorageCall::read)) return ec;
    const auto inode = inode_at(path);
    if (!inode) return error(std::errc::no_such_file_or_directory);
    const auto& current = inodes_.at(*inode).current;
    bytes.assign(current.begin(), current.begin() + static_cast<std::ptrdiff_t>(std::min<std::uint64_t>(
                                                         current.size(), max_bytes)));
    return {};
}

std::error_code SimStorage::open_file(const fs::path& path, std::unique_ptr<txn::StorageFile>& file) {
    if (const auto ec = fault(StorageCall::open)) return ec;
    const auto inode = inode_at(path);
    if (!inode) return error(std::errc::no_such_file_or_directory);
    file = open_inode(*inode);
    return {};
}

// O_CREAT | O_TRUNC: an existing file is emptied, an unsynced data change;
// a new one is an unsynced folder operation.
std::error_code SimStorage::create_file(const fs::path& path, std::unique_ptr<txn::StorageFile>& file) {
    if (const auto ec = fault(StorageCall::create)) return ec;
    Folder* folder = folder_of(path);
    if (folder == nullptr) return error(std::errc::no_such_file_or_directory);
    const std::string name = path.filename().string();
    if (const auto it = folder->current.find(name); it != folder->current.end()) {
        change(inodes_.at(it->second), Change{true, 0, {}});
        file = open_inode(it->second);
        return {};
    }
    const std::uint64_t inode = next_inode_++;
    inodes_.try_emplace(inode);
    folder->current[name] = inode;
    folder->unsynced.push_back(FolderOp{OpKind::create, name, {}, inode});
    file = open_inode(inode);
    return {};
}

std::error_code SimStorage::rename(const fs::path& from, const fs::path& to) {
    if (const auto ec = fault(StorageCall::rename)) return ec;
    Folder* folder = folder_of(from);
    if (folder == nullptr) return error(std::errc::no_such_file_or_directory);
    if (folder != folder_of(to)) return error(std::errc::cross_device_link);
    const FolderOp op{OpKind::rename, from.filename().string(), to.filename().string(), 0};
    if (!folder->current.contains(op.name)) return error(std::errc::no_such_file_or_directory);
    apply(folder->current, op);
    folder->unsynced.push_back(op);
    return {};
}

std::error_code SimStorage::remove(const fs::path& path) {
    if (const auto ec = fault(StorageCall::remove)) return ec;
    Folder* folder = folder_of(path);
    const FolderOp op{OpKind::remove, path.filename().string(), {}, 0};
    if (folder == nullptr || !folder->current.contains(op.name)) return error(std::errc::no_such_file_or_directory);
    apply(folder->current, op);
    folder->unsynced.push_back(op);
    return {};
}

std::error_code SimStorage::sync_dir(const fs::path& dir) {
    if (const auto ec = fault(StorageCall::sync_dir)) return ec;  // the operations stay unsynced
    const auto it = folders_.find(folder_key(dir));
    if (it == folders_.end()) return error(std::errc::no_such_file_or_directory);
    it->second.durable = it->second.current;
    it->second.unsynced.clear();
    collect_garbage();
    return {};
}

void SimStorage::apply(Names& names, const FolderOp& op) {
    switch (op.kind) {
        case OpKind::create:
            names[op.name] = op.inode;
            break;
        case OpKind::rename:
            if (const auto it = names.find(op.name); it != names.end() && op.name != op.to) {
                names[op.to] = it->second;
                names.erase(it);
            }
            break;
        case OpKind::remove:
            names.erase(op.name);
            break;
    }
}

// ---- File data

void SimStorage::apply(std::vector<std::uint8_t>& file, const Change& c) {
    if (c.truncate) {
        file.resize(c.offset);
        return;
    }
    if (file.size() < c.offset + c.bytes.size()) file.resize(c.offset + c.bytes.size(), 0);
    std::copy(c.bytes.begin(), c.bytes.end(), file.begin() + static_cast<std::ptrdiff_t>(c.offset));
}

void SimStorage::change(Inode& inode, Change c) {
    apply(inode.current, c);
    inode.unsynced.push_back(std::move(c));
}

std::error_code SimStorage::file_write(std::uint64_t inode, std::uint64_t generation, std::uint64_t offset,
                                       std::span<const std::uint8_t> bytes) {
    if (generation != generation_) return error(std::errc::bad_file_descriptor);
    const auto ec = fault(StorageCall::write);
    if (ec && power_off()) return ec;
    // A failed write (a disk filling up, a bad sector) may have written a prefix.
    const std::uint64_t written =
        !ec ? bytes.size() : fault_rng_ != nullptr ? uniform(*fault_rng_, 0, bytes.size()) : bytes.size() / 2;
    if (written > 0) change(inodes_.at(inode), Change{false, offset, {bytes.begin(), bytes.begin() + written}});
    return ec;
}

// Linux may drop the dirty pages of a failed write-back and mark them clean:
// the changes are gone, even if only a crash would show it.
std::error_code SimStorage::file_sync(std::uint64_t inode, std::uint64_t generation) {
    if (generation != generation_) return error(std::errc::bad_file_descriptor);
    Inode& n = inodes_.at(inode);
    if (const auto ec = fault(StorageCall::sync)) {
        if (!power_off()) {
            n.current = n.durable;
            n.unsynced.clear();
        }
        return ec;
    }
    for (const Change& c : n.unsynced) apply(n.durable, c);
    n.unsynced.clear();
    return {};
}

std::error_code SimStorage::file_truncate(std::uint64_t inode, std::uint64_t generation, std::uint64_t size_bytes) {
    if (generation != generation_) return error(std::errc::bad_file_descriptor);
    if (const auto ec = fault(StorageCall::truncate)) return ec;
    change(inodes_.at(inode), Change{true, size_bytes, {}});
    return {};
}

// A size change like a truncation that grows the file (faults strike it as
// one); a file already that long is left as it is.
std::error_code SimStorage::file_allocate(std::uint64_t inode, std::uint64_t generation, std::uint64_t size_bytes) {
    if (generation != generation_) return error(std::errc::bad_file_descriptor);
    if (const auto ec = fault(StorageCall::truncate)) return ec;
    Inode& node = inodes_.at(inode);
    if (node.current.size() < size_bytes) change(node, Change{true, size_bytes, {}});
    return {};
}

void SimStorage::file_closed(std::uint64_t inode, std::uint64_t generation) {
    if (generation != generation_) return;  // the crash closed it
    if (const auto it = inodes_.find(inode); it != inodes_.end()) --it->second.open_files;
}

// ---- Crashes

// What a crash leaves of a file: any subset of its unsynced changes, in
// order, writes sector by sector. A sector that did not land past the end
// of the file may read as zeros: the size grew, the data did not.
void SimStorage::settle(Inode& inode, rl::Rng& rng) {
    if (inode.unsynced.empty()) return;
    const std::uint64_t mode = uniform(rng, 0, 3);  // 0: nothing landed, 1: everything, else sector by sector
    for (const Change& c : inode.unsynced) {
        if (c.truncate) {
            if (mode == 1 || (mode > 1 && chance(rng, 0.5))) apply(inode.durable, c);
            continue;
        }
        const std::uint64_t end = c.offset + c.bytes.size();
        for (std::uint64_t at = c.offset; at < end;) {
            const std::uint64_t piece_end = std::min(end, (at / kSectorBytes + 1) * kSectorBytes);
            const std::uint64_t fate = mode < 2 ? mode : uniform(rng, 0, 2);  // 0 lost, 1 landed, 2 zeros
            if (fate == 1) {
                const auto first = c.bytes.begin() + static_cast<std::ptrdiff_t>(at - c.offset);
                apply(inode.durable, Change{false, at, {first, first + static_cast<std::ptrdiff_t>(piece_end - at)}});
            } else if (fate == 2 && at >= inode.durable.size()) {
                inode.durable.resize(piece_end, 0);
            }
            at = piece_end;
        }
    }
    inode.current = inode.durable;
    inode.unsynced.clear();
}

void SimStorage::crash(rl::Rng& rng) {
    for (auto& [key, folder] : folders_) {
        if (!folder.unsynced.empty()) {
            const std::uint64_t kept = uniform(rng, 0, folder.unsynced.size());
            for (std::uint64_t i = 0; i < kept; ++i) apply(folder.durable, folder.unsynced[i]);
        }
        folder.current = folder.durable;
        folder.unsynced.clear();
    }
    for (auto& [id, inode] : inodes_) {
        settle(inode, rng);
        inode.open_files = 0;
    }
    ++generation_;
    ++crashes_;
    power_left_.reset();
    collect_garbage();
}

// Drops inodes no name, pending folder operation or open file refers to.
void SimStorage::collect_garbage() {
    std::set<std::uint64_t> live;
    for (const auto& [key, folder] : folders_) {
        for (const auto& [name, inode] : folder.durable) live.insert(inode);
        for (const auto& [name, inode] : folder.current) live.insert(inode);
        for (const FolderOp& op : folder.unsynced) live.insert(op.inode);
    }
    std::erase_if(inodes_, [&live](const auto& entry) {
        return entry.second.open_files == 0 && !live.contains(entry.first);
    });
}

}  // namespace rl::simcommon
