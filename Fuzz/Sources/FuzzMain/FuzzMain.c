// SwiftPM links a debug executable with its entry point renamed to `<Target>_main` (`--defsym main=<Target>_main`,
// for testable executables), so libFuzzer's `main` would not be the one that runs; each target defines
// `<Target>_main` as this, which starts libFuzzer's driver exactly as libFuzzer's `main` does.
#include <stddef.h>
#include <stdint.h>
#include "FuzzMain.h"

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int metertrust_fuzz_main(int argc, char **argv) {
    return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput);
}
