#include "tools/testfile.hpp"

#include "config/overload.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>

namespace rl::tools::testfile {
namespace {

constexpr std::uint64_t kInt64Max = std::numeric_limits<std::int64_t>::max();
constexpr std::string_view kHeader = "set number transactions live nodes";
constexpr std::string_view kNbsp = "\xC2\xA0";  // what spreadsheets export for some spaces
constexpr std::size_t kQuoteMax = 24;           // characters of the row an error quotes

// One row of the file, read left to right.
class Row {
public:
    Row(std::string_view text, const std::string& file, std::size_t line) : text_(text), file_(file), line_(line) {}

    void skip_space() {
        for (;;) {
            if (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\r')) {
                ++pos_;
            } else if (text_.substr(pos_, kNbsp.size()) == kNbsp) {
                pos_ += kNbsp.size();
            } else {
                return;
            }
        }
    }
    // The next character after any space; '\0' at the end of the row.
    char peek() {
        skip_space();
        return pos_ < text_.size() ? text_[pos_] : '\0';
    }
    bool take(char c) {
        if (peek() != c) return false;
        ++pos_;
        return true;
    }
    void expect(char c, const std::string& context) {
        if (!take(c)) fail(std::string("expected '") + c + "' " + context + ", got " + quote());
    }
    std::uint64_t number(const std::string& what, std::uint64_t min, std::uint64_t max) {
        skip_space();
        if (pos_ < text_.size() && text_[pos_] == '-') {
            fail(what + " must be a whole number from " + std::to_string(min) + " to " + std::to_string(max) +
                 ", got " + quote());
        }
        std::uint64_t v = 0;
        const char* first = text_.data() + pos_;
        const auto [end, ec] = std::from_chars(first, text_.data() + text_.size(), v);
        if (end == first) fail("expected " + what + ", got " + quote());
        if (ec != std::errc{} || v < min || v > max) {
            fail(what + " must be a whole number from " + std::to_string(min) + " to " + std::to_string(max) +
                 ", got " + std::string(first, end));
        }
        pos_ += static_cast<std::size_t>(end - first);
        return v;
    }
    // "nX" or "NX": a node id.
    NodeId node() {
        const char c = peek();
        if (c != 'n' && c != 'N') fail("expected a node as nX (n1, n2, ...), got " + quote());
        ++pos_;
        return NodeId{number("a node id after 'n'", 1, kInt64Max)};
    }
    // What is left of the row, quoted and cut short, or "the end of the row".
    std::string quote() {
        skip_space();
        if (pos_ >= text_.size()) return "the end of the row";
        const std::string_view rest = text_.substr(pos_);
        return "\"" + std::string(rest.substr(0, kQuoteMax)) + (rest.size() > kQuoteMax ? "...\"" : "\"");
    }
    [[noreturn]] void fail(const std::string& why) const { throw ParseError(file_, line_, why); }
    std::size_t line() const { return line_; }

private:
    std::string_view text_;
    std::size_t pos_ = 0;
    const std::string& file_;
    std::size_t line_;
};

bool starts_command(char c) { return c == '(' || c == 'F' || c == 'f' || c == 'R' || c == 'r'; }

const std::string kCommands = "(FROM, TO, AMOUNT), (ITEM), F(nX) or R(nX)";

Command transfer_or_balance(Row& r) {
    const auto item = [&](const char* what) { return ItemId{r.number(what, 1, kInt64Max)}; };
    const ItemId first = item("an item");
    if (r.take(')')) return Balance{first};
    r.expect(',', "or ')' after the first item of " + kCommands);
    const ItemId to = item("the receiving item");
    r.expect(',', "after the receiving item of (FROM, TO, AMOUNT)");
    const auto amount = static_cast<std::int64_t>(r.number("the amount", 1, kInt64Max));
    r.expect(')', "after the amount of (FROM, TO, AMOUNT)");
    if (first == to) r.fail("a transfer from item " + std::to_string(first.value) + " to itself");
    return Transfer{first, to, amount};
}

Command command(Row& r) {
    const char c = r.peek();
    if (!starts_command(c)) r.fail("expected a command, " + kCommands + ", got " + r.quote());
    r.take(c);
    if (c == '(') return transfer_or_balance(r);
    const std::string name = c == 'F' || c == 'f' ? "F" : "R";
    r.expect('(', "after " + name + ": " + name + "(nX)");
    const NodeId node = r.node();
    r.expect(')', "after the node of " + name + "(nX)");
    if (name == "F") return Fail{node};
    return Recover{node};
}

std::vector<NodeId> live_list(Row& r) {
    std::vector<NodeId> live;
    r.expect('[', "to open the live-node list [n1, n2, ...]");
    if (r.take(']')) return live;
    do {
        const NodeId n = r.node();
        if (std::find(live.begin(), live.end(), n) != live.end()) {
            r.fail("node n" + std::to_string(n.value) + " is listed twice among the live nodes");
        }
        live.push_back(n);
    } while (r.take(','));
    r.expect(']', "to close the live-node list");
    return live;
}

void expect_end(Row& r, const char* after) {
    if (r.peek() != '\0') r.fail(std::string("unexpected ") + r.quote() + " after " + after);
}

// The header's words, lower case and single-spaced, whatever the tabs.
std::string normalized(std::string_view line) {
    std::string out;
    bool space = false;
    for (char c : line) {
        const bool blank = c == ' ' || c == '\t' || c == '\r';
        if (blank) {
            space = !out.empty();
            continue;
        }
        if (space) out += ' ';
        space = false;
        out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

bool blank(std::string_view line) {
    return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

// A row that starts a set: its number, maybe a command, its live list.
TestSet first_row(Row& r, const std::vector<TestSet>& sets) {
    TestSet set;
    set.line = r.line();
    set.number = r.number("a set number", 1, kInt64Max);
    for (const TestSet& s : sets) {
        if (s.number == set.number) {
            r.fail("set " + std::to_string(set.number) + " is given twice (first on line " + std::to_string(s.line) +
                   ")");
        }
    }
    if (starts_command(r.peek())) set.steps.push_back({command(r), r.line()});
    if (r.peek() != '[') {
        r.fail("set " + std::to_string(set.number) + " needs its live-node list [n1, n2, ...] on its first row, got " +
               r.quote());
    }
    set.live = live_list(r);
    expect_end(r, "the live-node list");
    return set;
}

void continuation_row(Row& r, std::vector<TestSet>& sets) {
    if (r.peek() == '[') r.fail("a live-node list belongs on a set's first row, after the set number");
    if (!starts_command(r.peek())) r.fail("expected a command, " + kCommands + ", or a set number, got " + r.quote());
    if (sets.empty()) r.fail("a command before the first set: the first row of a set starts with its number");
    sets.back().steps.push_back({command(r), r.line()});
    if (r.peek() == '[') r.fail("a live-node list belongs on a set's first row only");
    expect_end(r, "the command");
}

}  // namespace

ParseError::ParseError(const std::string& file, std::size_t line, const std::string& what)
    : std::runtime_error(file + " line " + std::to_string(line) + ": " + what), line_(line) {}

std::vector<TestSet> parse(std::string_view text, const std::string& file) {
    if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // a byte-order mark
    std::vector<TestSet> sets;
    bool header = false;
    std::size_t line_no = 0;
    while (!text.empty()) {
        const std::size_t nl = text.find('\n');
        const std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        ++line_no;
        if (blank(line)) continue;
        if (!header) {
            if (normalized(line) != kHeader) {
                throw ParseError(file, line_no, "expected the header \"Set Number<TAB>Transactions<TAB>Live Nodes\"");
            }
            header = true;
            continue;
        }
        Row r(line, file, line_no);
        if (std::isdigit(static_cast<unsigned char>(r.peek()))) {
            sets.push_back(first_row(r, sets));
        } else {
            continuation_row(r, sets);
        }
    }
    if (sets.empty()) throw ParseError(file, std::max<std::size_t>(line_no, 1), "no test sets in the file");
    return sets;
}

std::string to_text(const Command& c) {
    const auto n = [](auto v) { return std::to_string(v.value); };
    return std::visit(Overload{
                          [&](const Transfer& t) {
                              return "(" + n(t.from) + ", " + n(t.to) + ", " + std::to_string(t.amount) + ")";
                          },
                          [&](const Balance& b) { return "(" + n(b.item) + ")"; },
                          [&](const Fail& f) { return "F(n" + n(f.node) + ")"; },
                          [&](const Recover& r) { return "R(n" + n(r.node) + ")"; },
                      },
                      c);
}

}  // namespace rl::tools::testfile
