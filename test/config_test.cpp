// Config parsing and validation (docs/design.md section 2). Each invalid-input test
// starts from one small valid deployment, changes one line, and checks that
// the error names the file, line, section and key and says what is accepted.
#define BOOST_TEST_MODULE config
#include <boost/test/unit_test.hpp>

#include "config/config.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;
using rl::ItemId;
using rl::NodeId;
using rl::ShardId;
using rl::config::Config;
using rl::config::ConfigError;

namespace {

// Lines 1-10; the line numbers below are asserted by the tests.
std::string cluster_text() {
    return "[cluster]\n"
           "name = t\n"
           "election = bully\n"
           "heartbeat_ms = 50\n"
           "suspect_after_ms = 200\n"
           "election_timeout_ms = 300\n"
           "initial_balance = 10\n"
           "data_dir = data\n"
           "fsync = always\n"
           "fault_injection = false\n";
}

// Lines 11-31: [shard.1] at 12, [shard.2] at 16, [node.N] at 18 + 2N.
std::string topology_text() {
    std::string text =
        "\n"
        "[shard.1]\n"
        "items = 1-100\n"
        "nodes = 1,2,3\n"
        "\n"
        "[shard.2]\n"
        "items = 101-200\n"
        "nodes = 4,5,6\n"
        "\n";
    for (int n = 1; n <= 6; ++n) {
        text += "[node." + std::to_string(n) + "]\naddress = 127.0.0.1:710" + std::to_string(n) + "\n";
    }
    return text;
}

std::string base() { return cluster_text() + topology_text(); }

// Replaces the whole line `from` (which must occur exactly once) with `to`;
// an empty `to` deletes the line.
std::string edit(std::string ini, const std::string& from, const std::string& to) {
    const std::string needle = "\n" + from + "\n";
    const std::string padded = "\n" + ini;
    const std::size_t pos = padded.find(needle);
    BOOST_REQUIRE_MESSAGE(pos != std::string::npos && padded.find(needle, pos + 1) == std::string::npos,
                          "test setup: line \"" << from << "\" must occur exactly once");
    ini.replace(pos, from.size() + 1, to.empty() ? "" : to + "\n");
    return ini;
}

struct Expected {
    std::size_t line;  // 0 when the message has no line
    std::string section;
    std::string key;
    std::vector<std::string> words;  // each must appear in what()
};

// Parses `text` as "t.ini" and checks where the ConfigError points and what it says.
void expect_error(const std::string& text, const Expected& e) {
    try {
        Config::parse(text, "t.ini");
    } catch (const ConfigError& err) {
        const std::string what = err.what();
        BOOST_TEST_CONTEXT("what(): " << what) {
            BOOST_TEST(err.file() == "t.ini");
            BOOST_TEST(err.line() == e.line);
            BOOST_TEST(err.section() == e.section);
            BOOST_TEST(err.key() == e.key);
            std::string prefix = "t.ini" + (e.line == 0 ? "" : ":" + std::to_string(e.line)) + ": ";
            if (!e.section.empty() || !e.key.empty()) {
                prefix += "[" + e.section + "]" + (e.key.empty() ? "" : " " + e.key) + ": ";
            }
            BOOST_TEST(what.starts_with(prefix), "expected prefix \"" << prefix << "\"");
            for (const std::string& w : e.words) BOOST_TEST(what.find(w) != std::string::npos, "missing: " << w);
        }
        return;
    }
    BOOST_FAIL("no ConfigError for:\n" << text);
}

fs::path demo_ini() {
    const char* source = std::getenv("RL_SOURCE_DIR");
    const fs::path root = source != nullptr ? fs::path(source) : fs::path(__FILE__).parent_path().parent_path();
    return root / "examples" / "demo.ini";
}

// A fresh directory per test process so parallel ctest runs never collide.
fs::path scratch_dir(const std::string& name) {
    const fs::path dir = fs::temp_directory_path() / ("rl-config-test-" + std::to_string(::getpid())) / name;
    fs::create_directories(dir);
    return dir;
}

}  // namespace

// ---------------------------------------------------------------------------
// Valid input

BOOST_AUTO_TEST_CASE(demo_ini_loads_two_shards_six_nodes) {
    const Config c = Config::load(demo_ini());
    BOOST_TEST(c.shards().size() == 2u);
    BOOST_TEST(c.nodes().size() == 6u);
    BOOST_TEST(c.file() == demo_ini());
}

