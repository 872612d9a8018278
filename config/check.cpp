#include "config/check.hpp"

#include <cstdio>
#include <cstdlib>

namespace rl {

void require(bool ok, const char* what, std::source_location where) {
    if (ok) return;
    std::fprintf(stderr, "%s:%u: %s: invariant violated: %s\n", where.file_name(),
                 static_cast<unsigned>(where.line()), where.function_name(), what);
    std::abort();
}

}  // namespace rl
