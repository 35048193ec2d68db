import Foundation
import Testing

@testable import Flash

/// `RepeatedStatement` binds its texts without copies (SQLITE_STATIC) from a buffer that lives only for one run: these
/// check that every run stores exactly its own texts, whatever their lengths, and that nothing bound outlives the loop.
@Suite("SQLite: a statement run many times in a row")
struct RepeatedStatementTests {
    let directory: TemporaryDirectory
    let path: String

    init() throws {
        directory = try TemporaryDirectory()
        path = directory.file("repeated.db")
    }

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
            for (a, b, c) in texts { try insert.run("KEY", a, b, c) }
        }
        #expect(try rows(connection) == texts.map { ["KEY", $0.0, $0.1, $0.2] })
    }

    @Test func noTextStaysBoundAfterARun() throws {
        let connection = try connection()
        defer { connection.close() }
        try connection.execute("CREATE TABLE n (k TEXT, a TEXT, b TEXT)")
        let sql = "INSERT INTO n (k, a, b) VALUES (?1, ?2, ?3)"
        try connection.repeating(sql) { (insert) throws(FlashError) in
            try insert.run("K1", "a text long enough to live on the heap, not inside the String", "b")
            // Only the first parameter this time: the others were cleared after the last run, so they are NULL, not
            // pointers into that run's buffer.
            try insert.run("K2")
        }
        // The same cached statement, binding only ?1 the ordinary way: nothing of the loop is left bound either.
        try connection.run(sql, cached: true, "K3")
        var nulls: [String] = []
        try connection.query("SELECT k FROM n WHERE a IS NULL AND b IS NULL ORDER BY k", table: "n") {
            (row) throws(FlashError) in nulls.append(try row.text(0))
        }
        #expect(nulls == ["K2", "K3"])
    }

    @Test func aFailedRunThrowsNamingTheFileAndTheStatementRunsAgain() throws {
        let connection = try connection()
        defer { connection.close() }
        let sql = "INSERT INTO t (k, a, b, c) VALUES (?1, ?2, ?3, ?4)"
        try connection.repeating(sql) { (insert) throws(FlashError) in
            try insert.run("KEY", "same", "1", "2")
            expectFlashError(.io, path: path, mentioning: ["UNIQUE"]) { try insert.run("KEY", "same", "3", "4") }
            // Reset after the failure: the next run works.
            try insert.run("KEY", "other", "5", "6")
        }
        #expect(try rows(connection) == [["KEY", "same", "1", "2"], ["KEY", "other", "5", "6"]])
    }
}
