import FuzzDriver
import FuzzEntries

// libFuzzer calls the closure once per input: an encrypted file, decrypted with the test key.
runFuzzer { data, size in
    _ = FuzzEntries.decrypt(input(data, size))
    return 0
}
