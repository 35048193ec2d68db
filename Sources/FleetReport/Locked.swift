import Foundation

/// A value behind a lock. `NSLock` rather than `Synchronization.Mutex`, which needs macOS 15 and the package
/// supports macOS 14. The closure is non-escaping, so taking the lock allocates nothing.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    @inline(__always)
    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
