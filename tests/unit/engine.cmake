# Unit tests of the copy engine and the platform layer it stands on.
vigil_unit_test(engine LIBS vigil_engine)
vigil_unit_test(versions LIBS vigil_engine)
vigil_unit_test(platform LIBS vigil_common)
