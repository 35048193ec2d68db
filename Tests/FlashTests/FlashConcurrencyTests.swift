import Foundation
import PhoneCore
import Testing

@testable import Flash

/// A CLI `config set` may write while a phone runs: writers on one image wait for each other (busy timeout),
/// they do not fail.
@Suite("Flash concurrency: a second writer waits")
struct FlashConcurrencyTests {
    @Test func secondWriterWaitsForTheFirstTransaction() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("phone.flash")
        let first = try FlashStore.create(at: path, identity: testIdentity)
        try first.connection.execute("BEGIN IMMEDIATE; UPDATE state SET boot_count = 5;")

        // The second writer blocks in SQLite's busy handler: give it a thread of its own, never one of the few
        // cooperative threads the rest of the suite runs on.
        let started = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        let outcome = Locked<Result<ContinuousClock.Instant, FlashError>?>(nil)
        let second = Thread {
            do throws(FlashError) {
                let store = try FlashStore.open(at: path)
                var changes = FlashChanges()
                changes.events = [LogEntry(at: at(1), boot: 5, kind: "local-edit", message: "config set")]
                changes.setLocalEdits = [LocalEdit(name: "TIME_ZONE", value: "60", editedAt: at(1))]
                started.signal()
                try store.apply(changes)
                outcome.set(.success(ContinuousClock.now))
            } catch {
                outcome.set(.failure(error))
            }
            done.signal()
        }
        second.start()
        started.wait()
        usleep(300_000)
        let committed = ContinuousClock.now
        try first.connection.execute("COMMIT")
        done.wait()

        // It finished only after the first writer let go, and without an error.
        let finished = try #require(outcome.get()).get()
        #expect(finished >= committed)
        let snapshot = try first.load()
        #expect(snapshot.bootCount == 5)
        #expect(snapshot.localEdits["TIME_ZONE"]?.value == "60")
        #expect(try first.events().map(\.kind) == ["local-edit"])
    }

    @Test func twoStoresWritingAtOnceLoseNothing() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("phone.flash")
        try FlashStore.create(at: path, identity: testIdentity).close()

        let writers = (0..<2).map { writer in
            Task.detached { () -> FlashError? in
                do throws(FlashError) {
                    let store = try FlashStore.open(at: path)
                    for index in 0..<100 {
                        var changes = FlashChanges()
                        changes.events = [
                            LogEntry(at: at(Int64(index)), boot: 1, kind: "w\(writer)", message: "\(index)")
                        ]
                        changes.setLocalEdits = [LocalEdit(name: "W\(writer)", value: "\(index)", editedAt: at(1))]
                        try store.apply(changes)
                        _ = try store.load()
                    }
                    return nil
                } catch {
                    return error
                }
            }
        }
        for writer in writers {
            let error = await writer.value
            #expect(error == nil, "\(String(describing: error))")
        }
        let store = try FlashStore.open(at: path)
        let events = try store.events()
        #expect(events.count == 200)
        for writer in 0..<2 {
            #expect(events.filter { $0.kind == "w\(writer)" }.map(\.message) == (0..<100).map { "\($0)" })
        }
        #expect(try store.load().localEdits["W1"]?.value == "99")
    }
}

/// A value shared with a thread.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func set(_ new: Value) {
        lock.lock()
        value = new
        lock.unlock()
    }
    func get() -> Value {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}
