# The multi-process tests start real `troupe worker` processes.
add_dependencies(troupe_actors_tests troupe_cli)
target_compile_definitions(troupe_actors_tests PRIVATE TROUPE_CLI_PATH="$<TARGET_FILE:troupe_cli>")
# The remote reward function's tests run an HTTP server in the test process.
find_package(PkgConfig REQUIRED)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
target_link_libraries(troupe_actors_tests PRIVATE PkgConfig::HTTPLIB)
