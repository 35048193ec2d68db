// The fleet's admission gate: at most `limit` phones booting at once, and the producer woken in batches.

import Synchronization
import Testing

@testable import Fleet

@Suite("Admission gate")
struct AdmissionGateTests {
    @Test("a waiter is let in once a batch of places is free, never beyond the limit", arguments: [1, 4, 64, 1024])
    func waiterEntersWhenABatchIsFree(limit: Int) async throws {
        let gate = AdmissionGate(limit: limit)
        #expect(gate.batch == max(1, min(32, limit / 8)))
        for _ in 0..<limit { try await gate.enter() }
        let entered = Mutex(false)
        let waiter = Task {
            try await gate.enter()
            entered.withLock { $0 = true }
        }
        while gate.waiting == 0 { await Task.yield() }
        // One place short of a batch: still waiting.
        for _ in 0..<(gate.batch - 1) { gate.leave() }
        try await Task.sleep(nanoseconds: 50_000_000)
        #expect(!entered.withLock { $0 })
        gate.leave()
        try await waiter.value
        #expect(entered.withLock { $0 })
        // The waiter took one of the batch; the rest are free at once, and then the gate is full again.
        for _ in 0..<(gate.batch - 1) { try await gate.enter() }
        let late = Task { try await gate.enter() }
        while gate.waiting == 0 { await Task.yield() }
        late.cancel()
        await #expect(throws: CancellationError.self) { try await late.value }
    }
}