BOOST_AUTO_TEST_CASE(demo_ini_cluster_fields_are_read) {
    const Config c = Config::load(demo_ini());
    const auto& cl = c.cluster();
    BOOST_TEST(cl.name == "demo");
    BOOST_TEST((cl.election == rl::config::ElectionAlgorithm::bully));
    BOOST_TEST(cl.heartbeat_ms == 50u);
    BOOST_TEST(cl.suspect_after_ms == 200u);
    BOOST_TEST(cl.election_timeout_ms == 300u);
    BOOST_TEST(cl.initial_balance == 10);
    BOOST_TEST(cl.data_dir == demo_ini().parent_path() / "../run/demo-data");
    BOOST_TEST((cl.fsync == rl::config::FsyncMode::always));
    BOOST_TEST(cl.fault_injection == false);
}

BOOST_AUTO_TEST_CASE(demo_ini_shards_and_nodes_are_read) {
    const Config c = Config::load(demo_ini());
    const auto& s2 = c.shards().at(ShardId{2});
    BOOST_TEST(s2.items.size() == 1u);
    BOOST_TEST(s2.items[0].first.value == 3001u);
    BOOST_TEST(s2.items[0].last.value == 6000u);
    BOOST_TEST((s2.nodes == std::vector<NodeId>{NodeId{4}, NodeId{5}, NodeId{6}}));
    const auto& n4 = c.nodes().at(NodeId{4});
    BOOST_TEST(n4.address.to_string() == "127.0.0.1:7104");
    BOOST_TEST(n4.shard == ShardId{2});
}

BOOST_AUTO_TEST_CASE(absent_optional_keys_keep_defaults) {
    const Config c = Config::parse(base(), "t.ini");
    const rl::config::ClusterConfig defaults;
    BOOST_TEST(c.cluster().tick_ms == defaults.tick_ms);
    BOOST_TEST(c.cluster().limits.frame_bytes_max == defaults.limits.frame_bytes_max);
    BOOST_TEST(c.cluster().limits.handshake_timeout_ms == defaults.limits.handshake_timeout_ms);
}

BOOST_AUTO_TEST_CASE(limit_keys_override_defaults) {
    const std::string limits =
        "name = t\nframe_bytes_max = 8388608\npeer_queue_frames_max = 7\n"
        "client_connections_max = 8\nclient_inflight_max = 9\nreconnect_ms_min = 5\n"
        "reconnect_ms_max = 5\nhandshake_timeout_ms = 11\ntick_ms = 50\nelection = ring\n";
    const Config c = Config::parse(edit(edit(base(), "election = bully", ""), "name = t", limits), "t.ini");
    const auto& l = c.cluster().limits;
    BOOST_TEST(l.frame_bytes_max == 8388608u);
    BOOST_TEST(l.peer_queue_frames_max == 7u);
    BOOST_TEST(l.client_connections_max == 8u);
    BOOST_TEST(l.client_inflight_max == 9u);
    BOOST_TEST(l.reconnect_ms_min == 5u);
    BOOST_TEST(l.reconnect_ms_max == 5u);
    BOOST_TEST(l.handshake_timeout_ms == 11u);
    BOOST_TEST(c.cluster().tick_ms == 50u);
    BOOST_TEST((c.cluster().election == rl::config::ElectionAlgorithm::ring));
}

BOOST_AUTO_TEST_CASE(inline_semicolon_and_hash_comments_are_stripped) {
    std::string ini = edit(base(), "election = bully", "election = ring   ; bully | ring");
    ini = edit(ini, "fsync = always", "; a whole-line comment\n  # another\nfsync = never\t# no fsync");
    ini = edit(ini, "data_dir = data", "data_dir = a;b ; ';' inside a value stays");
    const Config c = Config::parse(ini, "t.ini");
    BOOST_TEST((c.cluster().election == rl::config::ElectionAlgorithm::ring));
    BOOST_TEST((c.cluster().fsync == rl::config::FsyncMode::never));
    BOOST_TEST(c.cluster().data_dir == fs::path("a;b"));
}

BOOST_AUTO_TEST_CASE(relative_data_dir_is_taken_from_the_ini_folder) {
    const Config c = Config::parse(base(), "/etc/rl/cluster.ini");
    BOOST_TEST(c.cluster().data_dir == fs::path("/etc/rl/data"));
    BOOST_TEST(c.node_dir(NodeId{2}) == fs::path("/etc/rl/data/node-2"));
}

