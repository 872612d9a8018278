// Always-on assertions for programmer errors (docs/design.md section 9, habit 6). Bad input
// from the network is never checked with these: it is counted and dropped.
#pragma once

#include <source_location>

namespace rl {

// Prints `what` with the caller's location to stderr and aborts when `ok` is
// false. Kept in release builds on purpose: a broken invariant in an
// election core means split brain, which is worse than a crash.
void require(bool ok, const char* what, std::source_location where = std::source_location::current());

}  // namespace rl
