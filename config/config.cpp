// Parsing and validation of the deployment INI (docs/design.md section 2).
//
// The text goes through three steps:
//   1. scan: strip `;`/`#` comments (program_options only knows `#`), reject
//      malformed lines, duplicate keys and unknown sections, and remember the
//      line of every section and key so that messages can point at it;
//   2. Boost.Program_options reads the cleaned text into "section.key" values;
//   3. each section is typed and checked, then the deployment as a whole
//      (item coverage, shard membership, addresses).
// Every failure is a ConfigError naming file, line, section and key.
#include "config/config.hpp"

#include <boost/program_options.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <utility>

namespace rl::config {

namespace {

namespace po = boost::program_options;

constexpr std::size_t kNoLine = 0;
constexpr std::size_t kClusterNameMax = 64;
constexpr std::uint64_t kFrameBytesMin = 1024;
constexpr std::uint64_t kShardIdMax = 65535;
constexpr std::uint64_t kFrameBytesMax = 64 * 1024 * 1024;
constexpr std::uint64_t kU32Max = std::numeric_limits<std::uint32_t>::max();
constexpr std::uint64_t kU64Max = std::numeric_limits<std::uint64_t>::max();

std::string describe(const std::string& file, std::size_t line, const std::string& section, const std::string& key,
                     const std::string& problem) {
    std::string where = file;
    if (line != kNoLine) where += ":" + std::to_string(line);
    // File-level problems (unreadable file, stray line before any section) have no section.
    if (section.empty() && key.empty()) return where + ": " + problem;
    where += ": [" + section + "]";
    if (!key.empty()) where += " " + key;
    return where + ": " + problem;
}

// ---------------------------------------------------------------------------
// Text helpers

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

std::string trim(const std::string& s) {
    std::size_t b = 0;
    std::size_t e = s.size();
    while (b < e && is_space(s[b])) ++b;
    while (e > b && is_space(s[e - 1])) --e;
    return s.substr(b, e - b);
}

// A comment starts with `;` or `#` at the start of the line or after
// whitespace, so values such as `a;b` keep their semicolon.
std::string strip_comment(const std::string& line) {
    for (std::size_t i = 0; i < line.size(); ++i) {
        const bool marker = line[i] == ';' || line[i] == '#';
        if (marker && (i == 0 || is_space(line[i - 1]))) return trim(line.substr(0, i));
    }
    return trim(line);
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (std::size_t pos = s.find(sep); pos != std::string::npos; pos = s.find(sep, start)) {
        parts.push_back(trim(s.substr(start, pos - start)));
        start = pos + 1;
    }
    parts.push_back(trim(s.substr(start)));
    return parts;
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// ---------------------------------------------------------------------------
// Value parsers. They know nothing of where the value came from: a defect is
// thrown as a Problem and the caller adds file, line, section and key.

struct Problem {
    std::string text;
};

bool all_digits(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Whole decimal numbers only: "50ms", "-3", "+3", "1e3" and "0x10" are typos
// that a lenient parser would silently turn into a different timeout.
std::uint64_t parse_uint(const std::string& text, std::uint64_t min, std::uint64_t max) {
    if (!all_digits(text)) {
        throw Problem{quoted(text) + " is not a whole decimal number, expected " + std::to_string(min) + ".." +
                      std::to_string(max)};
    }
    std::uint64_t value = 0;
    for (char c : text) {
        const auto digit = static_cast<std::uint64_t>(c - '0');
        if (value > (kU64Max - digit) / 10) {
            throw Problem{text + " is too large, expected " + std::to_string(min) + ".." + std::to_string(max)};
        }
        value = value * 10 + digit;
    }
    if (value < min || value > max) {
        throw Problem{text + " is out of range, expected " + std::to_string(min) + ".." + std::to_string(max)};
    }
    return value;
}

std::uint32_t parse_u32(const std::string& text, std::uint64_t min = 1, std::uint64_t max = kU32Max) {
    return static_cast<std::uint32_t>(parse_uint(text, min, max));
}

template <class E>
E parse_choice(const std::string& text, std::initializer_list<std::pair<const char*, E>> choices) {
    std::string expected;
    for (const auto& [name, value] : choices) {
        if (text == name) return value;
        expected += (expected.empty() ? "" : " | ") + std::string(name);
    }
    throw Problem{"unknown value " + quoted(text) + ", expected " + expected};
}

// The name travels in every Hello frame, so keep it short and printable.
std::string parse_cluster_name(const std::string& text) {
    if (text.empty()) throw Problem{"is empty, expected 1.." + std::to_string(kClusterNameMax) + " characters"};
    if (text.size() > kClusterNameMax) {
        throw Problem{"is " + std::to_string(text.size()) + " characters long, expected at most " +
                      std::to_string(kClusterNameMax)};
    }
    for (char c : text) {
        const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                        c == '.' || c == '-';
        if (!ok)
            throw Problem{quoted(text) + " has character '" + std::string(1, c) + "', expected only A-Z a-z 0-9 _ . -"};
    }
    return text;
}

std::filesystem::path parse_path(const std::string& text) {
    if (text.empty()) throw Problem{"is empty, expected a directory path"};
    return text;
}

std::string range_text(const ItemRange& r) {
    if (r.first == r.last) return std::to_string(r.first.value);
    return std::to_string(r.first.value) + "-" + std::to_string(r.last.value);
}

ItemRange parse_range(const std::string& text) {
    const std::size_t dash = text.find('-');
    const std::string a = trim(text.substr(0, dash));
    const std::string b = dash == std::string::npos ? a : trim(text.substr(dash + 1));
    ItemRange r;
    try {
        r = ItemRange{ItemId{parse_uint(a, 1, kU64Max)}, ItemId{parse_uint(b, 1, kU64Max)}};
    } catch (const Problem& p) {
        throw Problem{"bad range " + quoted(text) + " (" + p.text +
                      "), expected comma-separated item ranges like 1-3000 or single items like 7"};
    }
    if (r.first > r.last) throw Problem{"range " + text + " is reversed, expected A-B with A <= B"};
    return r;
}

// Ranges come back sorted; overlaps are reported by the deployment check so
// that one rule and one message cover both "within" and "across" shards.
std::vector<ItemRange> parse_ranges(const std::string& text) {
    if (text.empty()) throw Problem{"is empty, expected item ranges like 1-3000 or 1-10,20"};
    std::vector<ItemRange> ranges;
    for (const std::string& part : split(text, ',')) ranges.push_back(parse_range(part));
    std::sort(ranges.begin(), ranges.end(), [](const ItemRange& x, const ItemRange& y) { return x.first < y.first; });
    return ranges;
}

std::vector<NodeId> parse_node_list(const std::string& text) {
    if (text.empty()) throw Problem{"is empty, expected at least one node id like 1,2,3"};
    std::vector<NodeId> ids;
    for (const std::string& part : split(text, ',')) {
        try {
            ids.emplace_back(parse_uint(part, 1, kU64Max));
        } catch (const Problem& p) {
            throw Problem{"bad node id (" + p.text + "), expected comma-separated positive node ids like 1,2,3"};
        }
    }
    std::sort(ids.begin(), ids.end());
    const auto dup = std::adjacent_find(ids.begin(), ids.end());
    if (dup != ids.end()) throw Problem{"node " + std::to_string(dup->value) + " is listed twice"};
    return ids;
}

// The canonical text of a numeric address (inet_pton then inet_ntop, so
// "::0001" and "::1" compare equal), nullopt when `host` is not one.
std::optional<std::string> canonical_address(const std::string& host, bool v6) {
    const int family = v6 ? AF_INET6 : AF_INET;
    unsigned char bytes[sizeof(in6_addr)];
    char text[INET6_ADDRSTRLEN];
    if (inet_pton(family, host.c_str(), bytes) != 1) return std::nullopt;
    if (inet_ntop(family, bytes, text, sizeof text) == nullptr) return std::nullopt;
    return std::string(text);
}

// Numeric addresses only: a node must not depend on DNS to find its peers, and
// comparing numeric forms is what makes the duplicate-address check sound.
Endpoint parse_endpoint(const std::string& text) {
    const std::string expected = ", expected IPv4:port like 127.0.0.1:7101 or [IPv6]:port like [::1]:7101";
    const bool v6 = text.starts_with("[");
    // The port follows the last colon; an IPv6 host keeps its colons inside brackets.
    const std::size_t close = v6 ? text.find("]:") : std::string::npos;
    const std::size_t colon = v6 ? (close == std::string::npos ? close : close + 1) : text.rfind(':');
    if (colon == std::string::npos || (!v6 && text.find(':') != colon)) {
        throw Problem{quoted(text) + " is not host:port" + expected};
    }
    const std::string host = v6 ? text.substr(1, close - 1) : text.substr(0, colon);
    const std::optional<std::string> address = canonical_address(host, v6);
    if (!address) {
        throw Problem{quoted(host) + " is not a numeric " + (v6 ? "IPv6" : "IPv4") + " address" + expected};
    }
    try {
        return Endpoint{*address, static_cast<std::uint16_t>(parse_uint(text.substr(colon + 1), 1, 65535))};
    } catch (const Problem& p) {
        throw Problem{"bad port (" + p.text + ")" + expected};
    }
}

// ---------------------------------------------------------------------------
// Step 1: scan

enum class Kind { cluster, shard, node };

struct Field {
    std::string value;
    std::size_t line = kNoLine;
};

struct Section {
    std::string name;  // as written, e.g. "shard.2"
    std::size_t line = kNoLine;
    Kind kind = Kind::cluster;
    std::uint64_t id = 0;  // N of shard.N / node.N
    std::map<std::string, Field> keys;
};

struct KeyAt {
    std::size_t section;  // index into Scanned::sections
    std::string key;
    std::size_t line;
};

struct Scanned {
    std::string text;  // comment-free, line for line, for program_options
    std::vector<Section> sections;
    std::map<std::string, KeyAt> keys;  // "section.key" as program_options names it
};

class Scanner {
public:
    explicit Scanner(std::string file) : file_(std::move(file)) {}
    Scanned run(const std::string& text);

private:
    [[noreturn]] void fail(const std::string& section, const std::string& key, const std::string& problem) const {
        throw ConfigError(file_, line_, section, key, problem);
    }
    void header(const std::string& line);
    void key_value(const std::string& line, std::size_t eq);
    void classify(Section& s) const;

    std::string file_;
    std::size_t line_ = 0;
    Scanned out_;
};

Scanned Scanner::run(const std::string& text) {
    std::istringstream in(text);
    std::string raw;
    while (std::getline(in, raw)) {
        ++line_;
        // Editors on Windows may start the file with a UTF-8 byte order mark.
        if (line_ == 1 && raw.starts_with("\xEF\xBB\xBF")) raw.erase(0, 3);
        const std::string line = strip_comment(raw);
        if (line.starts_with("[")) {
            header(line);
        } else if (const std::size_t eq = line.find('='); eq != std::string::npos) {
            key_value(line, eq);
        } else if (!line.empty()) {
            const std::string section = out_.sections.empty() ? "" : out_.sections.back().name;
            fail(section, "", quoted(line) + " is not a [section], key = value, blank or comment line");
        }
        // Keep line numbers aligned with the original file.
        out_.text += (line.starts_with("[") ? "[" + out_.sections.back().name + "]" : line) + "\n";
    }
    return std::move(out_);
}

void Scanner::header(const std::string& line) {
    if (!line.ends_with("]")) fail("", "", quoted(line) + " is a malformed section header, expected [name]");
    Section s;
    s.name = trim(line.substr(1, line.size() - 2));
    s.line = line_;
    classify(s);
    for (const Section& other : out_.sections) {
        if (other.name == s.name) {
            fail(s.name, "", "section appears twice (first at line " + std::to_string(other.line) + ")");
        }
    }
    out_.sections.push_back(std::move(s));
}

void Scanner::classify(Section& s) const {
    if (s.name == "cluster") return;
    for (const auto& [prefix, kind] : {std::pair{"shard.", Kind::shard}, std::pair{"node.", Kind::node}}) {
        if (!s.name.starts_with(prefix)) continue;
        const std::string n = s.name.substr(std::strlen(prefix));
        // Leading zeros would let [shard.1] and [shard.01] name one shard twice.
        if (n.starts_with("0") || !all_digits(n)) {
            fail(s.name, "",
                 "section id " + quoted(n) + " is not a positive whole number without leading zeros, expected [" +
                     prefix + "N] with N = 1, 2, ...");
        }
        try {
            s.id = parse_uint(n, 1, kU64Max);
        } catch (const Problem& p) {
            fail(s.name, "", "bad section id: " + p.text);
        }
        s.kind = kind;
        return;
    }
    fail(s.name, "", "unknown section, expected [cluster], [shard.N] or [node.N]");
}

void Scanner::key_value(const std::string& line, std::size_t eq) {
    const std::string key = trim(line.substr(0, eq));
    if (out_.sections.empty()) fail("", key, "key appears before any [section]");
    const std::string& section = out_.sections.back().name;
    if (key.empty()) fail(section, "", quoted(line) + " has no key before '='");
    // Program_options cuts a value at any '#'; refuse rather than silently truncate.
    if (line.find('#') != std::string::npos) {
        fail(section, key, "'#' inside a value is not supported; a comment needs whitespace before ';' or '#'");
    }
    const std::string full = section + "." + key;
    if (const auto it = out_.keys.find(full); it != out_.keys.end()) {
        fail(section, key, "key given twice (first at line " + std::to_string(it->second.line) + ")");
    }
    out_.keys.emplace(full, KeyAt{out_.sections.size() - 1, key, line_});
}

// ---------------------------------------------------------------------------
// Step 2: program_options reads the values

void read_values(const std::string& file, Scanned& scanned) {
    std::istringstream in(scanned.text);
    const po::options_description none;
    const po::parsed_options parsed = [&] {
        try {
            return po::parse_config_file(in, none, /*allow_unregistered=*/true);
        } catch (const po::error& e) {
            // The scanner rejects everything program_options would; keep a clear message anyway.
            throw ConfigError(file, "", "", std::string("cannot parse: ") + e.what());
        }
    }();
    for (const po::option& opt : parsed.options) {
        const auto it = scanned.keys.find(opt.string_key);
        // Program_options sees only lines the scanner accepted and recorded.
        if (it == scanned.keys.end()) throw std::logic_error("config: unscanned option " + opt.string_key);
        const KeyAt& at = it->second;
        const std::string value = opt.value.empty() ? std::string() : opt.value.front();
        scanned.sections[at.section].keys[at.key] = Field{value, at.line};
    }
}

// ---------------------------------------------------------------------------
// Step 3: typed sections and deployment checks

enum class Relation { greater_than, at_least, at_most };

std::string example_of(const std::string& key) {
    if (key == "name") return "name = demo";
    if (key == "items") return "items = 1-3000";
    if (key == "nodes") return "nodes = 1,2,3";
    return "address = 127.0.0.1:7101";
}

struct Deployment {
    ClusterConfig cluster;
    std::map<ShardId, ShardConfig> shards;
    std::map<NodeId, NodeConfig> nodes;
    std::map<ShardId, const Section*> shard_sections;
    std::map<NodeId, const Section*> node_sections;
};

class Checker {
public:
    Checker(std::filesystem::path file, const Scanned& scanned)
        : path_(std::move(file)), file_(path_.string()), scanned_(scanned) {}
    Deployment run();

private:
    [[noreturn]] void fail(const Section& s, const std::string& key, const std::string& problem) const {
        const auto it = s.keys.find(key);
        throw ConfigError(file_, it == s.keys.end() ? s.line : it->second.line, s.name, key, problem);
    }
    // Runs a value parser on s[key] and locates any Problem it reports.
    template <class F>
    auto read(const Section& s, const std::string& key, F parse) const {
        const auto it = s.keys.find(key);
        if (it == s.keys.end()) fail(s, key, "missing required key, expected e.g. " + example_of(key));
        try {
            return parse(it->second.value);
        } catch (const Problem& p) {
            fail(s, key, p.text);
        }
    }
    void reject_unknown_keys(const Section& s, std::initializer_list<const char*> known) const;
    ClusterConfig cluster(const Section& s) const;
    void check_timing(const Section& s, const ClusterConfig& c) const;
    void check_batch(const Section& s, ClusterConfig& c) const;
    void check_relation(const Section& s, const char* key, std::uint64_t value, Relation rel, const char* other,
                        std::uint64_t other_value) const;
    void shard(const Section& s, Deployment& d) const;
    void node(const Section& s, Deployment& d) const;
    void check_items(const Deployment& d) const;
    void check_membership(Deployment& d) const;
    void check_addresses(const Deployment& d) const;
    void check_capacity(const Section& cluster, const Deployment& d) const;

    std::filesystem::path path_;
    std::string file_;
    const Scanned& scanned_;
};

Deployment Checker::run() {
    Deployment d;
    const auto& sections = scanned_.sections;
    const auto cluster_section =
        std::find_if(sections.begin(), sections.end(), [](const Section& s) { return s.kind == Kind::cluster; });
    if (cluster_section == sections.end()) {
        throw ConfigError(file_, "cluster", "",
                          "missing [cluster] section, it is required (name = ..., election = ...)");
    }
    d.cluster = cluster(*cluster_section);
    for (const Section& s : sections) {
        if (s.kind == Kind::shard) shard(s, d);
        if (s.kind == Kind::node) node(s, d);
    }
    if (d.shards.empty()) {
        throw ConfigError(file_, "cluster", "", "no [shard.N] section, at least one shard is required");
    }
    check_items(d);
    check_membership(d);
    check_addresses(d);
    check_capacity(*cluster_section, d);
    return d;
}

// Bounds that follow from several keys at once: a shard's money must fit in
// an int64, and a shard's largest possible snapshot (balances plus a full
// dedup table) must fit in one frame, or a lagging follower could never be
// sent it.
void Checker::check_capacity(const Section& cluster, const Deployment& d) const {
    constexpr std::uint64_t kClientBytes = 32, kResultBytes = 10, kFrameMargin = 4096;
    const auto& c = d.cluster;
    const std::uint64_t dedup = std::uint64_t{c.limits.dedup_clients_max} * (kClientBytes + kResultBytes * c.limits.dedup_window);
    for (const auto& [id, shard] : d.shards) {
        std::uint64_t items = 0;
        for (const ItemRange& r : shard.items) items += r.size();
        if (c.initial_balance > 0 && items > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) /
                                                 static_cast<std::uint64_t>(c.initial_balance)) {
            fail(cluster, "initial_balance",
                 "shard " + std::to_string(id.value) + " holds " + std::to_string(items) + " items: their total of " +
                     std::to_string(c.initial_balance) + " each does not fit in a 64-bit balance");
        }
        const std::uint64_t snapshot = items * 8 + dedup + kFrameMargin;
        if (snapshot > c.limits.frame_bytes_max) {
            fail(cluster, "dedup_window",
                 "a snapshot of shard " + std::to_string(id.value) + " could reach " + std::to_string(snapshot) +
                     " bytes (8 per item + dedup_clients_max x (32 + 10 x dedup_window)), more than frame_bytes_max = " +
                     std::to_string(c.limits.frame_bytes_max) +
                     "; lower dedup_window or dedup_clients_max, or raise frame_bytes_max");
        }
    }
}

void Checker::reject_unknown_keys(const Section& s, std::initializer_list<const char*> known) const {
    for (const auto& [key, field] : s.keys) {
        std::string expected;
        bool found = false;
        for (const char* k : known) {
            found = found || key == k;
            expected += (expected.empty() ? "" : ", ") + std::string(k);
        }
        if (!found) fail(s, key, "unknown key, expected one of: " + expected);
    }
}

using ClusterSetter = void (*)(ClusterConfig&, const std::string&);

// Every [cluster] key and how it lands in ClusterConfig; absent keys keep the
// defaults declared in config.hpp.
const std::vector<std::pair<const char*, ClusterSetter>>& cluster_keys() {
    using C = ClusterConfig;
    using S = const std::string&;
    static const std::vector<std::pair<const char*, ClusterSetter>> table = {
        {"name", [](C& c, S v) { c.name = parse_cluster_name(v); }},
        {"election",
         [](C& c, S v) {
             c.election = parse_choice(
                 v, {std::pair{"bully", ElectionAlgorithm::bully}, std::pair{"ring", ElectionAlgorithm::ring}});
         }},
        {"heartbeat_ms", [](C& c, S v) { c.heartbeat_ms = parse_u32(v); }},
        {"suspect_after_ms", [](C& c, S v) { c.suspect_after_ms = parse_u32(v); }},
        {"election_timeout_ms", [](C& c, S v) { c.election_timeout_ms = parse_u32(v); }},
        {"tick_ms", [](C& c, S v) { c.tick_ms = parse_u32(v); }},
        {"initial_balance",
         [](C& c, S v) {
             c.initial_balance = static_cast<std::int64_t>(parse_uint(v, 0, std::numeric_limits<std::int64_t>::max()));
         }},
        {"data_dir", [](C& c, S v) { c.data_dir = parse_path(v); }},
        {"fsync",
         [](C& c, S v) {
             c.fsync = parse_choice(v, {std::pair{"always", FsyncMode::always}, std::pair{"never", FsyncMode::never}});
         }},
        {"fault_injection",
         [](C& c, S v) {
             c.fault_injection = parse_choice(v, {std::pair{"true", true}, std::pair{"false", false}});
         }},
        {"frame_bytes_max", [](C& c, S v) { c.limits.frame_bytes_max = parse_u32(v, kFrameBytesMin, kFrameBytesMax); }},
        {"peer_queue_frames_max", [](C& c, S v) { c.limits.peer_queue_frames_max = parse_u32(v); }},
        {"peer_queue_bytes_max", [](C& c, S v) { c.limits.peer_queue_bytes_max = parse_uint(v, 1, kU64Max); }},
        {"peer_connections_max", [](C& c, S v) { c.limits.peer_connections_max = parse_u32(v); }},
        {"client_queue_bytes_max", [](C& c, S v) { c.limits.client_queue_bytes_max = parse_uint(v, 1, kU64Max); }},
        {"wal_backlog_bytes_max", [](C& c, S v) { c.limits.wal_backlog_bytes_max = parse_uint(v, 1, kU64Max); }},
        {"client_connections_max", [](C& c, S v) { c.limits.client_connections_max = parse_u32(v); }},
        {"client_inflight_max", [](C& c, S v) { c.limits.client_inflight_max = parse_u32(v); }},
        {"reconnect_ms_min", [](C& c, S v) { c.limits.reconnect_ms_min = parse_u32(v); }},
        {"reconnect_ms_max", [](C& c, S v) { c.limits.reconnect_ms_max = parse_u32(v); }},
        {"handshake_timeout_ms", [](C& c, S v) { c.limits.handshake_timeout_ms = parse_u32(v); }},
        {"snapshot_after_entries", [](C& c, S v) { c.limits.snapshot_after_entries = parse_u32(v); }},
        {"snapshot_after_bytes", [](C& c, S v) { c.limits.snapshot_after_bytes = parse_uint(v, 1, kU64Max); }},
        {"dedup_window", [](C& c, S v) { c.limits.dedup_window = parse_u32(v); }},
        {"dedup_clients_max", [](C& c, S v) { c.limits.dedup_clients_max = parse_u32(v); }},
        {"batch_transfers_max", [](C& c, S v) { c.limits.batch_transfers_max = parse_u32(v); }},
    };
    return table;
}

ClusterConfig Checker::cluster(const Section& s) const {
    ClusterConfig c;
    for (const auto& [key, field] : s.keys) {
        const auto& table = cluster_keys();
        const auto it = std::find_if(table.begin(), table.end(), [&](const auto& e) { return key == e.first; });
        if (it == table.end()) {
            std::string expected;
            for (const auto& e : table) expected += (expected.empty() ? "" : ", ") + std::string(e.first);
            fail(s, key, "unknown key, expected one of: " + expected);
        }
        read(s, key, [&](const std::string& v) { it->second(c, v); });
    }
    if (!s.keys.contains("name")) fail(s, "name", "missing required key, expected e.g. " + example_of("name"));
    // Relative paths follow the INI file, not the cwd of whichever process reads it.
    if (c.data_dir.is_relative()) c.data_dir = path_.parent_path() / c.data_dir;
    check_timing(s, c);
    check_batch(s, c);
    return c;
}

// A batch's transfers must all be remembered by their session, or a retry
// of the whole batch would find its first ones expired; and the batch, as
// request and as reply, must fit in one frame (docs/design.md section 6.9).
void Checker::check_batch(const Section& s, ClusterConfig& c) const {
    constexpr std::uint32_t kFrameMargin = 4096;
    const std::uint32_t frame = c.limits.frame_bytes_max;
    const std::uint32_t fits = (frame > 2 * kFrameMargin ? frame - kFrameMargin : frame / 2) / kBatchTransferBytes;
    if (!s.keys.contains("batch_transfers_max")) {
        c.limits.batch_transfers_max = std::max<std::uint32_t>(1, std::min(c.limits.dedup_window, fits));
        return;
    }
    check_relation(s, "batch_transfers_max", c.limits.batch_transfers_max, Relation::at_most, "dedup_window",
                   c.limits.dedup_window);
    if (c.limits.batch_transfers_max > fits) {
        fail(s, "batch_transfers_max",
             std::to_string(c.limits.batch_transfers_max) + " transfers of up to " +
                 std::to_string(kBatchTransferBytes) + " bytes each do not fit in frame_bytes_max = " +
                 std::to_string(c.limits.frame_bytes_max) + "; at most " + std::to_string(fits));
    }
}

// Blames `key` when the user wrote it, else `other`, so that the message
// points at a line that exists.
void Checker::check_relation(const Section& s, const char* key, std::uint64_t value, Relation rel, const char* other,
                             std::uint64_t other_value) const {
    const bool ok = rel == Relation::greater_than ? value > other_value
                    : rel == Relation::at_least   ? value >= other_value
                                                  : value <= other_value;
    if (ok) return;
    const char* words = rel == Relation::greater_than ? "greater than"
                        : rel == Relation::at_least   ? "at least"
                                                      : "at most";
    fail(s, s.keys.contains(key) ? key : other,
         std::string(key) + " (" + std::to_string(value) + ") must be " + words + " " + other + " (" +
             std::to_string(other_value) + ")");
}

void Checker::check_timing(const Section& s, const ClusterConfig& c) const {
    // A peer must miss more than one heartbeat before it is suspected, or a
    // single late heartbeat deposes a healthy leader.
    check_relation(s, "suspect_after_ms", c.suspect_after_ms, Relation::greater_than, "heartbeat_ms", c.heartbeat_ms);
    // The logical clock must tick at least once per heartbeat to send it on time.
    check_relation(s, "tick_ms", c.tick_ms, Relation::at_most, "heartbeat_ms", c.heartbeat_ms);
    // An election shorter than a heartbeat ends before any vote can arrive.
    check_relation(s, "election_timeout_ms", c.election_timeout_ms, Relation::at_least, "heartbeat_ms", c.heartbeat_ms);
    check_relation(s, "reconnect_ms_min", c.limits.reconnect_ms_min, Relation::at_most, "reconnect_ms_max",
                   c.limits.reconnect_ms_max);
    // Each byte-bounded queue must hold at least one largest frame (a
    // snapshot can fill one), or that frame could never be sent or saved.
    for (const auto& [key, bytes] : {std::pair{"peer_queue_bytes_max", c.limits.peer_queue_bytes_max},
                                     std::pair{"client_queue_bytes_max", c.limits.client_queue_bytes_max},
                                     std::pair{"wal_backlog_bytes_max", c.limits.wal_backlog_bytes_max}}) {
        check_relation(s, key, bytes, Relation::at_least, "frame_bytes_max", c.limits.frame_bytes_max);
    }
}

void Checker::shard(const Section& s, Deployment& d) const {
    reject_unknown_keys(s, {"items", "nodes"});
    // A client session id carries its shard in 16 bits (docs/design.md section 6).
    if (s.id == 0 || s.id > kShardIdMax) {
        fail(s, "", "shard number " + std::to_string(s.id) + " is out of range, expected 1.." +
                             std::to_string(kShardIdMax));
    }
    const ShardId id{s.id};
    ShardConfig shard{id, read(s, "items", parse_ranges), read(s, "nodes", parse_node_list)};
    d.shards.emplace(id, std::move(shard));
    d.shard_sections.emplace(id, &s);
}

void Checker::node(const Section& s, Deployment& d) const {
    reject_unknown_keys(s, {"address"});
    const NodeId id{s.id};
    d.nodes.emplace(id, NodeConfig{id, read(s, "address", parse_endpoint), ShardId{}});
    d.node_sections.emplace(id, &s);
}

// Every item belongs to exactly one shard: no overlap (two leaders would both
// apply writes to it) and no gap (a transfer to it would have no owner).
void Checker::check_items(const Deployment& d) const {
    std::vector<std::pair<ItemRange, ShardId>> all;
    for (const auto& [id, shard] : d.shards) {
        for (const ItemRange& r : shard.items) all.emplace_back(r, id);
    }
    std::sort(all.begin(), all.end(), [](const auto& x, const auto& y) {
        return std::pair{x.first.first, x.second} < std::pair{y.first.first, y.second};
    });
    const std::string cover = "items must cover 1.." + std::to_string(all.back().first.last.value) + " without gaps";
    const Section& first = *d.shard_sections.at(all.front().second);
    if (all.front().first.first != ItemId{1}) {
        fail(first, "items", "item 1 is not in any shard; " + cover);
    }
    for (std::size_t i = 1; i < all.size(); ++i) {
        const auto& [prev, prev_shard] = all[i - 1];
        const auto& [next, next_shard] = all[i];
        const Section& s = *d.shard_sections.at(next_shard);
        if (next.first <= prev.last) {
            fail(s, "items",
                 "range " + range_text(next) + " overlaps [" + d.shard_sections.at(prev_shard)->name + "] items " +
                     range_text(prev));
        }
        if (next.first.value != prev.last.value + 1) {
            fail(s, "items", "item " + std::to_string(prev.last.value + 1) + " is not in any shard; " + cover);
        }
    }
}

void Checker::check_membership(Deployment& d) const {
    for (const auto& [shard_id, shard] : d.shards) {
        const Section& s = *d.shard_sections.at(shard_id);
        for (const NodeId n : shard.nodes) {
            const std::string node_name = "node." + std::to_string(n.value);
            const auto it = d.nodes.find(n);
            if (it == d.nodes.end()) {
                throw ConfigError(file_, node_name, "",
                                  "node " + std::to_string(n.value) + " is listed in [" + s.name +
                                      "] nodes but has no [" + node_name + "] section");
            }
            // A node runs one replicated log; serving two shards would mix them.
            if (it->second.shard != ShardId{}) {
                fail(s, "nodes",
                     "node " + std::to_string(n.value) + " is already in [" +
                         d.shard_sections.at(it->second.shard)->name + "] nodes; a node serves exactly one shard");
            }
            it->second.shard = shard_id;
        }
    }
    for (const auto& [id, node] : d.nodes) {
        if (node.shard == ShardId{}) {
            fail(*d.node_sections.at(id), "",
                 "node " + std::to_string(id.value) + " is not listed in any [shard.N] nodes");
        }
    }
}

void Checker::check_addresses(const Deployment& d) const {
    std::map<std::pair<std::string, std::uint16_t>, NodeId> seen;
    for (const auto& [id, node] : d.nodes) {
        const auto [it, fresh] = seen.emplace(std::pair{node.address.host, node.address.port}, id);
        if (!fresh) {
            fail(*d.node_sections.at(id), "address",
                 node.address.to_string() + " is already used by [" + d.node_sections.at(it->second)->name + "]");
        }
    }
}

}  // namespace

// ---------------------------------------------------------------------------
// Public API

const char* to_string(ElectionAlgorithm a) {
    switch (a) {
        case ElectionAlgorithm::bully: return "bully";
        case ElectionAlgorithm::ring: return "ring";
    }
    return "unknown";
}

const char* to_string(FsyncMode m) {
    switch (m) {
        case FsyncMode::always: return "always";
        case FsyncMode::never: return "never";
    }
    return "unknown";
}

ConfigError::ConfigError(std::string file, std::string section, std::string key, const std::string& problem)
    : ConfigError(std::move(file), 0, std::move(section), std::move(key), problem) {}

ConfigError::ConfigError(std::string file, std::size_t line, std::string section, std::string key,
                         const std::string& problem)
    : std::runtime_error(describe(file, line, section, key, problem)),
      file_(std::move(file)),
      section_(std::move(section)),
      key_(std::move(key)),
      line_(line) {}

std::string Endpoint::to_string() const {
    // IPv6 needs brackets so that the port's colon is unambiguous.
    const bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Config Config::load(const std::filesystem::path& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
        throw ConfigError(path.string(), "", "", "is a directory, expected an INI file");
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConfigError(path.string(), "", "", std::string("cannot open file: ") + std::strerror(errno));
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) throw ConfigError(path.string(), "", "", std::string("cannot read file: ") + std::strerror(errno));
    return parse(text.str(), path);
}

Config Config::parse(const std::string& text, const std::filesystem::path& file) {
    Scanned scanned = Scanner(file.string()).run(text);
    read_values(file.string(), scanned);
    Deployment d = Checker(file, scanned).run();
    Config c;
    c.file_ = file;
    c.cluster_ = std::move(d.cluster);
    c.shards_ = std::move(d.shards);
    c.nodes_ = std::move(d.nodes);
    return c;
}

const NodeConfig* Config::node(NodeId id) const {
    const auto it = nodes_.find(id);
    return it == nodes_.end() ? nullptr : &it->second;
}

const ShardConfig* Config::shard(ShardId id) const {
    const auto it = shards_.find(id);
    return it == shards_.end() ? nullptr : &it->second;
}

std::optional<ShardId> Config::shard_of_item(ItemId item) const {
    for (const auto& [id, shard] : shards_) {
        for (const ItemRange& r : shard.items) {
            if (r.contains(item)) return id;
        }
    }
    return std::nullopt;
}

std::filesystem::path Config::node_dir(NodeId id) const {
    return cluster_.data_dir / ("node-" + std::to_string(id.value));
}

std::vector<NodeId> Config::shard_peers(NodeId id) const {
    const NodeConfig* self = node(id);
    if (self == nullptr) return {};
    std::vector<NodeId> peers;
    for (const NodeId n : shards_.at(self->shard).nodes) {
        if (n != id) peers.push_back(n);
    }
    return peers;
}

}  // namespace rl::config