BOOST_AUTO_TEST_CASE(absolute_data_dir_is_kept) {
    const Config c = Config::parse(edit(base(), "data_dir = data", "data_dir = /var/lib/rl"), "/etc/rl/cluster.ini");
    BOOST_TEST(c.cluster().data_dir == fs::path("/var/lib/rl"));
}

BOOST_AUTO_TEST_CASE(load_resolves_data_dir_next_to_the_file) {
    const fs::path dir = scratch_dir("load");
    std::ofstream(dir / "c.ini") << base();
    const Config c = Config::load(dir / "c.ini");
    BOOST_TEST(c.cluster().data_dir == dir / "data");
    fs::remove_all(dir.parent_path());
}

BOOST_AUTO_TEST_CASE(lookups_answer_node_shard_item_and_peers) {
    const Config c = Config::parse(base(), "t.ini");
    BOOST_TEST(c.node(NodeId{5})->address.port == 7105);
    BOOST_TEST(c.node(NodeId{9}) == nullptr);
    BOOST_TEST(c.shard(ShardId{1})->items[0].last.value == 100u);
    BOOST_TEST(c.shard(ShardId{3}) == nullptr);
    BOOST_TEST((c.shard_of_item(ItemId{100}) == std::optional{ShardId{1}}));
    BOOST_TEST((c.shard_of_item(ItemId{101}) == std::optional{ShardId{2}}));
    BOOST_TEST(!c.shard_of_item(ItemId{201}).has_value());
    BOOST_TEST((c.shard_peers(NodeId{5}) == std::vector<NodeId>{NodeId{4}, NodeId{6}}));
    BOOST_TEST(c.shard_peers(NodeId{9}).empty());
}

BOOST_AUTO_TEST_CASE(several_ranges_in_one_shard_are_sorted) {
    const Config c = Config::parse(edit(base(), "items = 101-200", "items = 150-200, 101-149"), "t.ini");
    const auto& items = c.shard(ShardId{2})->items;
    BOOST_TEST(items.size() == 2u);
    BOOST_TEST(items[0].first.value == 101u);
    BOOST_TEST((c.shard_of_item(ItemId{149}) == std::optional{ShardId{2}}));
}

BOOST_AUTO_TEST_CASE(ipv6_address_is_accepted_and_printed_in_brackets) {
    const Config c = Config::parse(edit(base(), "address = 127.0.0.1:7101", "address = [::1]:7101"), "t.ini");
    BOOST_TEST(c.node(NodeId{1})->address.host == "::1");
    BOOST_TEST(c.node(NodeId{1})->address.to_string() == "[::1]:7101");
}

BOOST_AUTO_TEST_CASE(cluster_name_of_64_characters_is_accepted) {
    const std::string name(64, 'a');
    BOOST_TEST(Config::parse(edit(base(), "name = t", "name = " + name), "t.ini").cluster().name == name);
}

// ---------------------------------------------------------------------------
// File and line level errors

BOOST_AUTO_TEST_CASE(missing_file_is_named_in_the_error) {
    const fs::path missing = "/nonexistent-rl-dir/none.ini";
    try {
        Config::load(missing);
        BOOST_FAIL("no ConfigError");
    } catch (const ConfigError& err) {
        BOOST_TEST(err.file() == missing.string());
        BOOST_TEST(std::string(err.what()) == missing.string() + ": cannot open file: No such file or directory");
    }
}

BOOST_AUTO_TEST_CASE(line_that_is_not_key_value_is_rejected) {
    expect_error(edit(base(), "heartbeat_ms = 50", "heartbeat_ms 50"),
                 {4, "cluster", "", {"\"heartbeat_ms 50\" is not a [section], key = value, blank or comment line"}});
}

BOOST_AUTO_TEST_CASE(key_before_any_section_is_rejected) {
    expect_error("name = x\n" + base(), {1, "", "name", {"key appears before any [section]"}});
}

BOOST_AUTO_TEST_CASE(key_given_twice_is_rejected) {
    expect_error(edit(base(), "heartbeat_ms = 50", "heartbeat_ms = 50\nheartbeat_ms = 60"),
                 {5, "cluster", "heartbeat_ms", {"key given twice (first at line 4)"}});
}

BOOST_AUTO_TEST_CASE(section_given_twice_is_rejected) {
    expect_error(base() + "[shard.1]\n", {32, "shard.1", "", {"section appears twice (first at line 12)"}});
}

