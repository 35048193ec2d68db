import Foundation
import PhoneCore
import Testing

@testable import Flash

/// spec §6: whatever fails in the middle of a change, flash holds the old state, whole.
@Suite("Flash atomicity: a failed apply leaves the old state entirely")
struct FlashAtomicityTests {
    let directory: TemporaryDirectory
    let path: String

    init() throws {
        directory = try TemporaryDirectory()
        path = directory.file("phone.flash")
    }

    /// An image in a known state, and a change that touches every table differently.
    func prepare() throws -> (store: FlashStore, before: FlashSnapshot, events: [LogEntry], change: FlashChanges) {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        try store.apply(everyPartChanges(boot: 1))
        var change = everyPartChanges(boot: 2)
        change.savedFiles = change.savedFiles.map {
            SavedFile(kind: $0.kind, url: $0.url + "?v2", body: body(8192, seed: 9), savedAt: at(77))
        }
        change.parameters = ["ONLY": Parameter(name: "ONLY", value: "new", source: .master)]
        change.removeLocalEdits = ["TIME_ZONE"]
        change.cancelTimers = [.cyclic]
        change.armTimers = [.retry: at(1_800_000)]
        change.fileKey = .install(FileKey(key: "rotated-key", installedAt: at(78), sourceURL: "http://p/s.cfg"))
        change.rootCertificates = [RootCertificate(slot: 2, url: "https://p/ca2.pem", pem: testPEM, savedAt: at(79))]
        change.removeRootCertificates = [1]
        return (store, try store.load(), try store.events(), change)
    }

    /// Each table in turn refuses any write by a trigger added behind the store's back, so the failure comes
    /// after the writes to the tables before it have already happened inside the transaction.
    @Test(
        arguments: [
            "state", "saved_files", "parameters", "local_edits", "timers", "file_status", "file_key",
            "root_certificates", "events",
        ]
    )
    func failureAtAnyTableRollsBackEverything(table: String) throws {
        let (store, before, events, change) = try prepare()
        try rawSQL(
            path,
            ["INSERT", "UPDATE", "DELETE"].map {
                "CREATE TRIGGER fail_\($0.lowercased()) BEFORE \($0) ON \(table) BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
            }.joined()
        )

        expectFlashError(.io, path: path, mentioning: ["injected failure", "nothing was changed"]) {
            try store.apply(change)
        }
        try rawSQL(path, "DROP TRIGGER fail_insert; DROP TRIGGER fail_update; DROP TRIGGER fail_delete;")
        #expect(try store.load() == before)
        #expect(try store.events() == events)

        // The store is still usable, and the same change now goes through whole.
        try store.apply(change)
        #expect(try store.load().bootCount == 2)
        #expect(try store.load().parameters == change.parameters)
    }

    @Test func aTableDroppedUnderTheStoreRollsBackEverything() throws {
        let (store, before, events, change) = try prepare()
        var definition = ""
        try store.connection.query("SELECT sql FROM sqlite_schema WHERE name = 'events'", table: "test") {
            (row) throws(FlashError) in definition = try row.text(0)
        }
        try rawSQL(path, "CREATE TABLE events_copy AS SELECT * FROM events; DROP TABLE events;")

        expectFlashError(.corrupt, path: path, mentioning: ["no such table: events"]) { try store.apply(change) }

        try rawSQL(path, "\(definition); INSERT INTO events SELECT * FROM events_copy; DROP TABLE events_copy;")
        #expect(try store.load() == before)
        #expect(try store.events() == events)
    }

    @Test func aValueTheSchemaRefusesRollsBackEverything() throws {
        let (store, before, events, original) = try prepare()
        var change = original
        change.bootCount = -1  // CHECK (boot_count >= 0)
        expectFlashError(.io, path: path, mentioning: ["CHECK constraint failed"]) { try store.apply(change) }
        #expect(try store.load() == before)
        #expect(try store.events() == events)

        // The root certificate slots of spec §5 are 1...3: a fourth is refused, with everything else.
        change = original
        change.rootCertificates.append(RootCertificate(slot: 4, url: "https://p/ca4.pem", pem: [], savedAt: at(1)))
        expectFlashError(.io, path: path, mentioning: ["CHECK constraint failed"]) { try store.apply(change) }
        #expect(try store.load() == before)
        #expect(try store.events() == events)
    }

    @Test func aFailedFactoryResetChangesNothing() throws {
        let (store, before, events, _) = try prepare()
        try rawSQL(path, "CREATE TRIGGER fail BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'injected'); END;")
        expectFlashError(.io, path: path, mentioning: ["injected"]) {
            try store.factoryReset(event: LogEntry(at: at(1), boot: 1, kind: "factory-reset", message: "Reset"))
        }
        try rawSQL(path, "DROP TRIGGER fail")
        #expect(try store.load() == before)
        #expect(try store.events() == events)
    }

    /// A crash in the middle of writing: the image and its journal as they were at that instant (copied while a
    /// writer has already spilled new pages into the image) open as the old state, whole.
    @Test func anImageCopiedMidWriteWithItsJournalOpensAsTheOldState() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        try store.apply(everyPartChanges(boot: 1))
        let before = try store.load()
        let events = try store.events()
        store.close()
        let original = try Data(contentsOf: URL(fileURLWithPath: path))

        let writer = try SQLiteConnection(path: path, mode: .readWrite)
        defer { writer.close() }
        // A tiny cache forces SQLite to write changed pages into the image before COMMIT.
        try writer.execute(
            """
            PRAGMA cache_size = 2; BEGIN IMMEDIATE;
            UPDATE state SET boot_count = 99; DELETE FROM parameters; UPDATE saved_files SET body = randomblob(20000);
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
            INSERT INTO events (at, boot, level, kind, message) SELECT i, 99, 'info', 'k', 'm' FROM n;
            """
        )
        let crashed = directory.file("crashed.flash")
        try FileManager.default.copyItem(atPath: path, toPath: crashed)
        try FileManager.default.copyItem(atPath: path + "-journal", toPath: crashed + "-journal")
        try writer.execute("ROLLBACK")
        #expect(try Data(contentsOf: URL(fileURLWithPath: crashed)) != original)  // it really was half-written

        let recovered = try FlashStore.open(at: crashed)
        #expect(try recovered.load() == before)
        #expect(try recovered.events() == events)
        try recovered.integrityCheck()
        #expect(!FileManager.default.fileExists(atPath: crashed + "-journal"))
    }
}
