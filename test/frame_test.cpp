// Framing and codec: round trips, byte-at-a-time delivery, and every kind of
// malformed input the decoder must refuse without trusting it.
#define BOOST_TEST_MODULE frame
#include "config/crc32c.hpp"
#include "transport/frame.hpp"

#include <cereal/archives/portable_binary.hpp>

#include <boost/test/unit_test.hpp>

#include <sstream>
#include <utility>
#include <variant>

using namespace rl;
using namespace rl::transport;

namespace {

constexpr std::uint32_t kMax = 64 * 1024;

Bytes frame_of(const Message& m) {
    auto f = encode_frame(m, kMax);
    BOOST_REQUIRE(f.has_value());
    return *f;
}

StatusReply sample_status() {
    StatusReply r;
    r.request_id = 77;
    r.node = NodeId{2};
    r.shard = ShardId{1};
    r.role = NodeRole::leader;
    r.epoch = Epoch{9};
    r.leader = NodeId{2};
    r.commit_index = LogIndex{123};
    r.applied_index = LogIndex{120};
    r.peers = {{NodeId{1}, false, 40}, {NodeId{3}, true, 1250}};
    return r;
}

FrameDecoder::Result decode_one(const Bytes& bytes) {
    FrameDecoder d(kMax);
    d.feed(bytes);
    return d.next();
}

FrameError error_of(const FrameDecoder::Result& r) {
    const auto* f = std::get_if<DecodeFailure>(&r);
    BOOST_REQUIRE_MESSAGE(f != nullptr, "expected a decode failure");
    return f->error;
}

// Rewrites the CRC after a payload edit so only the intended fault remains.
void fix_crc(Bytes& frame) {
    const auto crc = crc32c({frame.data() + kHeaderBytes, frame.size() - kHeaderBytes});
    frame[8] = static_cast<std::uint8_t>(crc >> 24);
    frame[9] = static_cast<std::uint8_t>(crc >> 16);
    frame[10] = static_cast<std::uint8_t>(crc >> 8);
    frame[11] = static_cast<std::uint8_t>(crc);
}

// What cereal's own portable archive writes for `m`, over a stream: frames
// are encoded with rl::VectorOutputArchive, which must write the same bytes.
std::string cereal_payload(const Message& m) {
    std::ostringstream os(std::ios::binary);
    {
        cereal::PortableBinaryOutputArchive ar(os, cereal::PortableBinaryOutputArchive::Options::LittleEndian());
        std::visit([&](const auto& v) { ar(v); }, m);
    }
    return os.str();
}

std::string payload_of(const Bytes& frame) { return std::string(frame.begin() + kHeaderBytes, frame.end()); }

// A raw frame of `type` with `payload` and a correct CRC.
Bytes raw_frame(std::uint8_t type, const Bytes& payload) {
    Bytes f(kHeaderBytes);
    const std::uint32_t len = static_cast<std::uint32_t>(8 + payload.size());
    f[0] = static_cast<std::uint8_t>(len >> 24);
    f[1] = static_cast<std::uint8_t>(len >> 16);
    f[2] = static_cast<std::uint8_t>(len >> 8);
    f[3] = static_cast<std::uint8_t>(len);
    f[4] = 0x52;
    f[5] = 0x4C;
    f[6] = 1;
    f[7] = type;
    f.insert(f.end(), payload.begin(), payload.end());
    fix_crc(f);
    return f;
}

}  // namespace

BOOST_AUTO_TEST_CASE(header_layout_matches_the_wire_contract) {
    const Bytes f = frame_of(PingRequest{5});
    BOOST_TEST(f.size() >= kHeaderBytes);
    const std::uint32_t len = (std::uint32_t{f[0]} << 24) | (f[1] << 16) | (f[2] << 8) | f[3];
    BOOST_TEST(len == f.size() - 4);
    BOOST_TEST(f[4] == 0x52);
    BOOST_TEST(f[5] == 0x4C);
    BOOST_TEST(f[6] == 1);
    BOOST_TEST(f[7] == PingRequest::kWireType);
    const std::uint32_t crc = (std::uint32_t{f[8]} << 24) | (f[9] << 16) | (f[10] << 8) | f[11];
    BOOST_TEST(crc == crc32c({f.data() + kHeaderBytes, f.size() - kHeaderBytes}));
}

