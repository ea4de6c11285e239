# What `cmake --install build [--prefix P]` puts in place (docs/client.md):
#
#   bin/flashtts                          the server and CLI
#   lib/flashtts/libflashtts_engine.so    the engine it runs on, and beside it
#   lib/flashtts/libflashtts_cuda.so      the CUDA backend the engine loads when
#                                         a device context asks for CUDA (in
#                                         builds with CUDA; gpu/cuda_plugin.h)
#   share/flashtts/configs/default.toml   the default configuration; its model
#   share/flashtts/models/{policy,prm}    paths ("../models/...") are relative
#                                         to its folder, so they hold here too
#   lib/libflashtts_client.so*            the client library (cmake/client.cmake)
#   include/flashtts/flashtts.h           its C API
#   include/flashtts/{runtime,messages}/  its C++ API (runtime/client.h, runtime/base/status.h)
#   lib/cmake/flashtts/                   find_package(flashtts): flashtts::client
#   lib/pkgconfig/flashtts-client.pc      pkg-config --cflags --libs flashtts-client
#   share/doc/flashtts/examples/solve.c   the C example
#
# Every path is relative to the prefix, so the tree can be moved as a whole.
include(CMakePackageConfigHelpers)

# The engine is the binary's private library, in a folder of its own; the
# binary finds it relative to itself. The CUDA backend beside it finds the
# CUDA toolkit's libraries where it was linked against them, when the loader
# does not know that folder already.
set(FLASHTTS_PRIVATE_LIBDIR ${CMAKE_INSTALL_LIBDIR}/flashtts)
file(RELATIVE_PATH FLASHTTS_BIN_TO_PRIVATE /prefix/${CMAKE_INSTALL_BINDIR} /prefix/${FLASHTTS_PRIVATE_LIBDIR})
set_target_properties(flashtts PROPERTIES INSTALL_RPATH "$ORIGIN/${FLASHTTS_BIN_TO_PRIVATE}")
install(TARGETS flashtts RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS flashtts_engine LIBRARY DESTINATION ${FLASHTTS_PRIVATE_LIBDIR})
if(FLASHTTS_WITH_CUDA)
  set_target_properties(flashtts_cuda PROPERTIES INSTALL_RPATH "$ORIGIN" INSTALL_RPATH_USE_LINK_PATH ON)
  install(TARGETS flashtts_cuda LIBRARY DESTINATION ${FLASHTTS_PRIVATE_LIBDIR})
endif()
install(FILES ${CMAKE_SOURCE_DIR}/configs/default.toml DESTINATION ${CMAKE_INSTALL_DATADIR}/flashtts/configs)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/models/ DESTINATION ${CMAKE_INSTALL_DATADIR}/flashtts/models)

install(TARGETS flashtts_client EXPORT flashtts-targets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${CMAKE_SOURCE_DIR}/include/flashtts/flashtts.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/flashtts)
# The C++ client's header and the two it includes.
install(FILES ${CMAKE_SOURCE_DIR}/runtime/client.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/flashtts/runtime)
install(FILES ${CMAKE_SOURCE_DIR}/runtime/base/status.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/flashtts/runtime/base)
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
