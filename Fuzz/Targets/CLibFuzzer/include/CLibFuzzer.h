// libFuzzer's driver, for fuzz targets that bring their own main (SwiftPM names an executable's entry point
// itself, so the `main` inside libFuzzer cannot be the program's). Provided by the toolchain's libFuzzer runtime,
// linked in by -sanitize=fuzzer.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