BOOST_AUTO_TEST_CASE(crc32c_matches_the_castagnoli_check_value) {
    const std::string check = "123456789";
    BOOST_TEST(crc32c({reinterpret_cast<const std::uint8_t*>(check.data()), check.size()}) == 0xE3069283u);
}

BOOST_AUTO_TEST_CASE(payload_is_cereal_portable_binary) {
    const Hello h{Role::peer, NodeId{4}, "demo", 1};
    std::ostringstream os(std::ios::binary);
    {
        cereal::PortableBinaryOutputArchive ar(os);
        ar(h);
    }
    const std::string expect = os.str();
    const Bytes f = frame_of(h);
    BOOST_TEST(std::string(f.begin() + kHeaderBytes, f.end()) == expect);
}

BOOST_AUTO_TEST_CASE(status_reply_round_trips) {
    const auto r = decode_one(frame_of(sample_status()));
    const auto* m = std::get_if<Message>(&r);
    BOOST_REQUIRE(m != nullptr);
    const auto& s = std::get<StatusReply>(*m);
    BOOST_TEST(s.request_id == 77u);
    BOOST_TEST(s.epoch == Epoch{9});
    BOOST_TEST(s.commit_index == LogIndex{123});
    BOOST_REQUIRE(s.peers.size() == 2u);
    BOOST_TEST(s.peers[1].suspected);
    BOOST_TEST(s.peers[1].last_heard_ms == 1250u);
}

// Each kind of the wire variant, default-constructed: a kind added to the
// variant is covered without a new line here.
template <std::size_t... I>
std::vector<Message> one_of_each_kind(std::index_sequence<I...>) {
    return {Message{std::in_place_index<I>}...};
}

BOOST_AUTO_TEST_CASE(every_message_kind_round_trips_by_type) {
    std::vector<Message> all = {Hello{Role::client, kNoNode, "x", 1},
                                Refuse{"no"},
                                election::Heartbeat{Epoch{3}, NodeId{2}, LogIndex{7}},
                                PingRequest{1},
                                StatusRequest{2},
                                PingReply{3, NodeId{1}},
                                sample_status(),
                                ErrorReply{4, "unavailable", "no leader", NodeId{3}}};
    for (auto& m : one_of_each_kind(std::make_index_sequence<std::variant_size_v<Message>>{})) all.push_back(m);
    for (const auto& m : all) {
        BOOST_TEST(payload_of(frame_of(m)) == cereal_payload(m));
        const auto r = decode_one(frame_of(m));
        const auto* got = std::get_if<Message>(&r);
        BOOST_REQUIRE(got != nullptr);
        BOOST_TEST(got->index() == m.index());
        BOOST_TEST(wire_type(*got) == wire_type(m));
        BOOST_TEST(frame_of(*got) == frame_of(m));
    }
}

