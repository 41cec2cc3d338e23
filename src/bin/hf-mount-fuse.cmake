# hf-mount-fuse: the FUSE backend (foreground). Built into <build>/src/bin/hf-mount-fuse.
add_executable(hf-mount-fuse ${CMAKE_CURRENT_SOURCE_DIR}/hf-mount-fuse.cpp)
target_link_libraries(hf-mount-fuse PRIVATE hfm_warnings hfm_mount hfm_fuse hfm_app)
target_compile_definitions(hf-mount-fuse PRIVATE HFM_VERSION="${PROJECT_VERSION}")
