// std::visit with one lambda per alternative: Overload{[](A&){}, [](B&){}}.
#pragma once

namespace rl {

template <class... F>
struct Overload : F... {
    using F::operator()...;
};
template <class... F>
Overload(F...) -> Overload<F...>;

}  // namespace rl
