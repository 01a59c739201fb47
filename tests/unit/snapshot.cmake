# Snapshot-safe copying: the per-file capture methods and the snapshot
# choice and bookkeeping (real files in temp folders; the real-filesystem
# providers are tested by tests/integration/test_snapshots.sh).
vigil_unit_test(capture LIBS vigil_engine)
vigil_unit_test(snapshot LIBS vigil_engine)
