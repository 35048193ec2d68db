import Synchronization

/// A counting gate for phones entering their boot-time provisioning: at most `limit` at once, the rest wait in
/// arrival order. Waiting is cancellable (an interrupted fleet stops waiting at once).
///
/// With `batch` above 1, a waiter is woken when that many places are free, not at the first one: the fleet's one
/// producer then starts that many phones before it waits again, instead of sleeping and being woken (two thread
/// switches) for every phone. Between wakes, up to `batch - 1` places stay free: the fleet uses it only for its own
/// default limit, never for a `--max-booting` the user gave.
final class AdmissionGate: Sendable {
    private struct State {
        var available: Int
        var nextID = 0
        var waiters: [(id: Int, continuation: CheckedContinuation<Void, any Error>)] = []
    }
    private let state: Mutex<State>
    /// Free places a waiter is woken at (1 to `limit`).
    let batch: Int

    /// - Parameter batch: free places a waiter is woken at; `defaultBatch(limit:)` for the fleet's own default limit.
    init(limit: Int, batch: Int = 1) {
        let limit = max(1, limit)
        state = Mutex(State(available: limit))
        self.batch = min(max(1, batch), limit)
    }

    /// An eighth of the limit, at most 32, at least 1.
    static func defaultBatch(limit: Int) -> Int { max(1, min(32, limit / 8)) }

    /// Takes a place, waiting for one if none is free.
    /// - Throws: `CancellationError` when the waiting task is cancelled.
    func enter() async throws {
        let admitted = state.withLock { s in
            // Not ahead of anyone waiting (the places free below a batch are theirs).
            guard s.available > 0, s.waiters.isEmpty else { return false }
            s.available -= 1
            return true
        }
        if admitted { return }
        let id = state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let now: Result<Void, any Error>? = state.withLock { s in
                    if s.available > 0 && s.waiters.isEmpty {
                        s.available -= 1
                        return .success(())
                    }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    s.waiters.append((id, c))
                    return nil
                }
                if let now { c.resume(with: now) }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Void, any Error>? in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: i).continuation
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// How many wait (for tests).
    var waiting: Int { state.withLock { $0.waiters.count } }

    /// How many places are free (for tests).
    var free: Int { state.withLock { $0.available } }

    /// Gives a place back; the longest waiter takes one once `batch` are free.
    func leave() {
        let next = state.withLock { s -> CheckedContinuation<Void, any Error>? in
            s.available += 1
            guard !s.waiters.isEmpty, s.available >= batch else { return nil }
            s.available -= 1
            return s.waiters.removeFirst().continuation
        }
        next?.resume()
    }
}
