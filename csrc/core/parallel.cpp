#include "core/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace ifrt {

namespace {

std::atomic<int> g_threads{0};

// One parallel_for call: chunks are claimed from an atomic counter by the caller and by any worker
// that wakes up in time, so a worker the OS schedules late (a busy machine) delays nothing.
struct Job {
  const std::function<void(int64_t, int64_t)>* body = nullptr;
  int64_t count = 0, chunk = 1, chunks = 0;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex mutex;
  std::condition_variable finished;
  std::exception_ptr error;

  // Runs chunks until none are left.
  void work() {
    for (int64_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1)) {
      const int64_t begin = c * chunk;
      try {
        (*body)(begin, std::min(count, begin + chunk));
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
      }
      if (done.fetch_add(1) + 1 == chunks) {
        std::lock_guard<std::mutex> lock(mutex);
        finished.notify_all();
      }
    }
  }
};

// parallel_for called from inside a job (or from a worker) runs inline: no nested parallelism.
thread_local bool t_inside_job = false;

// Persistent workers that help with the current job; started on first use, stopped at exit.
class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }

  void run(const std::shared_ptr<Job>& job, int helpers) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (static_cast<int>(workers_.size()) < helpers) workers_.emplace_back([this] { loop(); });
      job_ = job;
      ++generation_;
    }
    wake_.notify_all();
    job->work();
    {
      std::unique_lock<std::mutex> lock(job->mutex);
      job->finished.wait(lock, [&] { return job->done.load() == job->chunks; });
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (job_ == job) job_.reset();
  }

 private:
  void loop() {
    t_inside_job = true;
    uint64_t seen = 0;
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        job = job_;
      }
      if (job) job->work();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::thread> workers_;
  std::shared_ptr<Job> job_;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

int num_threads() {
  const int n = g_threads.load();
  if (n > 0) return n;
  return std::max(1u, std::thread::hardware_concurrency());
}

void set_num_threads(int n) { g_threads.store(std::max(0, n)); }

void parallel_for(int64_t count, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
  if (count <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t threads = std::min<int64_t>(num_threads(), (count + grain - 1) / grain);
  if (threads <= 1 || t_inside_job) {
    body(0, count);
    return;
  }
  // A few chunks per thread balance uneven progress; chunk boundaries depend only on the thread
  // count, so results that are merged in chunk order stay deterministic.
  auto job = std::make_shared<Job>();
  job->body = &body;
  job->count = count;
  job->chunk = std::max(grain, (count + threads * 4 - 1) / (threads * 4));
  job->chunks = (count + job->chunk - 1) / job->chunk;
  t_inside_job = true;
  try {
    pool().run(job, static_cast<int>(threads - 1));
  } catch (...) {
    t_inside_job = false;
    throw;
  }
  t_inside_job = false;
  if (job->error) std::rethrow_exception(job->error);
}

}  // namespace ifrt
