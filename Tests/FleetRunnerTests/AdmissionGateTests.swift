// The fleet's admission gate: at most `limit` phones booting at once, in arrival order, and the fleet's producer
// woken in batches under its default limit.

import Synchronization
import Testing

@testable import Fleet

/// What the callers did, in order.
private final class Log: Sendable {
    private let entries = Mutex<[String]>([])
    func append(_ entry: String) { entries.withLock { $0.append(entry) } }
    var all: [String] { entries.withLock { $0 } }
}

@Suite("Admission gate", .timeLimit(.minutes(1)))
struct AdmissionGateTests {
    /// The task's result; cancelling the test (its time limit) cancels the task, so a caller stuck at the gate fails
    /// the test instead of hanging it.
    private func result(_ task: Task<Void, any Error>) async throws {
        try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            task.cancel()
        }
    }

    /// Waits until `count` callers wait at the gate (records an issue after 2 s instead of hanging).
    private func untilWaiting(
        _ gate: AdmissionGate,
        _ count: Int,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(2)
        while gate.waiting < count {
            guard clock.now < deadline else {
                Issue.record("\(gate.waiting) caller(s) wait, not \(count)", sourceLocation: sourceLocation)
                return
            }
            await Task.yield()
        }
    }

    @Test(
        "a waiter is let in once a batch of places is free, never beyond the limit",
        arguments: [(1, 1), (4, 1), (64, 8), (1024, 32), (100, 1)]
    )
    func waiterEntersWhenABatchIsFree(limit: Int, batch: Int) async throws {
        let gate = AdmissionGate(limit: limit, batch: batch)
        #expect(gate.batch == batch)
        if batch > 1 { #expect(AdmissionGate.defaultBatch(limit: limit) == batch) }
        for _ in 0..<limit { try await gate.enter() }
        #expect(gate.free == 0)
        let entered = Mutex(false)
        let waiter = Task {
            try await gate.enter()
            entered.withLock { $0 = true }
        }
        await untilWaiting(gate, 1)
        // One place short of a batch: still waiting.
        for _ in 0..<(batch - 1) { gate.leave() }
        try await Task.sleep(nanoseconds: 50_000_000)
        #expect(!entered.withLock { $0 })
        #expect(gate.free == batch - 1)
        gate.leave()
        try await result(waiter)
        // The waiter took one of the batch; the rest are free.
        #expect(gate.free == batch - 1 && gate.waiting == 0)
    }

    @Test("callers are let in in arrival order: none goes ahead of one waiting for a batch", arguments: [1, 4])
    func arrivalOrder(batch: Int) async throws {
        let gate = AdmissionGate(limit: 8, batch: batch)
        for _ in 0..<8 { try await gate.enter() }
        let order = Log()
        let first = Task {
            try await gate.enter()
            order.append("first")
        }
        await untilWaiting(gate, 1)
        if batch > 1 { gate.leave() }  // a place free, fewer than a batch
        let second = Task {
            try await gate.enter()
            order.append("second")
        }
        await untilWaiting(gate, 2)
        for _ in 0..<(batch > 1 ? batch - 1 : 1) { gate.leave() }
        try await result(first)
        #expect(order.all == ["first"])
        for _ in 0..<batch { gate.leave() }
        try await result(second)
        #expect(order.all == ["first", "second"])
    }

    @Test("a waiter cancelled while fewer than a batch of places are free leaves them to the next caller")
    func cancelledWaiter() async throws {
        let gate = AdmissionGate(limit: 16, batch: 4)
        for _ in 0..<16 { try await gate.enter() }
        let waiter = Task { try await gate.enter() }
        await untilWaiting(gate, 1)
        gate.leave()
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(gate.waiting == 0 && gate.free == 1)
        try await gate.enter()  // at once: nobody waits
        #expect(gate.free == 0)
    }
}
