// The one exception of the transaction simulator: a violated invariant (or
// an input the real shell would abort on), with the simulated time.
#pragma once

#include <stdexcept>

namespace rl::txn::sim {

class SimFailure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

}  // namespace rl::txn::sim