BOOST_AUTO_TEST_CASE(fault_switch_and_reset_messages_round_trip_with_their_fields) {
    const auto back = [](const Message& m) {
        BOOST_TEST(payload_of(frame_of(m)) == cereal_payload(m));
        const auto r = decode_one(frame_of(m));
        BOOST_REQUIRE(std::holds_alternative<Message>(r));
        return std::get<Message>(r);
    };
    const auto fail = std::get<FaultRequest>(back(FaultRequest{9, FaultAction::recover}));
    BOOST_TEST(fail.request_id == 9u);
    BOOST_TEST((fail.action == FaultAction::recover));
    const auto failed = std::get<FaultReply>(back(FaultReply{10, NodeId{3}, true, false}));
    BOOST_TEST(failed.node == NodeId{3});
    BOOST_TEST(failed.failed);
    BOOST_TEST(!failed.changed);
    BOOST_TEST(std::get<ResetRequest>(back(ResetRequest{11, ShardId{2}})).shard == ShardId{2});
    const auto reset = std::get<ResetReply>(back(ResetReply{12, ShardId{2}, LogIndex{40}, NodeId{5}}));
    BOOST_TEST(reset.applied_at == LogIndex{40});
    BOOST_TEST(reset.leader_hint == NodeId{5});
    BOOST_TEST(FaultRequest::kWireType == 107);
    BOOST_TEST(ResetRequest::kWireType == 108);
    BOOST_TEST(FaultReply::kWireType == 137);
    BOOST_TEST(ResetReply::kWireType == 138);
    // A reset forwarded to the shard's leader and its answer travel inside
    // ForwardRequest and ForwardReply.
    const auto fwd = std::get<txn::ForwardRequest>(back(txn::ForwardRequest{Epoch{2}, 7, 1, txn::ResetOp{}}));
    BOOST_TEST(std::holds_alternative<txn::ResetOp>(fwd.op));
    const auto done = std::get<txn::ForwardReply>(
        back(txn::ForwardReply{Epoch{2}, 7, txn::ResetDone{ShardId{1}, LogIndex{9}}, NodeId{1}}));
    BOOST_TEST(std::get<txn::ResetDone>(done.result).applied_at == LogIndex{9});
}

BOOST_AUTO_TEST_CASE(batch_messages_round_trip_with_every_transfer_and_outcome) {
    const auto back = [](const Message& m) {
        const auto r = decode_one(frame_of(m));
        BOOST_REQUIRE(std::holds_alternative<Message>(r));
        return std::get<Message>(r);
    };
    BOOST_TEST(TransfersRequest::kWireType == 109);
    BOOST_TEST(TransfersReply::kWireType == 139);
    const std::uint64_t s1 = txn::session_id(ShardId{1}, LogIndex{4});
    TransfersRequest req{21, {{{s1, 1}, ItemId{1}, ItemId{2}, 5}, {{s1, 2}, ItemId{2}, ItemId{150}, 7}}};
    const auto req2 = std::get<TransfersRequest>(back(req));
    BOOST_TEST(req2.request_id == 21u);
    BOOST_REQUIRE(req2.transfers.size() == 2u);
    BOOST_TEST((req2.transfers[1].txid == txn::TxnId{s1, 2}));
    BOOST_TEST(req2.transfers[1].to == ItemId{150});
    BOOST_TEST(req2.transfers[1].amount == 7);
    const TransfersReply rep{21,
                             {{{s1, 1}, txn::BatchStatus::committed, ""},
                              {{s1, 2}, txn::BatchStatus::aborted, "insufficient_funds"},
                              {{s1, 3}, txn::BatchStatus::failed, "timeout"}},
                             NodeId{3}};
    const auto rep2 = std::get<TransfersReply>(back(rep));
    BOOST_TEST((rep2.each == rep.each));
    BOOST_TEST(rep2.leader_hint == NodeId{3});
    // Between nodes: the part of a batch forwarded to a leader, its outcomes,
    // and the log entry that carries its intra-shard transfers.
    const auto fwd = std::get<txn::ForwardRequest>(back(txn::ForwardRequest{Epoch{2}, 7, 1, txn::BatchOp{req.transfers}}));
    BOOST_TEST(std::get<txn::BatchOp>(fwd.op).transfers.size() == 2u);
    const auto done = std::get<txn::ForwardReply>(back(txn::ForwardReply{Epoch{2}, 7, txn::BatchDone{rep.each}, NodeId{1}}));
    BOOST_TEST((std::get<txn::BatchDone>(done.result).each == rep.each));
    txn::AppendEntries ae;
    ae.entries.push_back({LogIndex{5}, Epoch{2}, txn::TransferBatch{s1, {{1, ItemId{1}, ItemId{2}, 5}, {3, ItemId{2}, ItemId{1}, 9}}}});
    const auto ae2 = std::get<txn::AppendEntries>(back(ae));
    const auto& batch = std::get<txn::TransferBatch>(ae2.entries.at(0).command);
    BOOST_TEST(batch.session == s1);
    BOOST_REQUIRE(batch.each.size() == 2u);
    BOOST_TEST(batch.each[1].seq == 3u);
    BOOST_TEST(batch.each[1].amount == 9);
}

