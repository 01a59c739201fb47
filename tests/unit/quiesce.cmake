# Unit tests of session awareness: the session sources (fake, utmpx, and
# logind where it runs) and the quiesce decision.
vigil_unit_test(sessions LIBS vigil_common)
vigil_unit_test(quiesce LIBS vigil_engine)
