# Unit tests of the scheduler's decisions and of the clock and timers.
vigil_unit_test(sched LIBS vigil_engine)
vigil_unit_test(clock LIBS vigil_common)
