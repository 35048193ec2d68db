import Synchronization

/// A counting gate for phones entering their boot-time provisioning: at most `limit` at once, the rest wait in
/// arrival order. Waiting is cancellable (an interrupted fleet stops waiting at once).
final class AdmissionGate: Sendable {
    private struct State {
        var available: Int
        var nextID = 0
        var waiters: [(id: Int, continuation: CheckedContinuation<Void, any Error>)] = []
    }
    private let state: Mutex<State>

    init(limit: Int) { state = Mutex(State(available: max(1, limit))) }

    /// Takes a place, waiting for one if none is free.
    /// - Throws: `CancellationError` when the waiting task is cancelled.
    func enter() async throws {
        let admitted = state.withLock { s in
            guard s.available > 0 else { return false }
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
                    if s.available > 0 {
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

    /// Gives a place back: to the longest waiter, if any.
    func leave() {
        let next = state.withLock { s -> CheckedContinuation<Void, any Error>? in
            if s.waiters.isEmpty {
                s.available += 1
                return nil
            }
            return s.waiters.removeFirst().continuation
        }
        next?.resume()
    }
}