BOOST_AUTO_TEST_CASE(hash_inside_value_is_rejected) {
    expect_error(edit(base(), "data_dir = data", "data_dir = a#b"),
                 {8, "cluster", "data_dir", {"'#' inside a value is not supported"}});
}

BOOST_AUTO_TEST_CASE(unknown_section_is_rejected) {
    expect_error(base() + "[backup]\nenabled = true\n",
                 {32, "backup", "", {"unknown section, expected [cluster], [shard.N] or [node.N]"}});
}

BOOST_AUTO_TEST_CASE(section_id_that_is_not_a_positive_number_is_rejected) {
    expect_error(edit(base(), "[shard.2]", "[shard.x]"), {16, "shard.x", "", {"\"x\" is not a positive whole number"}});
    expect_error(edit(base(), "[node.6]", "[node.0]"), {30, "node.0", "", {"expected [node.N] with N = 1, 2, ..."}});
    expect_error(edit(base(), "[node.6]", "[node.06]"), {30, "node.06", "", {"without leading zeros"}});
}

BOOST_AUTO_TEST_CASE(utf8_byte_order_mark_is_ignored) {
    BOOST_TEST(Config::parse("\xEF\xBB\xBF" + base(), "t.ini").cluster().name == "t");
}

// ---------------------------------------------------------------------------
// [cluster] errors

BOOST_AUTO_TEST_CASE(missing_cluster_section_is_rejected) {
    expect_error(topology_text(), {0, "cluster", "", {"missing [cluster] section"}});
}

BOOST_AUTO_TEST_CASE(unknown_cluster_key_is_rejected) {
    expect_error(edit(base(), "name = t", "name = t\ncolour = red"),
                 {3, "cluster", "colour", {"unknown key, expected one of: name, election, heartbeat_ms"}});
}

BOOST_AUTO_TEST_CASE(missing_cluster_name_is_rejected) {
    expect_error(edit(base(), "name = t", ""), {1, "cluster", "name", {"missing required key", "name = demo"}});
}

BOOST_AUTO_TEST_CASE(empty_cluster_name_is_rejected) {
    expect_error(edit(base(), "name = t", "name ="), {2, "cluster", "name", {"is empty, expected 1..64 characters"}});
}

BOOST_AUTO_TEST_CASE(cluster_name_with_space_is_rejected) {
    expect_error(edit(base(), "name = t", "name = my cluster"),
                 {2, "cluster", "name", {"character ' '", "expected only A-Z a-z 0-9 _ . -"}});
}

BOOST_AUTO_TEST_CASE(cluster_name_longer_than_64_is_rejected) {
    expect_error(edit(base(), "name = t", "name = " + std::string(65, 'a')),
                 {2, "cluster", "name", {"65 characters long, expected at most 64"}});
}

BOOST_AUTO_TEST_CASE(unknown_election_value_is_rejected) {
    expect_error(edit(base(), "election = bully", "election = raft"),
                 {3, "cluster", "election", {"unknown value \"raft\", expected bully | ring"}});
}

BOOST_AUTO_TEST_CASE(unknown_fsync_value_is_rejected) {
    expect_error(edit(base(), "fsync = always", "fsync = sometimes"),
                 {9, "cluster", "fsync", {"unknown value \"sometimes\", expected always | never"}});
}

BOOST_AUTO_TEST_CASE(fault_injection_must_be_true_or_false) {
    expect_error(edit(base(), "fault_injection = false", "fault_injection = yes"),
                 {10, "cluster", "fault_injection", {"unknown value \"yes\", expected true | false"}});
}

BOOST_AUTO_TEST_CASE(fault_injection_true_turns_the_switches_on_and_defaults_to_off) {
    BOOST_TEST(Config::parse(edit(base(), "fault_injection = false", "fault_injection = true"), "t.ini")
                   .cluster()
                   .fault_injection);
    BOOST_TEST(!Config::parse(edit(base(), "fault_injection = false", ""), "t.ini").cluster().fault_injection);
}

BOOST_AUTO_TEST_CASE(number_with_unit_suffix_is_rejected) {
    expect_error(edit(base(), "heartbeat_ms = 50", "heartbeat_ms = 50ms"),
                 {4, "cluster", "heartbeat_ms", {"\"50ms\" is not a whole decimal number, expected 1..4294967295"}});
}

