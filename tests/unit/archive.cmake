# Unit tests of archive mode: the parallel gzip writer, manifests, runs and
# restores on real temp folders, hostile archives.
vigil_unit_test(archive LIBS vigil_engine)
