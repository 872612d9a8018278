#include "describe_txn.hpp"

#include "test/election/describe.hpp"

#include "config/overload.hpp"
#include "txn/state_machine.hpp"

#include <sstream>

namespace rl::txn::sim {
namespace {

void body(std::ostream& os, const AppendEntries& m) {
    os << "AppendEntries{epoch=" << m.epoch << " prev=" << m.prev_index << "/" << m.prev_epoch
       << " n=" << m.entries.size() << " commit=" << m.commit_index << " round=" << m.round << "}";
}
void body(std::ostream& os, const AppendReply& m) {
    os << "AppendReply{epoch=" << m.epoch << " success=" << m.success << " match=" << m.match_index
       << " hint=" << m.hint << " round=" << m.round << " last=" << m.last_index << "}";
}
void body(std::ostream& os, const FetchLog& m) { os << "FetchLog{epoch=" << m.epoch << " from=" << m.from_index << "}"; }
void body(std::ostream& os, const FetchReply& m) {
    os << "FetchReply{epoch=" << m.epoch << " from=" << m.from_index << " n=" << m.entries.size()
       << " last=" << m.last_index << " snapshot=" << (m.snapshot ? m.snapshot->last_index.value : 0) << "}";
}
void body(std::ostream& os, const InstallSnapshot& m) {
    os << "InstallSnapshot{epoch=" << m.epoch << " last=" << m.snapshot.last_index << "/" << m.snapshot.last_epoch
       << " commit=" << m.commit_index << "}";
}
void body(std::ostream& os, const ForwardRequest& m) {
    os << "ForwardRequest{epoch=" << m.epoch << " id=" << m.forward_id << " hops=" << int{m.hops} << "}";
}
void body(std::ostream& os, const ForwardReply& m) {
    os << "ForwardReply{epoch=" << m.epoch << " id=" << m.forward_id << " result=" << m.result.index() << "}";
}

std::string txid_text(TxnId t) { return std::to_string(t.session) + ":" + std::to_string(t.seq); }

void body(std::ostream& os, const ShardRequest& m) {
    os << "ShardRequest{from_shard=" << m.from_shard << " reply_to=" << m.reply_to << " hops=" << int{m.hops};
    for (const auto& ask : m.asks) {
        os << " ";
        std::visit(Overload{
                       [&](const PrepareAsk& a) { os << "prepare " << txid_text(a.txn.txid) << " amount=" << a.txn.amount; },
                       [&](const QueryAsk& a) { os << "query " << txid_text(a.txid); },
                       [&](const DecideAsk& a) { os << "decide " << txid_text(a.txid) << " fate=" << int(a.fate); },
                       [&](const ForgetAsk& a) { os << "forget n=" << a.txids.size(); },
                   },
                   ask);
    }
    os << "}";
}
void body(std::ostream& os, const ShardReply& m) {
    os << "ShardReply{shard=" << m.shard << " epoch=" << m.epoch << " leader=" << m.leader;
    for (const auto& tell : m.tells) {
        os << " ";
        std::visit(Overload{
                       [&](const HintTell&) { os << "hint"; },
                       [&](const StateTell& t) {
                           os << "state " << txid_text(t.txn.txid) << " " << to_string(static_cast<QueryState>(t.state));
                       },
                       [&](const AckTell& a) { os << "ack " << txid_text(a.txid); },
                   },
                   tell);
    }
    os << "}";
}

}  // namespace

std::string describe(NodeId from, NodeId to, const std::variant<election::ElectionMessage, TxnMessage>& mail) {
    if (const auto* e = std::get_if<election::ElectionMessage>(&mail)) return election::sim::describe(from, to, *e);
    std::ostringstream os;
    os << "n" << from << " -> n" << to << " ";
    std::visit([&](const auto& m) { body(os, m); }, std::get<TxnMessage>(mail));
    return os.str();
}

std::string describe(const LogEvent& e) {
    std::ostringstream os;
    os << "event=" << to_string(e.kind) << " peer=" << e.peer << " index=" << e.index;
    if (*e.reason) os << " reason=" << e.reason;
    return os.str();
}

}  // namespace rl::txn::sim