BOOST_AUTO_TEST_CASE(negative_number_is_rejected) {
    expect_error(edit(base(), "suspect_after_ms = 200", "suspect_after_ms = -3"),
                 {5, "cluster", "suspect_after_ms", {"\"-3\" is not a whole decimal number"}});
}

BOOST_AUTO_TEST_CASE(exponent_number_is_rejected) {
    expect_error(edit(base(), "election_timeout_ms = 300", "election_timeout_ms = 1e3"),
                 {6, "cluster", "election_timeout_ms", {"\"1e3\" is not a whole decimal number"}});
}

BOOST_AUTO_TEST_CASE(number_above_32_bits_is_rejected) {
    expect_error(edit(base(), "suspect_after_ms = 200", "suspect_after_ms = 4294967296"),
                 {5, "cluster", "suspect_after_ms", {"4294967296 is out of range, expected 1..4294967295"}});
}

BOOST_AUTO_TEST_CASE(number_above_64_bits_is_rejected) {
    expect_error(edit(base(), "initial_balance = 10", "initial_balance = 99999999999999999999"),
                 {7, "cluster", "initial_balance", {"is too large, expected 0..9223372036854775807"}});
}

BOOST_AUTO_TEST_CASE(negative_initial_balance_is_rejected) {
    expect_error(edit(base(), "initial_balance = 10", "initial_balance = -1"),
                 {7, "cluster", "initial_balance", {"\"-1\" is not a whole decimal number, expected 0.."}});
}

BOOST_AUTO_TEST_CASE(zero_tick_is_rejected) {
    expect_error(edit(base(), "name = t", "name = t\ntick_ms = 0"),
                 {3, "cluster", "tick_ms", {"0 is out of range, expected 1.."}});
}

BOOST_AUTO_TEST_CASE(a_zero_snapshot_byte_bound_is_rejected_and_the_default_is_64_mib) {
    expect_error(edit(base(), "name = t", "name = t\nsnapshot_after_bytes = 0"),
                 {3, "cluster", "snapshot_after_bytes", {"0 is out of range, expected 1.."}});
    BOOST_TEST(Config::parse(base(), "t.ini").cluster().limits.snapshot_after_bytes == 64u << 20);
}

BOOST_AUTO_TEST_CASE(suspect_after_not_above_heartbeat_is_rejected) {
    expect_error(edit(base(), "suspect_after_ms = 200", "suspect_after_ms = 50"),
                 {5, "cluster", "suspect_after_ms", {"suspect_after_ms (50) must be greater than heartbeat_ms (50)"}});
}

BOOST_AUTO_TEST_CASE(timing_error_blames_the_key_that_was_written) {
    // suspect_after_ms keeps its default 200, so the message must point at heartbeat_ms.
    std::string ini = edit(base(), "suspect_after_ms = 200", "");
    ini = edit(ini, "heartbeat_ms = 50", "heartbeat_ms = 250");
    expect_error(edit(ini, "election_timeout_ms = 300", "election_timeout_ms = 900"),
                 {4, "cluster", "heartbeat_ms", {"suspect_after_ms (200) must be greater than heartbeat_ms (250)"}});
}

BOOST_AUTO_TEST_CASE(tick_longer_than_heartbeat_is_rejected) {
    expect_error(edit(base(), "name = t", "name = t\ntick_ms = 60"),
                 {3, "cluster", "tick_ms", {"tick_ms (60) must be at most heartbeat_ms (50)"}});
}

BOOST_AUTO_TEST_CASE(election_timeout_below_heartbeat_is_rejected) {
    expect_error(
        edit(base(), "election_timeout_ms = 300", "election_timeout_ms = 40"),
        {6, "cluster", "election_timeout_ms", {"election_timeout_ms (40) must be at least heartbeat_ms (50)"}});
}

BOOST_AUTO_TEST_CASE(byte_queues_below_one_frame_are_rejected) {
    for (const char* key : {"peer_queue_bytes_max", "client_queue_bytes_max", "wal_backlog_bytes_max"}) {
        const std::string line = std::string(key) + " = 1000";
        expect_error(edit(base(), "name = t", "name = t\nframe_bytes_max = 65536\n" + line),
                     {4, "cluster", key, {std::string(key) + " (1000) must be at least frame_bytes_max (65536)"}});
    }
}