// batch_transfers_max is bounded by frame_bytes_max at kBatchTransferBytes a
// transfer: the largest transfer and the longest outcome stay within it.
BOOST_AUTO_TEST_CASE(a_batch_transfer_takes_at_most_its_budgeted_bytes_each_way) {
    constexpr std::size_t n = 100;
    const std::uint64_t big = ~std::uint64_t{0};
    TransfersRequest req;
    TransfersReply rep;
    rep.leader_hint = NodeId{big};
    for (std::size_t i = 0; i < n; ++i) {
        req.transfers.push_back({{big, big}, ItemId{big}, ItemId{big}, std::numeric_limits<std::int64_t>::min()});
        rep.each.push_back({{big, big}, txn::BatchStatus::aborted, "session_expired"});  // the longest reason
    }
    const auto one = [](const Message& m) { return frame_of(m).size(); };
    TransfersRequest req1 = req;
    req1.transfers.resize(1);
    TransfersReply rep1 = rep;
    rep1.each.resize(1);
    BOOST_TEST((one(req) - one(req1)) / (n - 1) <= std::size_t{rl::config::kBatchTransferBytes});
    BOOST_TEST((one(rep) - one(rep1)) / (n - 1) <= std::size_t{rl::config::kBatchTransferBytes});
    // Forwarded between nodes, a part costs no more per transfer.
    const auto fwd = [&](std::size_t k) {
        txn::BatchDone d;
        d.each.assign(rep.each.begin(), rep.each.begin() + static_cast<std::ptrdiff_t>(k));
        return one(txn::ForwardReply{Epoch{big}, big, d, NodeId{big}});
    };
    BOOST_TEST((fwd(n) - fwd(1)) / (n - 1) <= std::size_t{rl::config::kBatchTransferBytes});
}

BOOST_AUTO_TEST_CASE(frames_delivered_one_byte_at_a_time_decode) {
    Bytes stream = frame_of(PingRequest{1});
    const Bytes second = frame_of(sample_status());
    stream.insert(stream.end(), second.begin(), second.end());
    FrameDecoder d(kMax);
    std::vector<Message> got;
    for (std::uint8_t byte : stream) {
        d.feed({&byte, 1});
        for (;;) {
            auto r = d.next();
            if (std::holds_alternative<FrameDecoder::NeedMore>(r)) break;
            BOOST_REQUIRE(std::holds_alternative<Message>(r));
            got.push_back(std::get<Message>(std::move(r)));
        }
    }
    BOOST_REQUIRE(got.size() == 2u);
    BOOST_TEST(std::get<PingRequest>(got[0]).request_id == 1u);
    BOOST_TEST(std::get<StatusReply>(got[1]).peers.size() == 2u);
    BOOST_TEST(!d.finish().has_value());
}

BOOST_AUTO_TEST_CASE(many_frames_in_one_read_all_decode) {
    Bytes stream;
    for (std::uint64_t i = 0; i < 100; ++i) {
        const Bytes f = frame_of(PingRequest{i});
        stream.insert(stream.end(), f.begin(), f.end());
    }
    FrameDecoder d(kMax);
    d.feed(stream);
    for (std::uint64_t i = 0; i < 100; ++i) {
        auto r = d.next();
        BOOST_REQUIRE(std::holds_alternative<Message>(r));
        BOOST_TEST(std::get<PingRequest>(std::get<Message>(r)).request_id == i);
    }
    BOOST_TEST(std::holds_alternative<FrameDecoder::NeedMore>(d.next()));
}

BOOST_AUTO_TEST_CASE(bad_magic_is_refused) {
    Bytes f = frame_of(PingRequest{1});
    f[4] = 'X';
    BOOST_TEST(error_of(decode_one(f)) == FrameError::bad_magic);
}

BOOST_AUTO_TEST_CASE(garbage_bytes_are_refused_at_the_header) {
    const std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    BOOST_TEST(error_of(decode_one(Bytes(junk.begin(), junk.end()))) == FrameError::bad_magic);
}

