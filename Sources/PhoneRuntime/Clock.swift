import Foundation
import PhoneCore

/// Where a phone's time comes from (ARCHITECTURE rule 6).
public protocol PhoneClock: Sendable {
    /// The phone's current time.
    func now() -> PhoneTime
    /// Suspends until the phone's time reaches `deadline`. Throws `CancellationError` when the task is cancelled.
    func sleep(until deadline: PhoneTime) async throws
    /// The longest stretch of phone time the runtime sleeps before looking again (nil: sleep straight to the
    /// deadline, for a virtual clock that jumps).
    var maxSleepChunkMs: Int64? { get }
    /// True when time only moves because the phone waits (a simulation): the runtime then stops when nothing is left
    /// to wait for.
    var isVirtual: Bool { get }
}

/// Real time, optionally running `scale` times faster: `--time-scale 10080` turns a week of timers into a minute.
public struct ScaledClock: PhoneClock {
    public let scale: Double
    private let phoneStart: Int64
    private let realStart: UInt64
    private let chunked: Bool

    /// - Parameters:
    ///   - scale: how many phone seconds pass per real second (> 0).
    ///   - start: the phone's time now (default: the real wall clock).
    ///   - chunked: wake at least four times a real second to notice new timers and requests (a phone with a control
    ///     API); a fleet phone, whose timers change only when it wakes, sleeps straight to its next timer.
    public init(scale: Double = 1, start: PhoneTime? = nil, chunked: Bool = true) {
        self.scale = scale
        self.chunked = chunked
        phoneStart = start?.millisecondsSinceEpoch ?? Int64(Date().timeIntervalSince1970 * 1000)
        realStart = DispatchTime.now().uptimeNanoseconds
    }

    public func now() -> PhoneTime {
        let realMs = Double(DispatchTime.now().uptimeNanoseconds - realStart) / 1_000_000
        return PhoneTime(millisecondsSinceEpoch: phoneStart + Int64(realMs * scale))
    }

    public func sleep(until deadline: PhoneTime) async throws {
        let phoneMs = deadline.millisecondsSinceEpoch - now().millisecondsSinceEpoch
        guard phoneMs > 0 else { return }
        let realNs = Double(phoneMs) / scale * 1_000_000
        try await Task.sleep(nanoseconds: UInt64(min(realNs, 3.6e12)) + 1)
    }

    /// A quarter of a real second, in phone time: new timers and requests are noticed at least that often.
    public var maxSleepChunkMs: Int64? { chunked ? max(1, Int64(250 * scale)) : nil }
    public var isVirtual: Bool { false }
}

/// Simulated time: it stands still while the phone works and jumps straight to the next timer when the phone
/// waits. A week of resyncs runs as fast as the server answers.
public final class VirtualClock: PhoneClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Int64

    public init(start: PhoneTime) { current = start.millisecondsSinceEpoch }

    public func now() -> PhoneTime {
        lock.lock()
        defer { lock.unlock() }
        return PhoneTime(millisecondsSinceEpoch: current)
    }

    public func sleep(until deadline: PhoneTime) async throws {
        try Task.checkCancellation()
        advance(to: deadline)
    }

    /// Moves time forward (never back).
    public func advance(to t: PhoneTime) {
        lock.lock()
        defer { lock.unlock() }
        current = max(current, t.millisecondsSinceEpoch)
    }

    public var maxSleepChunkMs: Int64? { nil }
    public var isVirtual: Bool { true }
}
