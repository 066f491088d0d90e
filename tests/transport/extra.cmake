# The peer process of the multi-process transport tests (and of bench/transport_bench).
add_executable(troupe_transport_peer ${CMAKE_CURRENT_LIST_DIR}/transport_peer.cpp)
target_link_libraries(troupe_transport_peer PRIVATE troupe::transport troupe_warnings)
target_compile_definitions(troupe_transport_peer PRIVATE TROUPE_TEST_TMP_DIR="${CMAKE_CURRENT_BINARY_DIR}/tmp")
troupe_use_torch_pch(troupe_transport_peer)
add_dependencies(troupe_transport_tests troupe_transport_peer)
target_compile_definitions(troupe_transport_tests PRIVATE
  TROUPE_TRANSPORT_PEER="$<TARGET_FILE:troupe_transport_peer>")
