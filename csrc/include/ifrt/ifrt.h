/* ifrt C ABI: what vendor imaging software links against (libifrt).
 *
 * Conventions
 *  - Every function that can fail returns an ifrt_status; IFRT_OK is 0.
 *  - ifrt_last_error() returns the message of the calling thread's last call that returned an ifrt_status:
 *    what went wrong when it failed, "" when it succeeded (every such call clears it first). Read it
 *    right after the failing call; the pointer stays valid until the next ifrt call on the same thread.
 *  - IFRT_VERSION_NUMBER is the version of this header; ifrt_version_number() that of the library loaded
 *    at run time. The library's soname changes with the major version; within one major version a
 *    library runs programs built against the same or an older header.
 *  - No C++ exception ever crosses this boundary.
 */
#ifndef IFRT_IFRT_H
#define IFRT_IFRT_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#if defined(IFRT_BUILDING_LIBRARY)
#define IFRT_API __declspec(dllexport)
#else
#define IFRT_API __declspec(dllimport)
#endif
#else
#define IFRT_API __attribute__((visibility("default")))
#endif

/* The header's version (CMake checks it against the project version when it configures). */
#define IFRT_VERSION_MAJOR 0
#define IFRT_VERSION_MINOR 1
#define IFRT_VERSION_PATCH 0
#define IFRT_VERSION_NUMBER (IFRT_VERSION_MAJOR * 10000 + IFRT_VERSION_MINOR * 100 + IFRT_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ifrt_status {
  IFRT_OK = 0,
  IFRT_ERR_INVALID_ARGUMENT = 1, /* bad pointer, shape, dtype or option */
  IFRT_ERR_UNSUPPORTED = 2,      /* feature not built in (CUDA, TensorRT) or not supported */
  IFRT_ERR_IO = 3,               /* file missing, unreadable or corrupt */
  IFRT_ERR_CUDA = 4,             /* CUDA runtime error */
  IFRT_ERR_TENSORRT = 5,         /* TensorRT build/deserialize/execute error */
  IFRT_ERR_OUT_OF_MEMORY = 6,
  IFRT_ERR_INTERNAL = 7
} ifrt_status;

/* Library version, e.g. "0.1.0". Static storage. */
IFRT_API const char* ifrt_version(void);

/* The loaded library's version as MAJOR * 10000 + MINOR * 100 + PATCH, to compare with
 * IFRT_VERSION_NUMBER: a different major version (number / 10000) is not compatible. */
IFRT_API int ifrt_version_number(void);

/* Message of this thread's last call that returned an ifrt_status: "" when it succeeded or when there
 * was none. */
IFRT_API const char* ifrt_last_error(void);

/* 1 when built with CUDA kernels / the TensorRT executor, else 0. */
IFRT_API int ifrt_has_cuda(void);
IFRT_API int ifrt_has_tensorrt(void);

/* Number of visible CUDA devices (0 without CUDA or driver; never fails). */
IFRT_API int ifrt_cuda_device_count(void);

#ifdef __cplusplus
}
#endif

#include "ifrt/engine.h"
#include "ifrt/preprocess.h"
#include "ifrt/postprocess.h"
#include "ifrt/focus.h"

#endif /* IFRT_IFRT_H */
