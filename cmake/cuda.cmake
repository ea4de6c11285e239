# The CUDA backend switch. FLASHTTS_CUDA:
#   AUTO (default) builds gpu/cuda/ when nvcc and the CUDA toolkit are found,
#   ON   requires them (configure fails naming what is missing),
#   OFF  never builds it: the CPU-only engine, exactly as before.
# Sets FLASHTTS_WITH_CUDA (ON/OFF) for the rest of the build.
#
# Architectures: SASS for Ampere (sm_80, which also runs on sm_86 and Orin's
# sm_87), Ada (sm_89, RTX 4090) and Hopper (sm_90), plus compute_90 PTX that
# newer GPUs compile at load. Each target costs one nvcc pass; override with
# -DCMAKE_CUDA_ARCHITECTURES=... (e.g. "native" on a GPU machine).
set(FLASHTTS_CUDA AUTO CACHE STRING "Build the CUDA backend: AUTO, ON or OFF")
set_property(CACHE FLASHTTS_CUDA PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${FLASHTTS_CUDA}" _flashtts_cuda_mode)
if(NOT _flashtts_cuda_mode MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "FLASHTTS_CUDA must be AUTO, ON or OFF (got '${FLASHTTS_CUDA}')")
endif()

set(FLASHTTS_WITH_CUDA OFF)
if(NOT _flashtts_cuda_mode STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    find_package(CUDAToolkit QUIET)
  endif()
  if(CMAKE_CUDA_COMPILER AND CUDAToolkit_FOUND AND TARGET CUDA::cublas)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES "80-real;89-real;90")
    endif()
    enable_language(CUDA)
    # CMake 3.25 does not know nvcc's C++20 flag (nvcc 12+ has it); teach it,
    # so CUDA sources get the C++ standard of the rest of the project.
    if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
      set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
    endif()
    set(CMAKE_CUDA_STANDARD 20)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    set(FLASHTTS_WITH_CUDA ON)
    message(STATUS "flashtts: CUDA backend ON (CUDA ${CUDAToolkit_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES})")
  elseif(_flashtts_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR "FLASHTTS_CUDA=ON but no usable CUDA toolkit was found (nvcc: '${CMAKE_CUDA_COMPILER}', "
                        "CUDAToolkit_FOUND: '${CUDAToolkit_FOUND}', cuBLAS needed too); set CUDACXX or use AUTO/OFF")
  else()
    message(STATUS "flashtts: CUDA backend OFF (no CUDA toolkit found; FLASHTTS_CUDA=AUTO)")
  endif()
else()
  message(STATUS "flashtts: CUDA backend OFF (FLASHTTS_CUDA=OFF)")
endif()
