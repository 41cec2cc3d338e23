# hf-mount-nfs: the NFS backend (nfs layer + the shared MountContext), a thin main.
if(TARGET hfm_nfs AND TARGET hfm_mount AND TARGET hfm_app)
  add_executable(hf-mount-nfs ${CMAKE_CURRENT_SOURCE_DIR}/hf-mount-nfs.cpp)
  target_link_libraries(hf-mount-nfs PRIVATE hfm_warnings hfm_nfs hfm_mount hfm_app hfm_util
                                             CLI11::CLI11)
  # CLI11's header-only code trips GCC 12's -Wnull-dereference in CLI::detail::split.
  target_compile_options(hf-mount-nfs PRIVATE -Wno-null-dereference)
endif()
if(TARGET hf-mount-nfs)
  target_compile_definitions(hf-mount-nfs PRIVATE HFM_VERSION="${PROJECT_VERSION}")
endif()
