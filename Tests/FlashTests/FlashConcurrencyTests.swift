import Foundation
import PhoneCore
import Testing

@testable import Flash

/// A CLI `config set` may write while a phone runs: writers on one image wait for each other (busy timeout),
/// they do not fail.
@Suite("Flash concurrency: a second writer waits")
struct FlashConcurrencyTests {
    @Test func secondWriterWaitsForTheFirstTransaction() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("phone.flash")
        let first = try FlashStore.create(at: path, identity: testIdentity)
        try first.connection.execute("BEGIN IMMEDIATE; UPDATE state SET boot_count = 5;")

        let (started, signal) = AsyncStream<Void>.makeStream()
        let second = Task.detached { () -> Result<ContinuousClock.Instant, FlashError> in
            do throws(FlashError) {
                let store = try FlashStore.open(at: path)
                var changes = FlashChanges()
                changes.events = [LogEntry(at: at(1), boot: 5, kind: "local-edit", message: "config set")]
                changes.setLocalEdits = [LocalEdit(name: "TIME_ZONE", value: "60", editedAt: at(1))]
                signal.yield()
                try store.apply(changes)
                return .success(ContinuousClock.now)
            } catch {
                return .failure(error)
            }
        }
        for await _ in started { break }
        try await Task.sleep(for: .milliseconds(300))
        let committed = ContinuousClock.now
        try first.connection.execute("COMMIT")

        // It finished only after the first writer let go, and without an error.
        let finished = try await second.value.get()
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
