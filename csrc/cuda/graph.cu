// Preprocessing captured into a CUDA graph (cuda/kernels.h).
#include <cuda_runtime.h>

#include "cuda/check.h"
#include "cuda/kernels.h"

namespace ifrt::cuda {

PreprocessGraph::PreprocessGraph(const ImageView& image, const PreprocessOptions& options, void* out,
                                 size_t out_bytes, Workspace& ws, void* stream) {
  if (!stream) fail(ErrorCode::InvalidArgument, "PreprocessGraph: capture needs a created stream, not the default stream");
  const cudaStream_t st = as_stream(stream);
  ws.reserve(stream);  // allocations happen before the capture
  IFRT_CUDA_CHECK(cudaStreamSynchronize(st));
  IFRT_CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  try {
    preprocess(image, options, out, out_bytes, ws, stream);
  } catch (...) {
    cudaGraph_t g = nullptr;
    cudaStreamEndCapture(st, &g);
    if (g) cudaGraphDestroy(g);
    throw;
  }
  cudaGraph_t graph = nullptr;
  IFRT_CUDA_CHECK(cudaStreamEndCapture(st, &graph));
  graph_ = graph;
  cudaGraphExec_t exec = nullptr;
  try {
    IFRT_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  } catch (...) {
    cudaGraphDestroy(graph);  // a throwing constructor runs no destructor
    throw;
  }
  exec_ = exec;
}

PreprocessGraph::~PreprocessGraph() {
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  if (graph_) cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
}

void PreprocessGraph::launch(void* stream) {
  IFRT_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), as_stream(stream)));
}

}  // namespace ifrt::cuda
