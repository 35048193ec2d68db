import Foundation
import Testing

@testable import Flash

/// `RepeatedStatement` binds its texts without copies (SQLITE_STATIC) from a buffer that lives only for one run: these
/// check that every run stores exactly its own texts, whatever their lengths, and that nothing bound outlives the loop.
@Suite("SQLite: a statement run many times in a row")
struct RepeatedStatementTests {
    let path = NSTemporaryDirectory() + "vphone-repeated-\(UUID().uuidString).db"

    private func connection() throws -> SQLiteConnection {
        let connection = try SQLiteConnection(path: path, mode: .readWriteCreate)
        try connection.execute(
            "CREATE TABLE t (k TEXT NOT NULL, a TEXT NOT NULL, b TEXT NOT NULL, c TEXT NOT NULL, PRIMARY KEY (k, a))"
        )
        return connection
    }

    private func rows(_ connection: SQLiteConnection) throws -> [[String]] {
        var out: [[String]] = []
        try connection.query("SELECT k, a, b, c FROM t ORDER BY rowid", table: "t") { (row) throws(FlashError) in
            out.append([try row.text(0), try row.text(1), try row.text(2), try row.text(3)])
        }
        return out
    }

    @Test func everyRunStoresItsOwnTextsExactly() throws {
        defer { try? FileManager.default.removeItem(atPath: path) }
        let connection = try connection()
        defer { connection.close() }
        // Empty, small (kept inside the String), long (on the heap), non-ASCII, and a text longer than the last
        // run's after a shorter one: a run must never see bytes of another.
        let texts: [(String, String, String)] = [
            ("", "", ""),
            ("a", "", "short"),
            ("name-\(String(repeating: "x", count: 40))", String(repeating: "long value ", count: 1_000), ""),
            ("é", "naïve 日本語 🎉", "ü"),
            ("b", "", String(repeating: "z", count: 17)),
            ("c", "tail", ""),
        ]
        let sql = "INSERT INTO t (k, a, b, c) VALUES (?1, ?2, ?3, ?4)"
        try connection.repeating(sql) { (insert) throws(FlashError) in
            try insert.bind("KEY", at: 1)
            for (a, b, c) in texts { try insert.run(a, b, c, from: 2) }
        }
        #expect(try rows(connection) == texts.map { ["KEY", $0.0, $0.1, $0.2] })

        // The same cached statement run the ordinary way afterwards binds afresh: nothing of the loop is left bound.
        try connection.run(sql, cached: true, "OTHER", "d", "e", "f")
        #expect(try rows(connection).last == ["OTHER", "d", "e", "f"])
    }

    @Test func aFailedRunThrowsNamingTheFileAndTheStatementRunsAgain() throws {
        defer { try? FileManager.default.removeItem(atPath: path) }
        let connection = try connection()
        defer { connection.close() }
        let sql = "INSERT INTO t (k, a, b, c) VALUES (?1, ?2, ?3, ?4)"
        try connection.repeating(sql) { (insert) throws(FlashError) in
            try insert.bind("KEY", at: 1)
            try insert.run("same", "1", "2", from: 2)
            do throws(FlashError) {
                try insert.run("same", "3", "4", from: 2)
                Issue.record("a duplicate key was inserted")
            } catch {
                #expect(error.message.contains(path))
                #expect(error.message.contains("UNIQUE"))
            }
            // Reset after the failure: the next run works.
            try insert.run("other", "5", "6", from: 2)
        }
        #expect(try rows(connection) == [["KEY", "same", "1", "2"], ["KEY", "other", "5", "6"]])
    }
}
