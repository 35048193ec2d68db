import FuzzDriver
import FuzzEntries

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One private directory per process (libFuzzer's -fork and -jobs run several at once), under $TMPDIR, which
/// scripts/fuzz points at its own scratch directory and removes afterwards.
nonisolated(unsafe) let imagePath: String = {
    let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    var template = Array("\(base)/vphone-fuzz-flash-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard let made else { fatalError("mkdtemp failed: errno \(errno)") }
    return String(cString: made) + "/image.flash"
}()

// libFuzzer calls the closure once per input: a flash image file, opened read-only as `vphone flash info` does.
runFuzzer { data, size in
    _ = FuzzEntries.flashImage(input(data, size), at: imagePath)
    return 0
}