BOOST_AUTO_TEST_CASE(new_limits_are_read) {
    const auto c = Config::parse(
        edit(base(), "name = t",
             "name = t\npeer_queue_bytes_max = 9000000\npeer_connections_max = 7\n"
             "client_queue_bytes_max = 8000000\nwal_backlog_bytes_max = 7000000"),
        "x.ini");
    BOOST_TEST(c.cluster().limits.peer_queue_bytes_max == 9000000u);
    BOOST_TEST(c.cluster().limits.peer_connections_max == 7u);
    BOOST_TEST(c.cluster().limits.client_queue_bytes_max == 8000000u);
    BOOST_TEST(c.cluster().limits.wal_backlog_bytes_max == 7000000u);
}

BOOST_AUTO_TEST_CASE(reconnect_min_above_max_is_rejected) {
    expect_error(edit(base(), "name = t", "name = t\nreconnect_ms_min = 500\nreconnect_ms_max = 100"),
                 {3, "cluster", "reconnect_ms_min", {"reconnect_ms_min (500) must be at most reconnect_ms_max (100)"}});
}

BOOST_AUTO_TEST_CASE(frame_bytes_max_below_1024_is_rejected) {
    expect_error(edit(base(), "name = t", "name = t\nframe_bytes_max = 1023"),
                 {3, "cluster", "frame_bytes_max", {"1023 is out of range, expected 1024..67108864"}});
}

BOOST_AUTO_TEST_CASE(frame_bytes_max_above_64_mib_is_rejected) {
    expect_error(edit(base(), "name = t", "name = t\nframe_bytes_max = 67108865"),
                 {3, "cluster", "frame_bytes_max", {"67108865 is out of range, expected 1024..67108864"}});
}

// ---------------------------------------------------------------------------
// [shard.N] errors

BOOST_AUTO_TEST_CASE(no_shard_is_rejected) {
    expect_error(cluster_text(), {0, "cluster", "", {"no [shard.N] section, at least one shard is required"}});
}

BOOST_AUTO_TEST_CASE(unknown_shard_key_is_rejected) {
    expect_error(edit(base(), "nodes = 4,5,6", "nodes = 4,5,6\nreplicas = 3"),
                 {19, "shard.2", "replicas", {"unknown key, expected one of: items, nodes"}});
}

BOOST_AUTO_TEST_CASE(shard_without_items_is_rejected) {
    expect_error(edit(base(), "items = 101-200", ""),
                 {16, "shard.2", "items", {"missing required key", "items = 1-3000"}});
}

BOOST_AUTO_TEST_CASE(shard_with_empty_nodes_is_rejected) {
    expect_error(edit(base(), "nodes = 4,5,6", "nodes ="),
                 {18, "shard.2", "nodes", {"is empty, expected at least one node id like 1,2,3"}});
}

BOOST_AUTO_TEST_CASE(reversed_item_range_is_rejected) {
    expect_error(edit(base(), "items = 101-200", "items = 200-101"),
                 {17, "shard.2", "items", {"range 200-101 is reversed, expected A-B with A <= B"}});
}

BOOST_AUTO_TEST_CASE(junk_item_range_is_rejected) {
    expect_error(
        edit(base(), "items = 101-200", "items = 101-2x0"),
        {17, "shard.2", "items", {"bad range \"101-2x0\"", "expected comma-separated item ranges like 1-3000"}});
}

BOOST_AUTO_TEST_CASE(item_zero_is_rejected) {
    expect_error(edit(base(), "items = 1-100", "items = 0-100"),
                 {13, "shard.1", "items", {"0 is out of range, expected 1.."}});
}

BOOST_AUTO_TEST_CASE(overlapping_ranges_across_shards_name_both) {
    const std::string ini = edit(base(), "items = 101-200", "items = 90-200");
    expect_error(ini, {17, "shard.2", "items", {}});
    try {
        Config::parse(ini, "t.ini");
    } catch (const ConfigError& err) {
        BOOST_TEST(std::string(err.what()) == "t.ini:17: [shard.2] items: range 90-200 overlaps [shard.1] items 1-100");
    }
}

BOOST_AUTO_TEST_CASE(overlapping_ranges_within_a_shard_are_rejected) {
    expect_error(edit(base(), "items = 1-100", "items = 1-100, 50-60"),
                 {13, "shard.1", "items", {"range 50-60 overlaps [shard.1] items 1-100"}});
}

