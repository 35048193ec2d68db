// Only the declaration in include/CLibFuzzer.h: the definition is in the libFuzzer runtime.
