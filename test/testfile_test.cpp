// The test-set file parser (tools/testfile.hpp): every form the format
// accepts, and every refusal with the line it names.
#define BOOST_TEST_MODULE testfile
#include "tools/testfile.hpp"

#include <boost/test/unit_test.hpp>

#include <string>
#include <tuple>
#include <utility>
#include <variant>

using namespace rl;
using namespace rl::tools::testfile;

namespace {

const std::string kHeader = "Set Number\tTransactions\tLive Nodes\n";

std::vector<TestSet> parse_text(const std::string& text) { return parse(text, "sets.tsv"); }

// The parse of `text` must fail on `line` with a message containing `part`.
void refused(const std::string& text, std::size_t line, const std::string& part) {
    try {
        parse_text(text);
        BOOST_FAIL("accepted: " << text);
    } catch (const ParseError& e) {
        BOOST_TEST(e.line() == line, "for: " << text);
        const std::string what = e.what();
        BOOST_TEST(what.starts_with("sets.tsv line " + std::to_string(line) + ": "), what);
        BOOST_TEST(what.find(part) != std::string::npos, "\"" << what << "\" lacks \"" << part << "\"");
    }
}

std::vector<std::uint64_t> ids(const std::vector<NodeId>& nodes) {
    std::vector<std::uint64_t> out;
    for (NodeId n : nodes) out.push_back(n.value);
    return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_course_format_parses_into_sets_with_their_commands_and_lines) {
    const auto sets = parse_text(kHeader +
                                 "1\t(21, 700, 2)\t[n1, n2, n4]\n"
                                 "\t(700)\n"
                                 "\tF(n2)\n"
                                 "\tR(n2)\n"
                                 "2\t(5, 3001, 1)\t[n1, n2, n3, n4, n5, n6]\n");
    BOOST_REQUIRE(sets.size() == 2u);
    BOOST_TEST(sets[0].number == 1u);
    BOOST_TEST(sets[0].line == 2u);
    BOOST_TEST(ids(sets[0].live) == (std::vector<std::uint64_t>{1, 2, 4}));
    BOOST_REQUIRE(sets[0].steps.size() == 4u);
    const auto& t = std::get<Transfer>(sets[0].steps[0].command);
    BOOST_TEST(t.from == ItemId{21});
    BOOST_TEST(t.to == ItemId{700});
    BOOST_TEST(t.amount == 2);
    BOOST_TEST(sets[0].steps[0].line == 2u);
    BOOST_TEST(std::get<Balance>(sets[0].steps[1].command).item == ItemId{700});
    BOOST_TEST(std::get<Fail>(sets[0].steps[2].command).node == NodeId{2});
    BOOST_TEST(std::get<Recover>(sets[0].steps[3].command).node == NodeId{2});
    BOOST_TEST(sets[0].steps[3].line == 5u);
    BOOST_TEST(sets[1].number == 2u);
    BOOST_TEST(sets[1].steps.size() == 1u);
    BOOST_TEST(ids(sets[1].live).size() == 6u);
}

BOOST_AUTO_TEST_CASE(irregular_whitespace_crlf_blank_lines_and_a_bom_are_tolerated) {
    const auto sets = parse_text("\xEF\xBB\xBF\n  Set  Number \t\t Transactions\tLive   Nodes \r\n"
                                 "\r\n"
                                 " 3 \t ( 1 ,2,  5 ) \t\t [ n1,n2 ,  n3 ]  \r\n"
                                 "\t\t  (  2 )\r\n"
                                 "   \t\n"
                                 "\t f( n3 )\t\n"
                                 "\tr(N3)\n"
                                 "4 (1, 2, 1) [n1]\n"
                                 "\xC2\xA0(2)\n");
    BOOST_REQUIRE(sets.size() == 2u);
    BOOST_TEST(sets[0].number == 3u);
    BOOST_TEST(sets[0].line == 4u);
    BOOST_REQUIRE(sets[0].steps.size() == 4u);
    BOOST_TEST(std::get<Transfer>(sets[0].steps[0].command).amount == 5);
    BOOST_TEST(std::get<Balance>(sets[0].steps[1].command).item == ItemId{2});
    BOOST_TEST(std::get<Fail>(sets[0].steps[2].command).node == NodeId{3});
    BOOST_TEST(sets[0].steps[2].line == 7u);
    BOOST_TEST(std::get<Recover>(sets[0].steps[3].command).node == NodeId{3});
    BOOST_TEST(ids(sets[1].live) == (std::vector<std::uint64_t>{1}));
    BOOST_TEST(sets[1].steps.size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_first_row_may_hold_only_the_number_and_the_live_list_and_the_list_may_be_empty) {
    const auto sets = parse_text(kHeader + "1\t\t[n1, n2]\n\t(1, 2, 3)\n2\t\t[]\n");
    BOOST_REQUIRE(sets.size() == 2u);
    BOOST_TEST(sets[0].steps.size() == 1u);
    BOOST_TEST(sets[1].steps.empty());
    BOOST_TEST(sets[1].live.empty());
}

BOOST_AUTO_TEST_CASE(to_text_writes_commands_as_the_format_does) {
    BOOST_TEST(to_text(Transfer{ItemId{21}, ItemId{700}, 2}) == "(21, 700, 2)");
    BOOST_TEST(to_text(Balance{ItemId{7}}) == "(7)");
    BOOST_TEST(to_text(Fail{NodeId{3}}) == "F(n3)");
    BOOST_TEST(to_text(Recover{NodeId{4}}) == "R(n4)");
}

BOOST_AUTO_TEST_CASE(a_missing_or_wrong_header_is_refused_on_its_line) {
    refused("1\t(1, 2, 3)\t[n1]\n", 1, "expected the header");
    refused("\nSet\tTransactions\tLive Nodes\n1\t(1, 2, 3)\t[n1]\n", 2, "expected the header");
    refused("", 1, "no test sets");
    refused(kHeader, 1, "no test sets");
    refused(kHeader + "\n\n", 3, "no test sets");
}

BOOST_AUTO_TEST_CASE(malformed_commands_are_refused_naming_the_line_and_what_is_wrong) {
    const std::vector<std::pair<std::string, std::string>> rows = {
        {"(1, 2)", "expected ','"},
        {"(1, 2, 3, 4)", "expected ')'"},
        {"(1 2 3)", "expected ','"},
        {"(a, 2, 3)", "expected an item"},
        {"()", "expected an item"},
        {"(1, 2, 3", "expected ')' after the amount"},
        {"(0, 2, 3)", "an item must be a whole number from 1"},
        {"(1, 2, 0)", "the amount must be a whole number from 1"},
        {"(1, 2, -3)", "the amount must be a whole number from 1"},
        {"(1, 2, 99999999999999999999)", "the amount must be a whole number"},
        {"(1, 2, 1.5)", "expected ')' after the amount"},
        {"(4, 4, 1)", "from item 4 to itself"},
        {"F(3)", "expected a node as nX"},
        {"F(n)", "expected a node id after 'n'"},
        {"F(n0)", "a node id after 'n' must be a whole number from 1"},
        {"F n3", "expected '(' after F"},
        {"R(n3", "expected ')' after the node of R(nX)"},
        {"X(n3)", "expected a command"},
        {"transfer 1 2 3", "expected a command"},
        {"(1, 2, 3) (4, 5, 6)", "unexpected \"(4, 5, 6)\" after the command"},
        {"(1, 2, 3)\tjunk", "unexpected \"junk\" after the command"},
    };
    for (const auto& [row, part] : rows) refused(kHeader + "1\t(1, 2, 3)\t[n1]\n\t" + row + "\n", 3, part);
}

BOOST_AUTO_TEST_CASE(live_lists_and_set_numbers_are_refused_where_the_format_does_not_allow_them) {
    const std::vector<std::tuple<std::string, std::size_t, std::string>> cases = {
        {"1\t(1, 2, 3)\n", 2, "set 1 needs its live-node list"},
        {"1\t(1, 2, 3)\t[n1]\n\t(2)\t[n1]\n", 3, "on a set's first row only"},
        {"1\t(1, 2, 3)\t[n1]\n\t[n1, n2]\n", 3, "belongs on a set's first row, after the set number"},
        {"1\t(1, 2, 3)\t[n1, n1]\n", 2, "node n1 is listed twice"},
        {"1\t(1, 2, 3)\t[n1, n2\n", 2, "to close the live-node list"},
        {"1\t(1, 2, 3)\t[n1,]\n", 2, "expected a node as nX"},
        {"1\t(1, 2, 3)\t[1, 2]\n", 2, "expected a node as nX"},
        {"1\t(1, 2, 3)\t[n1] (2)\n", 2, "after the live-node list"},
        {"\t(1, 2, 3)\n", 2, "a command before the first set"},
        {"1\t(1, 2, 3)\t[n1]\n1\t(2)\t[n1]\n", 3, "set 1 is given twice (first on line 2)"},
        {"0\t(1, 2, 3)\t[n1]\n", 2, "a set number must be a whole number from 1"},
        {"x\t(1, 2, 3)\t[n1]\n", 2, "expected a command"},
        {"1.5\t(1, 2, 3)\t[n1]\n", 2, "set 1 needs its live-node list"},
    };
    for (const auto& [rows, line, part] : cases) refused(kHeader + rows, line, part);
}
