import CLibFuzzer
import FuzzEntries

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// libFuzzer calls the closure once per input: a configuration file as downloaded (XML or Standard Format).
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(
    LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        let bytes = Array(UnsafeBufferPointer(start: data, count: size))
        _ = FuzzEntries.configXML(bytes)
        return 0
    }
)
