/* ifrt C ABI: TensorRT engines (part of libifrt; included by ifrt/ifrt.h).
 *
 * An ifrt_engine runs a TensorRT engine built for the model I/O contract (input "image", outputs
 * "diagnosis_logits", "blur_logits", "quality", "quality_map", "deblurred"), or any other engine.
 *  - ifrt_engine_create_from_engine loads model.engine after checking model.engine.json against
 *    this GPU and TensorRT; a mismatch fails with IFRT_ERR_TENSORRT and every reason in
 *    ifrt_last_error().
 *  - ifrt_engine_create_from_onnx builds the engine on first use and caches it in a folder, keyed
 *    by the ONNX sha256, the build options, the TensorRT version and the GPU UUID.
 *  - Thread safety: ifrt_engine_infer may be called on one engine from several threads at once; up
 *    to the engine's pool of execution contexts run in parallel, the rest wait. Create and release
 *    must not overlap other calls on the same engine.
 *  - Without TensorRT in the build, every ifrt_engine_* call returns IFRT_ERR_UNSUPPORTED and
 *    ifrt_last_error() says what to install (ifrt_has_tensorrt() tells beforehand).
 */
#ifndef IFRT_ENGINE_H
#define IFRT_ENGINE_H

#include "ifrt/ifrt.h"
#include "ifrt/image.h"
#include "ifrt/preprocess.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ifrt_engine ifrt_engine;

typedef enum ifrt_engine_dtype {
  IFRT_ENGINE_FLOAT32 = 0,
  IFRT_ENGINE_FLOAT16 = 1,
  IFRT_ENGINE_BFLOAT16 = 2,
  IFRT_ENGINE_INT8 = 3,
  IFRT_ENGINE_UINT8 = 4,
  IFRT_ENGINE_INT32 = 5,
  IFRT_ENGINE_INT64 = 6,
  IFRT_ENGINE_BOOL = 7
} ifrt_engine_dtype;

typedef enum ifrt_engine_memory {
  IFRT_ENGINE_HOST = 0,  /* ordinary or pinned host memory */
  IFRT_ENGINE_DEVICE = 1 /* CUDA device memory on the engine's device */
} ifrt_engine_memory;

#define IFRT_ENGINE_MAX_DIMS 8

/* A dense row-major tensor owned by the caller. Inputs: name, dtype, ndim, shape, data, memory.
 * Outputs: name, dtype, data, capacity_bytes, memory; infer writes ndim and shape. */
typedef struct ifrt_engine_tensor {
  const char* name;
  ifrt_engine_dtype dtype;
  int32_t ndim;
  int64_t shape[IFRT_ENGINE_MAX_DIMS];
  void* data;
  size_t capacity_bytes;
  ifrt_engine_memory memory; /* device data must be 256-byte aligned, as TensorRT requires (cudaMalloc's are) */
} ifrt_engine_tensor;

typedef struct ifrt_engine_options {
  int32_t device;               /* CUDA device index (0) */
  int32_t contexts;             /* execution contexts for a static-shape engine (2) */
  int32_t allow_same_model_gpu; /* 1: accept an engine built on another GPU of the same model (0) */
  /* Used when building from ONNX: */
  const char* precision;         /* "fp32", "fp16" or "int8" (NULL: "fp16") */
  const char* profiles;          /* "image:1x1x256x256/1x1x512x512/4x1x1024x1024", profiles joined by ';' (NULL: none) */
  int32_t concurrency;           /* copies of each profile, i.e. threads per shape range (1) */
  int64_t workspace_bytes;       /* builder workspace limit, 0: TensorRT's default */
  const char* timing_cache_path; /* NULL: no timing cache */
  int32_t dla_core;              /* Jetson DLA core, -1: GPU only */
} ifrt_engine_options;

/* Fills `options` with the defaults above. */
IFRT_API void ifrt_engine_options_init(ifrt_engine_options* options);

/* options may be NULL (defaults). On failure *engine is set to NULL. */
IFRT_API ifrt_status ifrt_engine_create_from_engine(const char* engine_path, const ifrt_engine_options* options,
                                                    ifrt_engine** engine);
IFRT_API ifrt_status ifrt_engine_create_from_onnx(const char* onnx_path, const char* cache_dir,
                                                  const ifrt_engine_options* options, ifrt_engine** engine);

