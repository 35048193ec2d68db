import FuzzDriver
import FuzzEntries

// libFuzzer calls the closure once per input: the base64 text of an encrypted file.
runFuzzer { data, size in
    _ = FuzzEntries.base64(input(data, size))
    return 0
}
