# BLAKE3 built from the C sources Debian ships in librust-blake3-dev, with the upstream
# runtime dispatch (SSE2/SSE4.1/AVX2/AVX-512 assembly on x86-64, NEON on aarch64).
file(GLOB _blake3_dirs LIST_DIRECTORIES true /usr/share/cargo/registry/blake3-*/c)
set(BLAKE3_C_DIR "" CACHE PATH "Directory holding blake3.c (from librust-blake3-dev)")
if(NOT BLAKE3_C_DIR)
  list(SORT _blake3_dirs COMPARE NATURAL ORDER DESCENDING)
  list(GET _blake3_dirs 0 _blake3_first)
  set(BLAKE3_C_DIR "${_blake3_first}")
endif()
if(NOT EXISTS "${BLAKE3_C_DIR}/blake3.c")
  message(FATAL_ERROR "BLAKE3 C sources not found; install librust-blake3-dev "
                      "(or set BLAKE3_C_DIR)")
endif()
message(STATUS "BLAKE3 C sources: ${BLAKE3_C_DIR}")

set(_b3 ${BLAKE3_C_DIR})
add_library(blake3 STATIC ${_b3}/blake3.c ${_b3}/blake3_dispatch.c ${_b3}/blake3_portable.c)
target_include_directories(blake3 SYSTEM PUBLIC ${_b3})
set_target_properties(blake3 PROPERTIES POSITION_INDEPENDENT_CODE ON C_STANDARD 99)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64")
  target_sources(blake3 PRIVATE
    ${_b3}/blake3_sse2_x86-64_unix.S ${_b3}/blake3_sse41_x86-64_unix.S
    ${_b3}/blake3_avx2_x86-64_unix.S ${_b3}/blake3_avx512_x86-64_unix.S)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  target_sources(blake3 PRIVATE ${_b3}/blake3_neon.c)
  target_compile_definitions(blake3 PRIVATE BLAKE3_USE_NEON=1)
else()
  target_compile_definitions(blake3 PRIVATE BLAKE3_NO_SSE2 BLAKE3_NO_SSE41 BLAKE3_NO_AVX2
                                            BLAKE3_NO_AVX512)
endif()
add_library(BLAKE3::blake3 ALIAS blake3)
