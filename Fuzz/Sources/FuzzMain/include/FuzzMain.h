#ifndef METERTRUST_FUZZ_MAIN_H
#define METERTRUST_FUZZ_MAIN_H

/// Runs libFuzzer's driver on the target's LLVMFuzzerTestOneInput: what libFuzzer's own `main` does.
int metertrust_fuzz_main(int argc, char **argv);

#endif