BOOST_AUTO_TEST_CASE(gap_between_ranges_names_first_missing_item) {
    expect_error(edit(base(), "items = 101-200", "items = 111-200"),
                 {17, "shard.2", "items", {"item 101 is not in any shard; items must cover 1..200 without gaps"}});
}

BOOST_AUTO_TEST_CASE(items_not_starting_at_one_are_rejected) {
    expect_error(edit(base(), "items = 1-100", "items = 2-100"),
                 {13, "shard.1", "items", {"item 1 is not in any shard"}});
}

BOOST_AUTO_TEST_CASE(node_listed_twice_in_a_shard_is_rejected) {
    expect_error(edit(base(), "nodes = 1,2,3", "nodes = 1,2,2,3"),
                 {14, "shard.1", "nodes", {"node 2 is listed twice"}});
}

BOOST_AUTO_TEST_CASE(bad_node_id_in_shard_is_rejected) {
    expect_error(edit(base(), "nodes = 1,2,3", "nodes = 1,x,3"),
                 {14, "shard.1", "nodes", {"bad node id", "expected comma-separated positive node ids"}});
}

BOOST_AUTO_TEST_CASE(node_in_two_shards_is_rejected) {
    expect_error(edit(base(), "nodes = 4,5,6", "nodes = 3,4,5,6"),
                 {18, "shard.2", "nodes", {"node 3 is already in [shard.1] nodes; a node serves exactly one shard"}});
}

// ---------------------------------------------------------------------------
// [node.N] errors

BOOST_AUTO_TEST_CASE(node_listed_without_section_is_rejected) {
    const std::string ini = edit(base(), "nodes = 4,5,6", "nodes = 4,5,6,7");
    expect_error(ini, {0, "node.7", "", {}});
    try {
        Config::parse(ini, "t.ini");
    } catch (const ConfigError& err) {
        BOOST_TEST(std::string(err.what()) ==
                   "t.ini: [node.7]: node 7 is listed in [shard.2] nodes but has no [node.7] section");
    }
}

BOOST_AUTO_TEST_CASE(node_section_in_no_shard_is_rejected) {
    expect_error(edit(base(), "nodes = 4,5,6", "nodes = 4,5"),
                 {30, "node.6", "", {"node 6 is not listed in any [shard.N] nodes"}});
}

BOOST_AUTO_TEST_CASE(node_without_address_is_rejected) {
    expect_error(edit(base(), "address = 127.0.0.1:7106", ""),
                 {30, "node.6", "address", {"missing required key", "address = 127.0.0.1:7101"}});
}

BOOST_AUTO_TEST_CASE(unknown_node_key_is_rejected) {
    expect_error(edit(base(), "address = 127.0.0.1:7106", "address = 127.0.0.1:7106\nweight = 2"),
                 {32, "node.6", "weight", {"unknown key, expected one of: address"}});
}

BOOST_AUTO_TEST_CASE(duplicate_address_is_rejected) {
    expect_error(edit(base(), "address = 127.0.0.1:7104", "address = 127.0.0.1:7101"),
                 {27, "node.4", "address", {"127.0.0.1:7101 is already used by [node.1]"}});
}

BOOST_AUTO_TEST_CASE(duplicate_ipv6_address_in_other_spelling_is_rejected) {
    std::string ini = edit(base(), "address = 127.0.0.1:7101", "address = [::1]:7101");
    ini = edit(ini, "address = 127.0.0.1:7102", "address = [0:0:0:0:0:0:0:1]:7101");
    expect_error(ini, {23, "node.2", "address", {"[::1]:7101 is already used by [node.1]"}});
}

BOOST_AUTO_TEST_CASE(address_without_port_is_rejected) {
    expect_error(
        edit(base(), "address = 127.0.0.1:7101", "address = 127.0.0.1"),
        {21, "node.1", "address", {"\"127.0.0.1\" is not host:port", "expected IPv4:port like 127.0.0.1:7101"}});
}

BOOST_AUTO_TEST_CASE(port_out_of_range_is_rejected) {
    expect_error(edit(base(), "address = 127.0.0.1:7101", "address = 127.0.0.1:70000"),
                 {21, "node.1", "address", {"bad port (70000 is out of range, expected 1..65535)"}});
}

BOOST_AUTO_TEST_CASE(host_name_address_is_rejected) {
    expect_error(edit(base(), "address = 127.0.0.1:7101", "address = localhost:7101"),
                 {21, "node.1", "address", {"\"localhost\" is not a numeric IPv4 address"}});
}

