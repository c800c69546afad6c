# Finds TensorRT (nvinfer + nvonnxparser): TENSORRT_ROOT, the usual prefixes, and the JetPack
# layout where headers live in /usr/include/aarch64-linux-gnu and libraries in /usr/lib/aarch64-linux-gnu.
# Defines TensorRT_FOUND, TensorRT_VERSION, TensorRT_INCLUDE_DIR and the imported target TensorRT::TensorRT.
set(_trt_hints ${TENSORRT_ROOT} $ENV{TENSORRT_ROOT} /usr/local/tensorrt /opt/tensorrt /usr)
find_path(TensorRT_INCLUDE_DIR NvInfer.h
  HINTS ${_trt_hints}
  PATH_SUFFIXES include include/${CMAKE_LIBRARY_ARCHITECTURE} include/aarch64-linux-gnu include/x86_64-linux-gnu)

# The version first: the library names depend on it. 11 defines NV_TENSORRT_MAJOR as TRT_MAJOR_ENTERPRISE,
# which holds the number.
unset(_trt_MAJOR)
if(TensorRT_INCLUDE_DIR AND EXISTS "${TensorRT_INCLUDE_DIR}/NvInferVersion.h")
  file(STRINGS "${TensorRT_INCLUDE_DIR}/NvInferVersion.h" _trt_lines REGEX "#define (NV_TENSORRT_MAJOR|NV_TENSORRT_MINOR|NV_TENSORRT_PATCH|TRT_MAJOR_ENTERPRISE|TRT_MINOR_ENTERPRISE|TRT_PATCH_ENTERPRISE) ")
  foreach(_part MAJOR MINOR PATCH)
    string(REGEX MATCH "#define (NV_TENSORRT_${_part}|TRT_${_part}_ENTERPRISE) +([0-9]+)" _m "${_trt_lines}")
    set(_trt_${_part} "${CMAKE_MATCH_2}")
  endforeach()
  set(TensorRT_VERSION "${_trt_MAJOR}.${_trt_MINOR}.${_trt_PATCH}")
endif()

# TensorRT 10 and later on Windows name the import libraries after the major version (nvinfer_10.lib,
# nvonnxparser_10.lib in the zip's lib/; the DLLs are in bin/ and found at run time through PATH).
# NAMES_PER_DIR: TENSORRT_ROOT's nvinfer_10 wins over a plain nvinfer of another TensorRT further down the hints.
set(_trt_infer_names nvinfer)
set(_trt_parser_names nvonnxparser)
if(_trt_MAJOR)
  list(APPEND _trt_infer_names nvinfer_${_trt_MAJOR})
  list(APPEND _trt_parser_names nvonnxparser_${_trt_MAJOR})
endif()
set(_trt_lib_suffixes lib lib64 lib/${CMAKE_LIBRARY_ARCHITECTURE} lib/aarch64-linux-gnu lib/x86_64-linux-gnu)
find_library(TensorRT_LIBRARY NAMES ${_trt_infer_names} NAMES_PER_DIR
  HINTS ${_trt_hints}
  PATH_SUFFIXES ${_trt_lib_suffixes})
find_library(TensorRT_ONNXPARSER_LIBRARY NAMES ${_trt_parser_names} NAMES_PER_DIR
  HINTS ${_trt_hints}
  PATH_SUFFIXES ${_trt_lib_suffixes})

# The executor is written for the TensorRT 10 API (DataType::kBF16 and kINT64, getInferLibMajorVersion):
# an older TensorRT, such as JetPack 5's 8.5, counts as not found, saying why, instead of failing the
# build in the compiler.
set(TensorRT_VERSION_SUPPORTED TRUE)
set(_trt_reason "")
if(TensorRT_VERSION AND TensorRT_VERSION VERSION_LESS 10)
  set(TensorRT_VERSION_SUPPORTED FALSE)
  string(CONCAT _trt_reason "TensorRT ${TensorRT_VERSION} (${TensorRT_INCLUDE_DIR}) is older than 10, which ifrt's "
                "executor needs (JetPack 6 ships 10.3): the onnxruntime backend runs without it")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(TensorRT
  REQUIRED_VARS TensorRT_INCLUDE_DIR TensorRT_LIBRARY TensorRT_ONNXPARSER_LIBRARY TensorRT_VERSION_SUPPORTED
  VERSION_VAR TensorRT_VERSION
  REASON_FAILURE_MESSAGE "${_trt_reason}")

if(TensorRT_FOUND AND NOT TARGET TensorRT::TensorRT)
  add_library(TensorRT::TensorRT INTERFACE IMPORTED)
  target_include_directories(TensorRT::TensorRT INTERFACE "${TensorRT_INCLUDE_DIR}")
  target_link_libraries(TensorRT::TensorRT INTERFACE "${TensorRT_LIBRARY}" "${TensorRT_ONNXPARSER_LIBRARY}")
endif()
mark_as_advanced(TensorRT_INCLUDE_DIR TensorRT_LIBRARY TensorRT_ONNXPARSER_LIBRARY)
