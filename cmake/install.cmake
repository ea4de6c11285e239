# What `cmake --install build [--prefix P]` puts in place (docs/client.md):
#
#   bin/flashtts                          the server and CLI
#   share/flashtts/configs/default.toml   the default configuration; its model
#   share/flashtts/models/{policy,prm}    paths ("../models/...") are relative
#                                         to its folder, so they hold here too
#   lib/libflashtts_client.so*            the client library (cmake/client.cmake)
#   include/flashtts/flashtts.h           its C API
#   include/flashtts/{runtime,messages}/  its C++ API (runtime/client.h)
#   lib/cmake/flashtts/                   find_package(flashtts): flashtts::client
#   lib/pkgconfig/flashtts-client.pc      pkg-config --cflags --libs flashtts-client
#   share/doc/flashtts/examples/solve.c   the C example
#
# Every path is relative to the prefix, so the tree can be moved as a whole.
include(CMakePackageConfigHelpers)

# The binary finds its shared libraries where it was linked against them
# (the CUDA toolkit's, when it has the CUDA backend), installed as in the tree.
set_target_properties(flashtts PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
install(TARGETS flashtts RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${CMAKE_SOURCE_DIR}/configs/default.toml DESTINATION ${CMAKE_INSTALL_DATADIR}/flashtts/configs)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/models/ DESTINATION ${CMAKE_INSTALL_DATADIR}/flashtts/models)

install(TARGETS flashtts_client EXPORT flashtts-targets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${CMAKE_SOURCE_DIR}/include/flashtts/flashtts.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/flashtts)
# The C++ client's header and the two it includes.
install(FILES ${CMAKE_SOURCE_DIR}/runtime/client.h ${CMAKE_SOURCE_DIR}/runtime/status.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/flashtts/runtime)
install(FILES ${CMAKE_SOURCE_DIR}/messages/msgpack_io.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/flashtts/messages)
install(FILES ${CMAKE_SOURCE_DIR}/examples/c/solve.c DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

set(FLASHTTS_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/flashtts)
install(EXPORT flashtts-targets NAMESPACE flashtts:: DESTINATION ${FLASHTTS_CMAKE_DIR})
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/flashtts-config.cmake.in
  ${CMAKE_BINARY_DIR}/flashtts-config.cmake INSTALL_DESTINATION ${FLASHTTS_CMAKE_DIR})
# 0.x: a minor version may change the API.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/flashtts-config-version.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/flashtts-config.cmake ${CMAKE_BINARY_DIR}/flashtts-config-version.cmake
  DESTINATION ${FLASHTTS_CMAKE_DIR})

# pkg-config: the prefix is found from the .pc file's own folder.
file(RELATIVE_PATH FLASHTTS_PC_TO_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
string(REGEX REPLACE "/$" "" FLASHTTS_PC_TO_PREFIX "${FLASHTTS_PC_TO_PREFIX}")
configure_file(${CMAKE_SOURCE_DIR}/cmake/flashtts-client.pc.in ${CMAKE_BINARY_DIR}/flashtts-client.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/flashtts-client.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
