import Foundation
import PhoneCore
import Testing

@testable import Flash

@Suite("Flash store: round trips and each part of a change")
struct FlashStoreTests {
    let directory: TemporaryDirectory
    let path: String

    init() throws {
        directory = try TemporaryDirectory()
        path = directory.file("phone.flash")
    }

    /// A boot count no boot could add one to (a hand-edited image, an import) is damage, reported at load.
    @Test func aBootCountOutOfRangeIsDamageNotACrash() throws {
        try FlashStore.create(at: path, identity: testIdentity).close()
        for count in [Int64(FlashSnapshot.maxBootCount) + 1, Int64.max] {
            try rawSQL(path, "UPDATE state SET boot_count = \(count)")
            expectFlashError(.corrupt, path: path, mentioning: ["boot count \(count)", "outside"]) {
                let store = try FlashStore.open(at: path)
                defer { store.close() }
                _ = try store.load()
            }
        }
        try rawSQL(path, "UPDATE state SET boot_count = \(FlashSnapshot.maxBootCount)")
        let store = try FlashStore.open(at: path)
        defer { store.close() }
        #expect(try store.load().bootCount == FlashSnapshot.maxBootCount)
    }

    @Test func newImageHoldsIdentityAndNothingElse() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        #expect(store.path == path)
        #expect(try store.load() == FlashSnapshot(identity: testIdentity))
        #expect(try store.events().isEmpty)
    }

    @Test func everyFieldSurvivesCloseAndReopen() throws {
        let changes = everyPartChanges(boot: 3)
        let store = try FlashStore.create(at: path, identity: testIdentity)
        try store.apply(changes)
        store.close()

        let reopened = try FlashStore.open(at: path)
        let snapshot = try reopened.load()
        #expect(snapshot == snapshotAfter(changes))
        #expect(snapshot.identity.createdAt == at(1_000))
        #expect(snapshot.savedFiles[.product]?.body.count == 8192)
        #expect(snapshot.savedFiles[.master]?.body == [])
        #expect(try reopened.events() == changes.events)
    }

    @Test func eventFieldsAreAJSONObjectWithSortedKeys() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        var changes = FlashChanges()
        changes.events = [LogEntry(at: at(1), boot: 1, kind: "k", message: "m", fields: ["z": "1", "a": "\"\n"])]
        try store.apply(changes)
        var text = ""
        try store.connection.query("SELECT fields FROM events", table: "events") { (row) throws(FlashError) in
            text = try row.text(0)
        }
        #expect(text == #"{"a":"\"\n","z":"1"}"#)
    }

    @Test func bootCountIsSetAndLeftAloneWhenNil() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        var changes = FlashChanges()
        changes.bootCount = 7
        try store.apply(changes)
        #expect(try store.load().bootCount == 7)
        changes = FlashChanges()
        changes.events = [LogEntry(at: at(1), boot: 7, kind: "state", message: "x")]
        try store.apply(changes)
        #expect(try store.load().bootCount == 7)
    }

    @Test func savedFilesAreReplacedPerKindAndTheLastOfABatchWins() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        var changes = FlashChanges()
        changes.savedFiles = [
            SavedFile(kind: .master, url: "u1", body: body(10), savedAt: at(1)),
            SavedFile(kind: .standard, url: "s", body: body(20), savedAt: at(2)),
        ]
        try store.apply(changes)
        changes.savedFiles = [
            SavedFile(kind: .master, url: "u2", body: body(30), savedAt: at(3)),
            SavedFile(kind: .master, url: "u3", body: body(40, seed: 1), savedAt: at(4)),
        ]
        try store.apply(changes)
        let files = try store.load().savedFiles
        #expect(files[.master] == SavedFile(kind: .master, url: "u3", body: body(40, seed: 1), savedAt: at(4)))
        #expect(files[.standard] == SavedFile(kind: .standard, url: "s", body: body(20), savedAt: at(2)))
        #expect(files.count == 2)
    }

    @Test func parametersReplaceTheWholeTableOrStayWhenNil() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        var changes = FlashChanges()
        changes.parameters = [
            "A": Parameter(name: "A", value: "1", source: .initial),
            "B": Parameter(name: "B", value: "2", source: .master, perm: "!", access: "user"),
        ]
        try store.apply(changes)
        #expect(try store.load().parameters == changes.parameters)

        var other = FlashChanges()
        other.bootCount = 1
        try store.apply(other)
        #expect(try store.load().parameters == changes.parameters)

        other.parameters = ["C": Parameter(name: "C", value: "3", source: .local)]
        try store.apply(other)
        #expect(try store.load().parameters == other.parameters)

        other.parameters = [:]
        try store.apply(other)
        #expect(try store.load().parameters.isEmpty)
    }

    @Test func localEditsAreSetAndRemoved() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        var changes = FlashChanges()
        changes.setLocalEdits = [
            LocalEdit(name: "A", value: "1", editedAt: at(1)), LocalEdit(name: "B", value: "2", editedAt: at(2)),
        ]
        try store.apply(changes)
        changes = FlashChanges()
        changes.setLocalEdits = [LocalEdit(name: "A", value: "10", editedAt: at(3))]
        changes.removeLocalEdits = ["B", "never-set"]
        try store.apply(changes)
        #expect(try store.load().localEdits == ["A": LocalEdit(name: "A", value: "10", editedAt: at(3))])

        // As FlashSnapshot.applying: a name both set and removed in one change ends up removed.
        changes = FlashChanges()
        changes.removeLocalEdits = ["A"]
        changes.setLocalEdits = [LocalEdit(name: "A", value: "11", editedAt: at(4))]
        try store.apply(changes)
        #expect(try store.load().localEdits["A"] == nil)
    }

    @Test func timersAreArmedRearmedAndCancelled() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        var changes = FlashChanges()
        changes.armTimers = [.cyclic: at(10), .retry: at(20), .resync: at(30)]
        try store.apply(changes)
        changes = FlashChanges()
        changes.armTimers = [.retry: at(25), .resync: at(35)]
        changes.cancelTimers = [.cyclic, .resync]  // cancelled then armed: resync stays armed
        try store.apply(changes)
        #expect(try store.load().timers == [.retry: at(25), .resync: at(35)])
    }

    /// The machine predicts flash with FlashSnapshot.applying; the store must land on exactly that.
    @Test func storeAgreesWithFlashSnapshotApplying() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        var expected = try store.load()
        var tricky = FlashChanges()
        tricky.setLocalEdits = [LocalEdit(name: "X", value: "1", editedAt: at(1))]
        tricky.removeLocalEdits = ["X", "DISPLAY_NAME_1"]
        tricky.armTimers = [.retry: at(7)]
        tricky.cancelTimers = [.retry, .cyclic]
        tricky.savedFiles = [
            SavedFile(kind: .master, url: "a", body: body(3), savedAt: at(1)),
            SavedFile(kind: .master, url: "b", body: body(4), savedAt: at(2)),
        ]
        for changes in [everyPartChanges(boot: 1), tricky, everyPartChanges(boot: 2), FlashChanges()] {
            try store.apply(changes)
            expected = expected.applying(changes)
            #expect(try store.load() == expected)
        }
    }

    @Test func fileStatusIsReplacedPerKind() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        var changes = FlashChanges()
        changes.fileStatus = [FileStatus(kind: .product, url: "p", outcome: .failed, reason: "404", at: at(1))]
        try store.apply(changes)
        changes.fileStatus = [
            FileStatus(kind: .product, url: "p", outcome: .downloaded, reason: "", at: at(2)),
            FileStatus(kind: .master, url: "m", outcome: .fellBack, reason: "timeout", at: at(2)),
        ]
        try store.apply(changes)
        let status = try store.load().fileStatus
        #expect(status[.product]?.outcome == .downloaded)
        #expect(status[.master] == changes.fileStatus[1])
        #expect(status.count == 2)
    }

    @Test func eventsAreAppendedAndFilteredByBootAndLimit() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        let entries = (0..<9).map { LogEntry(at: at(Int64($0)), boot: 1 + $0 / 3, kind: "k", message: "m\($0)") }
        for batch in stride(from: 0, to: 9, by: 2) {
            var changes = FlashChanges()
            changes.events = Array(entries[batch..<min(batch + 2, 9)])
            try store.apply(changes)
        }
        #expect(try store.events() == entries)
        #expect(try store.events(boot: 2) == Array(entries[3..<6]))
        #expect(try store.events(limit: 4) == Array(entries[5..<9]))
        #expect(try store.events(boot: 1, limit: 2) == Array(entries[1..<3]))
        #expect(try store.events(limit: 0).isEmpty)
        #expect(try store.events(limit: 100) == entries)
        #expect(try store.events(boot: 9).isEmpty)
    }

    @Test func emptyChangesWriteNothing() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        let before = try rawInteger(path, "PRAGMA data_version")
        try store.apply(FlashChanges())
        #expect(try store.load() == FlashSnapshot(identity: testIdentity))
        #expect(try rawInteger(path, "PRAGMA data_version") == before)
    }

    // MARK: - Event log trimming

    @Test func eventLogKeepsTheNewestEntriesUpToTheLimit() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        store.eventLimit = 5
        let entries = (0..<12).map { LogEntry(at: at(Int64($0)), boot: 1, kind: "k", message: "m\($0)") }
        for batch in stride(from: 0, to: 12, by: 4) {
            var changes = FlashChanges()
            changes.events = Array(entries[batch..<batch + 4])
            try store.apply(changes)
            #expect(try store.events().count == min(batch + 4, 5))
        }
        #expect(try store.events() == Array(entries[7..<12]))
    }

    @Test func eventLogKeepsMaxEvents() throws {
        #expect(FlashStore.maxEvents == 10_000)
        let store = try FlashStore.create(at: path, identity: testIdentity)
        var changes = FlashChanges()
        changes.events = (0..<(FlashStore.maxEvents + 50)).map {
            LogEntry(at: at(Int64($0)), boot: 1, kind: "k", message: "m\($0)")
        }
        try store.apply(changes)
        let kept = try store.events()
        #expect(kept.count == FlashStore.maxEvents)
        #expect(kept.first?.message == "m50")
        #expect(kept.last?.message == "m\(FlashStore.maxEvents + 49)")
    }

    // MARK: - Factory reset

    @Test func factoryResetKeepsIdentityOnlyAndLogsItsEvent() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        try store.apply(everyPartChanges(boot: 4))
        let reset = LogEntry(at: at(9_000), boot: 4, level: .warning, kind: "factory-reset", message: "Reset")
        try store.factoryReset(event: reset)
        #expect(try store.load() == FlashSnapshot(identity: testIdentity, bootCount: 0))
        #expect(try store.events() == [reset])
        store.close()

        let reopened = try FlashStore.open(at: path)
        #expect(try reopened.load() == FlashSnapshot(identity: testIdentity, bootCount: 0))
        #expect(try reopened.events() == [reset])
        try reopened.integrityCheck()
    }

    @Test func factoryResetLeavesNoSecretInTheFile() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        var changes = everyPartChanges()
        changes.parameters?["SIP_PASS_2"] = Parameter(name: "SIP_PASS_2", value: "hunter2-very-secret", source: .master)
        try store.apply(changes)
        try store.factoryReset(event: LogEntry(at: at(1), boot: 0, kind: "factory-reset", message: "Reset"))
        store.close()
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(bytes.range(of: Data("hunter2-very-secret".utf8)) == nil)
    }

    // MARK: - openOrCreate, read-only, closed

    @Test func openOrCreateCreatesThenOpensAndRefusesAnotherMAC() throws {
        let first = try FlashStore.openOrCreate(at: path, identity: testIdentity)
        var changes = FlashChanges()
        changes.bootCount = 2
        try first.apply(changes)
        first.close()

        let later = Identity(mac: testMAC, model: "KX-UTG300B", firmware: "04.000", createdAt: at(99))
        let second = try FlashStore.openOrCreate(at: path, identity: later)
        #expect(try second.load() == FlashSnapshot(identity: testIdentity, bootCount: 2))
        second.close()

        let stranger = Identity(mac: testMAC.advanced(by: 1), model: "KX-UTG300", firmware: "03.210", createdAt: at(0))
        expectFlashError(.macMismatch, path: path, mentioning: ["0080F0C571EB", "0080F0C571EC"]) {
            _ = try FlashStore.openOrCreate(at: path, identity: stranger)
        }
    }

    @Test func readOnlyStoreLoadsButRefusesWrites() throws {
        try FlashStore.create(at: path, identity: testIdentity).apply(everyPartChanges())
        let store = try FlashStore.open(at: path, readOnly: true)
        #expect(try store.load() == snapshotAfter(everyPartChanges()))
        expectFlashError(.readOnly, path: path) { try store.apply(everyPartChanges()) }
        expectFlashError(.readOnly, path: path) {
            try store.factoryReset(event: LogEntry(at: at(1), boot: 1, kind: "factory-reset", message: "Reset"))
        }
    }

    @Test func closedStoreThrowsAndCloseIsIdempotent() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        store.close()
        store.close()
        expectFlashError(.io, path: path, mentioning: ["closed"]) { _ = try store.load() }
        expectFlashError(.io, path: path, mentioning: ["closed"]) { try store.apply(everyPartChanges()) }
    }

    @Test func imageIsStampedAndSelfContainedAtRest() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        try store.apply(everyPartChanges())
        #expect(try rawInteger(path, "PRAGMA application_id") == 0x5650_484E)
        #expect(try rawInteger(path, "PRAGMA user_version") == Int64(FlashStore.schemaVersion))
        #expect(FlashStore.applicationID == 0x5650_484E)
        var mode = ""
        try store.connection.query("PRAGMA journal_mode", table: "test") { (row) throws(FlashError) in
            mode = try row.text(0)
        }
        #expect(mode == "delete")
        #expect(!FileManager.default.fileExists(atPath: path + "-journal"))
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
        try store.integrityCheck()
    }
}
