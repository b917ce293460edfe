# The fuzz targets besides fuzz_rules (tests/fuzz/fuzz_NAME.c), and the
# library each links: included by tests/CMakeLists.txt for the replay tests
# (every build) and for the libFuzzer builds (VG_FUZZ). tools/test.sh and
# tools/fuzz.sh find the targets from the fuzz_*.c files.
set(VG_FUZZ_TARGETS pb csv jsonl map config webhook)
set(VG_FUZZ_LIB_pb vg_engine) # the `pb` file mode uses the reader
set(VG_FUZZ_LIB_csv vg_engine)
set(VG_FUZZ_LIB_jsonl vg_engine)
set(VG_FUZZ_LIB_map vg_engine)
set(VG_FUZZ_LIB_config vg_live)
set(VG_FUZZ_LIB_webhook vg_adapters)
