# db/: vigil.db (store), its migrations, and the per-job catalogue.
vigil_unit_test(store LIBS vigil_db)
vigil_unit_test(migrations LIBS vigil_db)
vigil_unit_test(catalogue LIBS vigil_db)
