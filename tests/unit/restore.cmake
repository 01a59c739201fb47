vigil_unit_test(restore LIBS vigil_engine)
