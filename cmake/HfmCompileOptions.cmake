# Warning flags shared by every target of the project (applied through hfm_target_defaults).
add_library(hfm_warnings INTERFACE)
target_compile_options(hfm_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
    -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wconversion -Wsign-conversion
    -Wnull-dereference -Wimplicit-fallthrough>)
if(HFM_WERROR)
  target_compile_options(hfm_warnings INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
endif()

# hfm_add_layer(NAME SOURCES... [DEPS ...] [PUBLIC_DEPS ...])
# Creates the static library hfm_<NAME> with include/ as its public include root. Layer
# dependencies are PRIVATE unless a public header needs them, so the build enforces direction.
function(hfm_add_layer name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PUBLIC_DEPS" ${ARGN})
  add_library(hfm_${name} STATIC ${ARG_SOURCES})
  target_include_directories(hfm_${name} PUBLIC ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(hfm_${name} PRIVATE hfm_warnings ${ARG_DEPS} PUBLIC ${ARG_PUBLIC_DEPS})
  set_target_properties(hfm_${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()

# hfm_add_test(NAME SOURCES... DEPS ... [LABELS ...])
function(hfm_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE hfm_warnings ${ARG_DEPS} GTest::gtest GTest::gmock
                                        GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
    HFM_TESTDATA_DIR="${HFM_TESTDATA_DIR}" HFM_BINARY_DIR="${PROJECT_BINARY_DIR}")
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS "${ARG_LABELS}")
endfunction()
