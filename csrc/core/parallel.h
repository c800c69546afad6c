// A small parallel-for over index ranges (image rows) for the CPU kernels.
//
// Work below `grain` items per thread runs inline: thread start-up (~20 us) would cost more than it
// saves on small images. Exceptions thrown by the body are rethrown on the calling thread.
#pragma once

#include <cstdint>
#include <functional>

namespace ifrt {

// Number of worker threads the CPU kernels use (default: hardware concurrency, at least 1).
int num_threads();
// 0 restores the default.
void set_num_threads(int n);

// Calls body(begin, end) on disjoint chunks covering [0, count).
void parallel_for(int64_t count, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

}  // namespace ifrt
