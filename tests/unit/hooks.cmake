vigil_unit_test(hooks LIBS vigil_engine)
