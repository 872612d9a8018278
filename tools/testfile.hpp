// Test sets in the tab-separated format of a well-known sharded-bank course
// project (docs/design.md section 4, `--testfile`), parsed with no I/O but
// the text it is given:
//
//   Set Number<TAB>Transactions<TAB>Live Nodes
//   1<TAB>(21, 700, 2)<TAB>[n1, n2, n4]
//   <TAB>(700)
//   <TAB>F(n2)
//   2<TAB>(5, 6, 1)<TAB>[n1, n2, n3]
//
// A set's first row holds its number and its live-node list; rows after it
// leave the first column empty. Commands: (FROM, TO, AMOUNT) a transfer,
// (ITEM) a balance read, F(nX) fail node X, R(nX) recover it. Spaces and
// tabs around and inside the fields are free, CRLF line ends and blank lines
// are fine; anything else is a ParseError naming the line.
#pragma once

#include "config/types.hpp"

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace rl::tools::testfile {

struct Transfer {
    ItemId from;
    ItemId to;
    std::int64_t amount = 0;  // > 0
};
struct Balance {
    ItemId item;
};
struct Fail {
    NodeId node;
};
struct Recover {
    NodeId node;
};
using Command = std::variant<Transfer, Balance, Fail, Recover>;

struct Step {
    Command command;
    std::size_t line = 0;  // 1-based line of the file
};

struct TestSet {
    std::uint64_t number = 0;
    std::size_t line = 0;        // of its first row
    std::vector<NodeId> live;    // as listed, no duplicates; may be empty
    std::vector<Step> steps;     // in file order
};

class ParseError : public std::runtime_error {
public:
    ParseError(const std::string& file, std::size_t line, const std::string& what);
    std::size_t line() const { return line_; }

private:
    std::size_t line_;
};

// Every set of `text`, in file order. `file` names it in errors
// ("sets.tsv line 4: ..."). Throws ParseError for a missing or wrong
// header, a row it cannot read, a continuation row before any set, a live
// list on a continuation row or missing from a first row, a set number
// given twice, or a file without sets.
std::vector<TestSet> parse(std::string_view text, const std::string& file);

// The command as the file format writes it: "(21, 700, 2)", "(700)", "F(n2)".
std::string to_text(const Command& c);

}  // namespace rl::tools::testfile
