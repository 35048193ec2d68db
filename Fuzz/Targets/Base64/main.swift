import CLibFuzzer
import FuzzEntries

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// libFuzzer calls the closure once per input: the base64 text of an encrypted file.
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(
    LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        let bytes = Array(UnsafeBufferPointer(start: data, count: size))
        _ = FuzzEntries.base64(bytes)
        return 0
    }
)
