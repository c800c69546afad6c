// A small parallel-for over index ranges (image rows) for the CPU kernels.
//
// Persistent worker threads help the calling thread, which claims chunks itself too, so a worker
// that the OS schedules late (a busy machine) never holds a call up. Chunks hold at least `grain`
// items (less work runs inline); their boundaries depend only on the count, the grain and the
// thread count. Calls from inside a body run inline. Exceptions thrown by the body are rethrown on
// the calling thread.
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
