# hf-mount: the user-facing command (subcommands live in the cli layer). Built into
# <build>/src/bin/hf-mount, where the conformance tests look for it.
add_executable(hf-mount ${CMAKE_CURRENT_SOURCE_DIR}/hf-mount.cpp)
target_link_libraries(hf-mount PRIVATE hfm_warnings hfm_cli hfm_app CLI11::CLI11)
target_compile_definitions(hf-mount PRIVATE HFM_VERSION="${PROJECT_VERSION}")
