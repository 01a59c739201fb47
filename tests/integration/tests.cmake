# Integration tests: the real binaries on temp folders (Python 3, standard
# library only).  Each test script takes --vigil and --vigild; exit 77 means
# "cannot run here" (not root, no tmpfs), which CI=true turns into a failure.

find_program(VIGIL_PYTHON3 NAMES python3 REQUIRED)

set(VIGIL_INTEG_DIR ${CMAKE_CURRENT_LIST_DIR})

function(vigil_integration_test name script)
  cmake_parse_arguments(T "" "TIMEOUT" "ARGS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_test(NAME integ_${name}
    COMMAND ${VIGIL_PYTHON3} ${VIGIL_INTEG_DIR}/${script}
            --vigil $<TARGET_FILE:vigil> --vigild $<TARGET_FILE:vigild>
            ${T_ARGS})
  set_tests_properties(integ_${name} PROPERTIES
    LABELS integration
    TIMEOUT ${T_TIMEOUT}
    SKIP_RETURN_CODE 77
    ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
endfunction()

vigil_integration_test(treecmp test_treecmp.py TIMEOUT 60)
vigil_integration_test(differential test_differential.py)
vigil_integration_test(kill test_kill.py)
vigil_integration_test(faults_diskfull test_faults.py ARGS --case diskfull
  TIMEOUT 120)
vigil_integration_test(faults_fifo test_faults.py ARGS --case fifo
  TIMEOUT 120)
vigil_integration_test(faults_unreadable test_faults.py ARGS --case unreadable
  TIMEOUT 120)
vigil_integration_test(faults_deep test_faults.py ARGS --case deep
  TIMEOUT 300)
vigil_integration_test(faults_threads test_faults.py ARGS --case threads
  TIMEOUT 120)
vigil_integration_test(jobs_cli test_jobs_cli.py TIMEOUT 120)
vigil_integration_test(restore_cli test_restore_cli.py TIMEOUT 180)

# Snapshot providers on real btrfs and XFS images (root, loop mounts):
# test_snapshots.sh drives snapdriver; exit 77 = cannot mount here.
add_executable(snapdriver ${VIGIL_INTEG_DIR}/snapdriver.c)
target_link_libraries(snapdriver PRIVATE vigil_engine)
add_test(NAME integ_snapshots
  COMMAND sh ${VIGIL_INTEG_DIR}/test_snapshots.sh $<TARGET_FILE:snapdriver>)
set_tests_properties(integ_snapshots PROPERTIES LABELS integration
  TIMEOUT 600 SKIP_RETURN_CODE 77)
# The same through the real service and --run-once: the capture decision
# per filesystem, live SQLite, and snapshots removed after killed runs.
vigil_integration_test(capture_run test_capture_run.py TIMEOUT 900
  ARGS --snapdriver $<TARGET_FILE:snapdriver>)

# The service (issue 4): the real vigild in user mode, and in system mode as
# root against several users.
vigil_integration_test(service test_service.py TIMEOUT 300)
vigil_integration_test(auth test_auth.py TIMEOUT 180)

# The systemd unit's hardening score and capability comments, and what
# `cmake --install` puts in place.
add_test(NAME integ_unit_security
  COMMAND sh ${VIGIL_INTEG_DIR}/test_unit_security.sh
          ${CMAKE_SOURCE_DIR}/packaging/systemd/vigild.service)
set_tests_properties(integ_unit_security PROPERTIES LABELS integration
  TIMEOUT 60 SKIP_RETURN_CODE 77)
add_test(NAME integ_install
  COMMAND sh ${VIGIL_INTEG_DIR}/test_install.sh ${CMAKE_BINARY_DIR})
set_tests_properties(integ_install PROPERTIES LABELS integration TIMEOUT 120)

# The session agent against real test apps: --simulate cycles, the
# warning through a stand-in notification server, the protocol against a
# stand-in vigild, reconnecting and the one-agent lock.
vigil_integration_test(agent test_agent.py TIMEOUT 240
  ARGS --agent $<TARGET_FILE:vigil-agent> --holdfile $<TARGET_FILE:holdfile>
       --stubborn $<TARGET_FILE:stubborn>
       --fakenotify $<TARGET_FILE:fakenotify>)
# Closing an X11 app by WM_DELETE_WINDOW and _NET_CLOSE_WINDOW under Xvfb;
# exit 77 where Xvfb or libX11 is missing.
pkg_check_modules(VIGIL_TEST_X11 QUIET x11)
if(VIGIL_TEST_X11_FOUND)	# then tests/apps builds xwin and fakewm
  add_test(NAME integ_agent_x11
    COMMAND sh ${VIGIL_INTEG_DIR}/test_agent_x11.sh
            $<TARGET_FILE:vigil-agent> $<TARGET_FILE:xwin>
            $<TARGET_FILE:fakewm>)
else()
  add_test(NAME integ_agent_x11
    COMMAND sh ${VIGIL_INTEG_DIR}/test_agent_x11.sh
            $<TARGET_FILE:vigil-agent> xwin-not-built fakewm-not-built)
endif()
set_tests_properties(integ_agent_x11 PROPERTIES LABELS integration
  TIMEOUT 180 SKIP_RETURN_CODE 77)

# vigil-tray under Xvfb in a real tray host (trayer), driven with xdotool;
# screenshots are kept under test-artefacts/tray in the build folder.  When
# the tray is not built the test skips (77), which CI=true makes a failure.
if(TARGET vigil-tray)
  set(VIGIL_TRAY_BIN $<TARGET_FILE:vigil-tray>)
else()
  set(VIGIL_TRAY_BIN "")
endif()
add_test(NAME integ_tray
  COMMAND bash ${VIGIL_INTEG_DIR}/test_tray.sh
          --vigil $<TARGET_FILE:vigil> --vigild $<TARGET_FILE:vigild>
          "--tray=${VIGIL_TRAY_BIN}"
          --icons ${CMAKE_SOURCE_DIR}/agent/tray/icons
          --out ${CMAKE_BINARY_DIR}/test-artefacts/tray)
set_tests_properties(integ_tray PROPERTIES LABELS integration
  TIMEOUT 300 SKIP_RETURN_CODE 77)

# The Debian packages, built from the tree by packaging/build-deb.sh into a
# temp folder (about a minute), checked with dpkg-deb and lintian.  Once
# per check: not again in the sanitizer build (the package is built without
# sanitizers anyway).
if(NOT VIGIL_SANITIZE)
  add_test(NAME integ_deb
    COMMAND sh ${VIGIL_INTEG_DIR}/test_deb.sh)
  set_tests_properties(integ_deb PROPERTIES LABELS integration
    TIMEOUT 900 SKIP_RETURN_CODE 77)
endif()

# End to end (issue 5): a Debian rootfs (debootstrap, cached) booted with
# systemd-nspawn as root, vigil installed inside (the .deb from dist/ when
# it is current, else this build), three session scenarios against the real
# logind.  Exit 77 = cannot boot a container here (or VIGIL_E2E=0).
add_test(NAME e2e_nspawn
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/e2e/run.sh ${CMAKE_BINARY_DIR})
set_tests_properties(e2e_nspawn PROPERTIES LABELS e2e
  TIMEOUT 900 SKIP_RETURN_CODE 77)

# Archive mode (issue 3): full and incremental chains in every format, read
# by bsdtar, unzip and Python, restored as of each run; a killed run.
vigil_integration_test(archive test_archive.py TIMEOUT 300)
vigil_integration_test(jobs_edit test_jobs_edit.py TIMEOUT 60)
vigil_integration_test(hooks test_hooks.py TIMEOUT 60)
# Attacks of a local user on a root vigild in system mode (issue 8): symlink
# swaps during backups, restore targets, planted temp/staging/socket paths,
# hooks' uid, modes.  Root only (77 otherwise; a failure under CI=true).
vigil_integration_test(attacks test_attacks.py TIMEOUT 600)

# The kill loop (issue 8): SIGKILL of the worker at random points of mirror
# and archive runs through the real vigild, each followed by a run to the
# end and the checks (equal trees, no temp files, integrity_check of both
# DBs).  200 kills per mode, about 3 minutes; 150 under the sanitizers,
# where a kill takes about twice as long (about 3.5 minutes).
if(VIGIL_SANITIZE)
  set(VIGIL_KILLLOOP_KILLS 150)
else()
  set(VIGIL_KILLLOOP_KILLS 200)
endif()
vigil_integration_test(killloop test_killloop.py TIMEOUT 900
  ARGS --kills ${VIGIL_KILLLOOP_KILLS})

# `cmake --build BUILD --target soak`: the long versions, not run by ctest
# (1000 kills per mode, 15 to 20 minutes in a release build).
add_custom_target(soak
  COMMAND ${VIGIL_PYTHON3} ${VIGIL_INTEG_DIR}/test_killloop.py
          --vigil $<TARGET_FILE:vigil> --vigild $<TARGET_FILE:vigild>
          --kills 1000
  DEPENDS vigil vigild
  USES_TERMINAL
  COMMENT "soak: the kill loop with 1000 kills per mode")

# vigil.db held by another process (BEGIN EXCLUSIVE, 10 s and 13 s) under
# the CLI in local mode and two services; twenty CLIs at once during a run
# (service and local mode).  About 45 s.
vigil_integration_test(busy test_busy.py TIMEOUT 240)