BOOST_AUTO_TEST_CASE(bad_version_is_refused) {
    Bytes f = frame_of(PingRequest{1});
    f[6] = 2;
    BOOST_TEST(error_of(decode_one(f)) == FrameError::bad_version);
}

BOOST_AUTO_TEST_CASE(length_above_the_maximum_is_refused_before_the_body_arrives) {
    Bytes f = frame_of(PingRequest{1});
    f[0] = 0x7F;  // ~2 GiB claimed
    FrameDecoder d(kMax);
    d.feed({f.data(), kHeaderBytes});  // only the header: no body is awaited
    BOOST_TEST(error_of(d.next()) == FrameError::bad_length);
    BOOST_TEST(d.buffered() == kHeaderBytes);
}

BOOST_AUTO_TEST_CASE(length_shorter_than_a_header_is_refused) {
    Bytes f = frame_of(PingRequest{1});
    f[0] = f[1] = f[2] = 0;
    f[3] = 3;
    BOOST_TEST(error_of(decode_one(f)) == FrameError::bad_length);
}

BOOST_AUTO_TEST_CASE(unknown_type_is_refused) {
    Bytes f = frame_of(PingRequest{1});
    f[7] = 250;
    BOOST_TEST(error_of(decode_one(f)) == FrameError::unknown_type);
}

BOOST_AUTO_TEST_CASE(bad_crc_is_refused) {
    Bytes f = frame_of(PingRequest{1});
    f.back() ^= 0x01;
    BOOST_TEST(error_of(decode_one(f)) == FrameError::bad_crc);
}

BOOST_AUTO_TEST_CASE(undecodable_payload_is_refused) {
    // A Hello cut after its role byte: CRC is right, cereal runs out.
    BOOST_TEST(error_of(decode_one(raw_frame(Hello::kWireType, {1, 1}))) == FrameError::bad_payload);
}

BOOST_AUTO_TEST_CASE(trailing_bytes_after_a_message_are_refused) {
    Bytes f = frame_of(PingRequest{1});
    f.push_back(0);
    const std::uint32_t len = static_cast<std::uint32_t>(f.size() - 4);
    f[3] = static_cast<std::uint8_t>(len);
    fix_crc(f);
    BOOST_TEST(error_of(decode_one(f)) == FrameError::bad_payload);
}

BOOST_AUTO_TEST_CASE(a_string_claiming_more_bytes_than_the_frame_is_refused_without_allocating) {
    // Refuse{reason} whose length prefix claims 2^60 bytes: cereal alone
    // would try to allocate that before noticing the payload is 9 bytes.
    Bytes payload = {1};  // endianness marker: little
    for (int i = 0; i < 7; ++i) payload.push_back(0);
    payload.push_back(0x10);
    BOOST_TEST(error_of(decode_one(raw_frame(Refuse::kWireType, payload))) == FrameError::bad_payload);
}

BOOST_AUTO_TEST_CASE(truncated_frame_is_reported_when_the_stream_ends) {
    const Bytes f = frame_of(sample_status());
    FrameDecoder d(kMax);
    d.feed({f.data(), f.size() - 3});
    BOOST_TEST(std::holds_alternative<FrameDecoder::NeedMore>(d.next()));
    const auto cut = d.finish();
    BOOST_REQUIRE(cut.has_value());
    BOOST_TEST(cut->error == FrameError::truncated);
}

BOOST_AUTO_TEST_CASE(encoding_a_message_over_the_maximum_fails_cleanly) {
    Refuse big{std::string(kMax, 'x')};
    BOOST_TEST(!encode_frame(big, kMax).has_value());
}

BOOST_AUTO_TEST_CASE(decoder_memory_stays_bounded_over_a_long_stream) {
    FrameDecoder d(kMax);
    const Bytes f = frame_of(sample_status());
    for (int i = 0; i < 10000; ++i) {
        d.feed(f);
        BOOST_REQUIRE(std::holds_alternative<Message>(d.next()));
    }
    BOOST_TEST(d.buffered() == 0u);
}