/* I/O tensors: `info` receives name (valid while the engine lives), dtype, ndim and shape (-1 for a
 * dynamic dim); *is_input is 1 for inputs. */
IFRT_API ifrt_status ifrt_engine_tensor_count(const ifrt_engine* engine, int32_t* count);
IFRT_API ifrt_status ifrt_engine_tensor_info(const ifrt_engine* engine, int32_t index, ifrt_engine_tensor* info,
                                             int32_t* is_input);

/* Runs the engine and returns when the outputs are written. Every input must be given; outputs not
 * listed are computed and dropped. */
IFRT_API ifrt_status ifrt_engine_infer(ifrt_engine* engine, const ifrt_engine_tensor* inputs, size_t num_inputs,
                                       ifrt_engine_tensor* outputs, size_t num_outputs);

/* NULL is allowed. */
IFRT_API void ifrt_engine_release(ifrt_engine* engine);

/* A frame pipeline: preprocess -> engine -> postprocess for frames of one geometry, recorded once into
 * a CUDA graph and replayed per frame with one launch and no synchronization (the normalization range
 * stays on the device from preprocessing to denormalization). For engines of the model I/O contract.
 *  - create: `frame` gives the geometry (dtype, size, channels, strides; its data is ignored);
 *    `options` the preprocessing (NULL: defaults; tiling off; dark/flat in device memory);
 *    `temperature` the diagnosis softmax temperature (the model's calibration, 1 if none); `deblur` 1
 *    to also write the deblurred frame in the frame's dtype. It runs the chain once, then records it
 *    on `cuda_stream`, which must be a created cudaStream_t. The pipeline holds one of the engine's
 *    execution contexts until it is released: an ifrt_engine_infer or a second pipeline that only
 *    held contexts could serve fails with IFRT_ERR_INVALID_ARGUMENT rather than waiting (give the
 *    engine pipelines + 1 contexts: `concurrency` for dynamic shapes, `contexts` for static ones).
 *    Release every pipeline before its engine.
 *  - per frame: write the pixels into buffers.frame (device memory, buffers.frame_bytes, rows as the
 *    geometry's strides say) on a stream, call ifrt_pipeline_launch on that stream, and read the
 *    outputs (device memory) once the stream has passed it.
 *  - one pipeline per stream and thread; release must not overlap a launch still in flight (it waits
 *    for the last one). */
typedef struct ifrt_pipeline ifrt_pipeline;

typedef struct ifrt_pipeline_buffers {
  void* frame;                      /* device: the frame to analyse */
  size_t frame_bytes;
  const float* probabilities;       /* [classes] diagnosis probabilities */
  int64_t classes;
  const float* blur_probabilities;  /* [blur_levels] */
  int64_t blur_levels;
  const float* quality;             /* [1], 1 = in focus */
  const float* quality_map;         /* [input_height x input_width] per-tile map upsampled over the padded frame */
  int64_t map_height, map_width;    /* the engine's map (one cell per 32 x 32 pixels) */
  int64_t input_height, input_width;  /* the padded frame the engine sees */
  int64_t height, width;            /* the frame after resizing: the top-left of input_height x input_width */
  const void* deblurred;            /* [height x width] in the frame's dtype; NULL without deblur */
} ifrt_pipeline_buffers;

IFRT_API ifrt_status ifrt_pipeline_create(ifrt_engine* engine, const ifrt_image* frame,
                                          const ifrt_preprocess_options* options, float temperature, int32_t deblur,
                                          void* cuda_stream, ifrt_pipeline** pipeline);
IFRT_API ifrt_status ifrt_pipeline_buffers_get(const ifrt_pipeline* pipeline, ifrt_pipeline_buffers* buffers);
IFRT_API ifrt_status ifrt_pipeline_launch(ifrt_pipeline* pipeline, void* cuda_stream);
/* NULL is allowed. */
IFRT_API void ifrt_pipeline_release(ifrt_pipeline* pipeline);

/* The ifrt log (TensorRT's messages included): level 0 debug, 1 info, 2 warning (default), 3 error.
 * A NULL callback restores printing to stderr. The callback may be called from any thread, one
 * call at a time. */
typedef void (*ifrt_log_callback)(int32_t level, const char* message, void* user);
IFRT_API void ifrt_set_log_level(int32_t level);
IFRT_API void ifrt_set_log_callback(ifrt_log_callback callback, void* user);

#ifdef __cplusplus
}
#endif

#endif /* IFRT_ENGINE_H */
