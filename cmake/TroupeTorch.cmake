# Finds LibTorch from the PyPI torch wheel and decides whether CUDA parts are built.
find_package(Python3 COMPONENTS Interpreter REQUIRED)
if(NOT Torch_DIR)
  execute_process(
    COMMAND ${Python3_EXECUTABLE} -c "import torch; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE TROUPE_TORCH_PREFIX OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE TROUPE_TORCH_RC)
  if(NOT TROUPE_TORCH_RC EQUAL 0)
    message(FATAL_ERROR "troupe: cannot import torch with ${Python3_EXECUTABLE}; run scripts/setup")
  endif()
  list(APPEND CMAKE_PREFIX_PATH ${TROUPE_TORCH_PREFIX})
endif()

execute_process(
  COMMAND ${Python3_EXECUTABLE} -c "import torch; print(torch.version.cuda or '')"
  OUTPUT_VARIABLE TROUPE_TORCH_CUDA_VERSION OUTPUT_STRIP_TRAILING_WHITESPACE)

set(TROUPE_WITH_CUDA OFF)
if(TROUPE_CUDA STREQUAL "ON" OR TROUPE_CUDA STREQUAL "AUTO")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER AND TROUPE_TORCH_CUDA_VERSION)
    set(TROUPE_WITH_CUDA ON)
  elseif(TROUPE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "troupe: TROUPE_CUDA=ON but nvcc or a CUDA-enabled torch is missing")
  endif()
endif()

if(TROUPE_WITH_CUDA)
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  # torch's config looks for these; the wheel brings its own cuDNN etc.
  set(CAFFE2_USE_CUDNN OFF CACHE BOOL "")
  find_package(Torch REQUIRED)
  # Torch's config appends a -gencode per architecture it knows (eleven with CUDA 13,
  # sm_50 to sm_120a) to CMAKE_CUDA_FLAGS, so every .cu would be compiled eleven times.
  # Each target names its own (CUDA_ARCHITECTURES, kernels/CMakeLists.txt): drop torch's.
  string(REGEX REPLACE "-gencode +arch=[^ ]+" "" CMAKE_CUDA_FLAGS "${CMAKE_CUDA_FLAGS}")
else()
  # Torch's config probes CUDA when the wheel has it; without nvcc we link the CPU
  # libraries only, which is all a CPU build needs.
  find_package(Torch QUIET)
  if(NOT Torch_FOUND)
    message(FATAL_ERROR "troupe: LibTorch not found under ${TROUPE_TORCH_PREFIX}")
  endif()
endif()
message(STATUS "troupe: torch ${Torch_VERSION}, CUDA parts: ${TROUPE_WITH_CUDA}")

# All LibTorch users reuse one precompiled header (torch headers are heavy).
add_library(troupe_torch INTERFACE)
# libtorch.so from the wheel exports its own std::filesystem symbols (and they crash
# when called from our code): load the system libstdc++ first so its definitions win.
target_link_libraries(troupe_torch INTERFACE "-Wl,--push-state,--no-as-needed" stdc++ "-Wl,--pop-state"
  ${TORCH_LIBRARIES})
target_include_directories(troupe_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
if(TROUPE_WITH_CUDA)
  target_compile_definitions(troupe_torch INTERFACE TROUPE_WITH_CUDA=1)
endif()
