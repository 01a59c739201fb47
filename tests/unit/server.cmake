# Unit tests of the control socket: framing, the server, the client.
vigil_unit_test(ipc LIBS vigil_common)
# test_ipc watches the frame reader's allocations through malloc.
target_link_options(test_ipc PRIVATE -Wl,--wrap=malloc)
vigil_unit_test(server LIBS vigil_engine vigil_client Threads::Threads)
vigil_unit_test(client LIBS vigil_engine vigil_client Threads::Threads)
