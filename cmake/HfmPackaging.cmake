# Install rules and CPack packaging (included OPTIONAL by the top-level CMakeLists.txt).
#
#   cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release \
#         -DHFM_BUILD_TESTS=OFF -DHFM_BUILD_BENCH=OFF
#   cmake --build build-release
#   (cd build-release && cpack -G DEB)        # -> hf-mount_<version>_<arch>.deb
#
# Installs hf-mount, hf-mount-fuse, hf-mount-nfs (when built) and hf-local-hub into bin/, the
# systemd user unit template into lib/systemd/user/, and the examples (environment file,
# launchd plist) into share/doc/hf-mount/examples/. The .deb's shared-library dependencies
# come from dpkg-shlibdeps (CPACK_DEBIAN_PACKAGE_SHLIBDEPS); programs the binaries run
# (fusermount3) are listed explicitly.
include(GNUInstallDirs)

set(_hfm_installed_bins "")
foreach(_bin hf-mount hf-mount-fuse hf-mount-nfs hf-local-hub)
  if(TARGET ${_bin})
    install(TARGETS ${_bin} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT hf-mount)
    list(APPEND _hfm_installed_bins ${_bin})
  endif()
endforeach()
message(STATUS "hf-mount packaging: installs ${_hfm_installed_bins}")

set(_hfm_pkg_dir ${CMAKE_CURRENT_LIST_DIR}/../packaging)
if(EXISTS ${_hfm_pkg_dir}/systemd/hf-mount@.service)
  install(FILES ${_hfm_pkg_dir}/systemd/hf-mount@.service
          DESTINATION lib/systemd/user COMPONENT hf-mount)
endif()
foreach(_example systemd/hf-mount.env.example launchd/co.huggingface.hf-mount.plist.example)
  if(EXISTS ${_hfm_pkg_dir}/${_example})
    install(FILES ${_hfm_pkg_dir}/${_example}
            DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples COMPONENT hf-mount)
  endif()
endforeach()
foreach(_doc README.md LICENSE)
  if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/../${_doc})
    install(FILES ${CMAKE_CURRENT_LIST_DIR}/../${_doc} DESTINATION ${CMAKE_INSTALL_DOCDIR}
            COMPONENT hf-mount)
  endif()
endforeach()

set(CPACK_PACKAGE_NAME hf-mount)
set(CPACK_PACKAGE_VENDOR "hf-mount")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Mount Hugging Face Storage Buckets and Hub repos as local folders (FUSE/NFS)")
set(CPACK_PACKAGE_CONTACT "hf-mount maintainers <hf-mount@localhost>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)
set(CPACK_SOURCE_GENERATOR TGZ)
set(CPACK_SOURCE_IGNORE_FILES "/\\\\.git/" "/build[^/]*/" "/node_modules/")

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "hf-mount serves a bucket (read-write) or a model, dataset or space repo (read-only)\n\
as a local directory through FUSE (hf-mount-fuse) or a local NFS server\n\
(hf-mount-nfs), fetching file contents lazily through the Xet CAS. `hf-mount start`\n\
runs a mount in the background; hf-local-hub is a local Hub for tests.")
# Libraries come from dpkg-shlibdeps; on Debian 12 that gives fuse3 (ours), libc6, libcurl4,
# libfmt9, libfuse3-3, libgcc-s1, liblz4-1, libmicrohttpd12, libnfs13, libspdlog1.10-fmt9,
# libsqlite3-0, libssl3, libstdc++6, libxxhash0.
find_program(HFM_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(HFM_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "fuse3")
else()
  # Debian 12 (bookworm) names, for hosts without dpkg-dev.
  set(CPACK_DEBIAN_PACKAGE_DEPENDS
      "fuse3, libfuse3-3, libnfs13, libcurl4, libsqlite3-0, libmicrohttpd12, liblz4-1, \
libspdlog1.10-fmt9, libfmt9, libxxhash0, libssl3, libstdc++6, libgcc-s1, libc6")
endif()
# mount.nfs is only needed by the default (NFS) backend of `hf-mount start`.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "nfs-common")

include(CPack)