BOOST_AUTO_TEST_CASE(ipv6_address_without_brackets_is_rejected) {
    expect_error(edit(base(), "address = 127.0.0.1:7101", "address = ::1:7101"),
                 {21, "node.1", "address", {"is not host:port", "[IPv6]:port like [::1]:7101"}});
}

BOOST_AUTO_TEST_CASE(log_and_dedup_limits_are_read_from_the_cluster_section) {
    const auto c = rl::config::Config::parse(
        "[cluster]\nname = t\nsnapshot_after_entries = 100\nsnapshot_after_bytes = 1048576\ndedup_window = 8\n"
        "dedup_clients_max = 50\n[shard.1]\nitems = 1-10\nnodes = 1\n[node.1]\naddress = 127.0.0.1:7000\n",
        "t.ini");
    BOOST_TEST(c.cluster().limits.snapshot_after_entries == 100u);
    BOOST_TEST(c.cluster().limits.snapshot_after_bytes == 1048576u);
    BOOST_TEST(c.cluster().limits.dedup_window == 8u);
    BOOST_TEST(c.cluster().limits.dedup_clients_max == 50u);
}

BOOST_AUTO_TEST_CASE(a_dedup_table_whose_snapshot_cannot_fit_in_a_frame_is_refused) {
    try {
        rl::config::Config::parse("[cluster]\nname = t\ndedup_window = 1000\ndedup_clients_max = 100000\n"
                                  "[shard.1]\nitems = 1-10\nnodes = 1\n[node.1]\naddress = 127.0.0.1:7000\n",
                                  "t.ini");
        BOOST_FAIL("no error");
    } catch (const rl::config::ConfigError& e) {
        BOOST_TEST(e.section() == "cluster");
        BOOST_TEST(e.key() == "dedup_window");
        BOOST_TEST(std::string(e.what()).find("frame_bytes_max") != std::string::npos);
    }
}

// batch_transfers_max (docs/design.md section 6.9): dedup_window when left
// out; at most dedup_window and what fits in a frame when given.
BOOST_AUTO_TEST_CASE(batch_transfers_max_defaults_to_the_dedup_window_and_is_bounded) {
    const auto parse = [](const std::string& lines) {
        return rl::config::Config::parse("[cluster]\nname = t\n" + lines +
                                             "[shard.1]\nitems = 1-10\nnodes = 1\n[node.1]\naddress = 127.0.0.1:7000\n",
                                         "t.ini");
    };
    BOOST_TEST(parse("").cluster().limits.batch_transfers_max == 64u);
    BOOST_TEST(parse("dedup_window = 8\n").cluster().limits.batch_transfers_max == 8u);
    BOOST_TEST(parse("dedup_window = 200\ndedup_clients_max = 100\nbatch_transfers_max = 100\n").cluster().limits.batch_transfers_max == 100u);
    // Left out under a small frame: what fits, (8192 / 2) / 64.
    const std::string small = "frame_bytes_max = 8192\ndedup_window = 200\ndedup_clients_max = 1\n";
    BOOST_TEST(parse(small).cluster().limits.batch_transfers_max == 64u);
    const auto refused = [&](const std::string& lines, const std::string& words) {
        try {
            parse(lines);
            BOOST_FAIL("no error for " + lines);
        } catch (const rl::config::ConfigError& e) {
            BOOST_TEST(e.key() == "batch_transfers_max");
            BOOST_TEST(std::string(e.what()).find(words) != std::string::npos, e.what());
        }
    };
    refused("batch_transfers_max = 65\n", "batch_transfers_max (65) must be at most dedup_window (64)");
    refused(small + "batch_transfers_max = 65\n",
            "65 transfers of up to 64 bytes each do not fit in frame_bytes_max = 8192; at most 64");
    refused("batch_transfers_max = 0\n", "");
}

BOOST_AUTO_TEST_CASE(a_shard_whose_total_balance_overflows_is_refused) {
    try {
        rl::config::Config::parse("[cluster]\nname = t\ninitial_balance = 9000000000000000000\n"
                                  "[shard.1]\nitems = 1-10\nnodes = 1\n[node.1]\naddress = 127.0.0.1:7000\n",
                                  "t.ini");
        BOOST_FAIL("no error");
    } catch (const rl::config::ConfigError& e) {
        BOOST_TEST(e.key() == "initial_balance");
        BOOST_TEST(std::string(e.what()).find("does not fit") != std::string::npos);
    }
}
