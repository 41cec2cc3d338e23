# hf-local-hub: the Hub + Xet CAS server (library hfm_localhub; this is its thin main).
if(TARGET hfm_localhub)
  add_executable(hf-local-hub ${CMAKE_CURRENT_SOURCE_DIR}/hf-local-hub.cpp)
  target_link_libraries(hf-local-hub PRIVATE hfm_warnings hfm_localhub hfm_util CLI11::CLI11)
endif()
if(TARGET hf-local-hub)
  # CLI11's header-only code trips GCC 12's -Wnull-dereference in CLI::detail::split.
  # (as a source property so it comes after hfm_warnings' flags on the command line)
  set_source_files_properties(${CMAKE_CURRENT_SOURCE_DIR}/hf-local-hub.cpp PROPERTIES
    COMPILE_OPTIONS -Wno-null-dereference)
endif()
