# Each area registers its unit tests in its own file.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/db.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/engine.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/restore.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/sched.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/server.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/snapshot.cmake)
