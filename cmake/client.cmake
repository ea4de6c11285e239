# The client layer (../shared/DESIGN.md "Layers"): what a program links to
# talk to a flashtts server, built over flashtts_messages and ZeroMQ only;
# nothing of the engine, spdlog, OpenBLAS or CUDA (tests/client/test_client_library.sh
# checks the shared library with ldd and nm).
#
#   flashtts_client_core  static, the C++ client (runtime/client.h); what the
#                         CLI, the tests and the benchmarks link.
#   flashtts_client       shared, libflashtts_client.so.0: the C++ client and
#                         the C API (include/flashtts/flashtts.h) for other
#                         programs; installed and exported as flashtts::client
#                         (cmake/install.cmake), described by flashtts-client.pc.
add_library(flashtts_client_core STATIC ${CMAKE_SOURCE_DIR}/runtime/client.cpp)
set_target_properties(flashtts_client_core PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_include_directories(flashtts_client_core PUBLIC ${CPPZMQ_INCLUDE_DIR})
target_link_libraries(flashtts_client_core PUBLIC flashtts_messages PkgConfig::ZMQ)

add_library(flashtts_client SHARED ${CMAKE_SOURCE_DIR}/client/c_api.cpp)
# Hidden by default: of the C API's own object only its flashtts_* functions
# are exported (FLASHTTS_API), not the JSON code inlined there; the C++
# client's classes come from flashtts_client_core with their usual visibility.
set_target_properties(flashtts_client PROPERTIES
  VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR} EXPORT_NAME client
  CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
# In the tree the C header is <flashtts/flashtts.h> under include/ and the C++
# ones "runtime/client.h" under the source root; installed, both under
# include/ and include/flashtts/ (cmake/install.cmake).
target_include_directories(flashtts_client PUBLIC
  $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include>
  $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}>
  $<BUILD_INTERFACE:${CPPZMQ_INCLUDE_DIR}>
  $<BUILD_INTERFACE:${MSGPACK_INCLUDE_DIR}>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/flashtts>)
target_compile_definitions(flashtts_client
  PUBLIC MSGPACK_NO_BOOST MSGPACK_DEFAULT_API_VERSION=3
  PRIVATE FLASHTTS_VERSION="${PROJECT_VERSION}")
# libzmq is public: the C++ header's inline cppzmq code calls it. The
# installed package finds it again through pkg-config (flashtts-config.cmake).
# nlohmann_json is header-only: nothing of it is linked.
target_link_libraries(flashtts_client
  PRIVATE flashtts_client_core nlohmann_json::nlohmann_json
  PUBLIC $<BUILD_INTERFACE:PkgConfig::ZMQ> $<INSTALL_INTERFACE:PkgConfig::flashtts_libzmq>)
