# Unit tests of vigil_common: the jobs-file parser, filters, schedules.
vigil_unit_test(config LIBS vigil_common)
vigil_unit_test(filter LIBS vigil_common)
vigil_unit_test(schedule LIBS vigil_common)
