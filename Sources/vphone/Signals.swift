import Foundation
import PhoneRuntime

/// SIGINT and SIGTERM as a clean stop, for every long-running command: the first one calls `onStop`; a second one
/// ends the process at once (status 128 + signal) when `secondExits`, and is ignored otherwise.
final class StopSignals: @unchecked Sendable {
    // @unchecked: `received` is guarded by `lock`; `sources` is written only in init.
    private var sources: [DispatchSourceSignal] = []
    private let lock = NSLock()
    private var received: Int32?

    init(secondExits: Bool, onStop: @escaping @Sendable () -> Void) {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                self.lock.lock()
                let first = self.received == nil
                if first { self.received = sig }
                self.lock.unlock()
                if first {
                    onStop()
                } else if secondExits {
                    _exit(128 + sig)
                }
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Whether a stop signal has come.
    var stopped: Bool { signalName != nil }

    /// `SIGTERM` or `SIGINT` once one was received, else nil.
    var signalName: String? {
        lock.lock()
        defer { lock.unlock() }
        switch received {
        case nil: return nil
        case SIGINT: return "SIGINT"
        default: return "SIGTERM"
        }
    }
}

/// `vphone boot`'s stop: the runtime shuts down (the current flash transaction completes, nothing after it starts),
/// then every handler registered with `onStop` runs.
final class SignalStopper: @unchecked Sendable {
    // @unchecked: `handlers` and `fired` are guarded by `lock`; `signals` is written only in init.
    private let lock = NSLock()
    private var handlers: [@Sendable () -> Void] = []
    private var fired = false
    private var signals: StopSignals?

    init(runtime: PhoneRuntime) {
        signals = StopSignals(secondExits: false) { [weak self] in
            guard let self else { return }
            self.lock.lock()
            self.fired = true
            let handlers = self.handlers
            self.lock.unlock()
            Task {
                await runtime.shutdown()
                for h in handlers { h() }
            }
        }
    }

    var stopped: Bool { signals?.stopped ?? false }

    func onStop(_ handler: @escaping @Sendable () -> Void) {
        lock.lock()
        handlers.append(handler)
        let already = fired
        lock.unlock()
        if already { handler() }
    }
}

/// Waits for SIGINT or SIGTERM (`vphone serve`, `vphone testserver`).
func waitForStopSignal() async {
    let (stream, continuation) = AsyncStream<Void>.makeStream()
    let signals = StopSignals(secondExits: true) { continuation.finish() }
    for await _ in stream {}
    withExtendedLifetime(signals) {}
}
