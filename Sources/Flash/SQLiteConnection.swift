import CSQLite

// The only file that calls SQLite (ARCHITECTURE rule 3). Every result code goes through
// `SQLiteConnection.check`, which turns it into a `FlashError` carrying `sqlite3_errmsg`.

/// One SQLite connection to one flash image. Not thread-safe: owned by one `FlashStore`.
final class SQLiteConnection {
    enum Mode {
        case readOnly, readWrite
        /// Creates the file if missing; only for tests that need a foreign database.
        case readWriteCreate

        var flags: Int32 {
            switch self {
            case .readOnly: return SQLITE_OPEN_READONLY
            case .readWrite: return SQLITE_OPEN_READWRITE
            case .readWriteCreate: return SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
            }
        }
    }

    enum TransactionKind {
        /// Takes the write lock at once, waiting for other writers up to the busy timeout.
        case immediate
        /// For reads: a consistent view across several statements.
        case deferred
    }

    /// How long a statement waits for another process's lock (e.g. `vphone config set` on a running phone).
    static let busyTimeoutMilliseconds: Int32 = 5000

    let path: String
    private var handle: OpaquePointer?
    /// The hot statements, prepared once per connection.
    private var cache: [String: Statement] = [:]

    init(path: String, mode: Mode) throws(FlashError) {
        self.path = path
        var db: OpaquePointer?
        // NOMUTEX: a connection is owned by one phone runtime at a time, so SQLite's own locking is wasted.
        let rc = sqlite3_open_v2(path, &db, mode.flags | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE, nil)
        guard rc == SQLITE_OK, let db else {
            let detail = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            // sqlite3_close_v2 always returns SQLITE_OK; a failed open may still have allocated a handle.
            _ = sqlite3_close_v2(db)
            throw FlashError.sqlite(code: rc, detail: detail, path: path)
        }
        handle = db
        do {
            try check(sqlite3_busy_timeout(db, Self.busyTimeoutMilliseconds))
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// Finalizes every statement and closes the connection. Idempotent.
    func close() {
        for statement in cache.values { statement.finalize() }
        cache.removeAll()
        // sqlite3_close_v2 always returns SQLITE_OK (it defers the close while a statement is alive).
        if let handle { _ = sqlite3_close_v2(handle) }
        handle = nil
    }

    // MARK: - The funnel

    /// Throws the `FlashError` for any result code other than OK, ROW and DONE.
    func check(_ rc: Int32) throws(FlashError) {
        switch rc {
        case SQLITE_OK, SQLITE_ROW, SQLITE_DONE: return
        default: throw error(rc)
        }
    }

    func error(_ rc: Int32) -> FlashError {
        let detail = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
        return FlashError.sqlite(code: rc, detail: detail, path: path)
    }

    private func liveHandle() throws(FlashError) -> OpaquePointer {
        guard let handle else { throw FlashError.closed(path) }
        return handle
    }

    // MARK: - Running SQL

    /// Runs one or more statements that bind nothing and whose rows, if any, are not needed (DDL, pragmas).
    func execute(_ sql: String) throws(FlashError) {
        try check(sqlite3_exec(try liveHandle(), sql, nil, nil, nil))
    }

    /// Runs one statement with its arguments bound in order, stepping it to completion.
    ///
    /// - Parameter cached: keep the prepared statement for the next call (the hot statements of `apply`).
    func run(_ sql: String, cached: Bool = false, _ arguments: any SQLBindable...) throws(FlashError) {
        try withStatement(sql, cached: cached) { (statement) throws(FlashError) in
            try statement.bind(arguments)
            while try statement.step() {}
        }
    }

    /// Runs `body` with the cached statement `sql`, which it runs many times in a row (`RepeatedStatement`): no lookup of
    /// the statement, no argument array and no copy of a text per run.
    func repeating<R>(_ sql: String, _ body: (RepeatedStatement) throws(FlashError) -> R) throws(FlashError) -> R {
        try withStatement(sql, cached: true) { (statement) throws(FlashError) in
            try body(RepeatedStatement(statement: statement))
        }
    }

    /// Runs one query, calling `row` for each result row.
    ///
    /// - Parameters:
    ///   - table: names the table in the message when a column holds a value this vphone cannot read.
    ///   - cached: keep the prepared statement for the next call (the fleet store's per-phone reads).
    func query(
        _ sql: String,
        table: String,
        cached: Bool = false,
        _ arguments: any SQLBindable...,
        row: (Row) throws(FlashError) -> Void
    ) throws(FlashError) {
        try withStatement(sql, cached: cached) { (statement) throws(FlashError) in
            try statement.bind(arguments)
            let current = Row(statement: statement, table: table)
            while try statement.step() { try row(current) }
        }
    }

    /// Runs `body` inside one transaction: COMMIT when it returns, ROLLBACK when anything throws.
    func transaction<R>(_ kind: TransactionKind, _ body: () throws(FlashError) -> R) throws(FlashError) -> R {
        try run(kind == .immediate ? "BEGIN IMMEDIATE" : "BEGIN", cached: true)
        do {
            let result = try body()
            try run("COMMIT", cached: true)
            // Fleet mode keeps 10,000 images open: hand the page cache back between transactions (148 -> 63 KiB
            // resident per image, measured). The next transaction re-reads a few pages from the OS cache, far
            // less than the commit's fsync. Always returns SQLITE_OK.
            if let handle { _ = sqlite3_db_release_memory(handle) }
            return result
        } catch {
            throw rollback(after: error)
        }
    }

    /// Rolls back the open transaction, if SQLite has not already done so, and returns the error to throw.
    private func rollback(after failure: FlashError) -> FlashError {
        guard let handle, sqlite3_get_autocommit(handle) == 0 else { return failure }
        do {
            try run("ROLLBACK", cached: true)
            return failure
        } catch {
            var both = failure
            both.message += " (and the rollback failed too: \(error.message))"
            return both
        }
    }

    private func withStatement<R>(
        _ sql: String,
        cached: Bool,
        _ body: (Statement) throws(FlashError) -> R
    ) throws(FlashError) -> R {
        let statement: Statement
        if cached, let hit = cache[sql] {
            statement = hit
        } else {
            statement = try prepare(sql, persistent: cached)
            if cached { cache[sql] = statement }
        }
        // A statement left un-reset keeps its read lock: reset (or finalize) it before anything else runs.
        defer { cached ? statement.reset() : statement.finalize() }
        return try body(statement)
    }

    private func prepare(_ sql: String, persistent: Bool) throws(FlashError) -> Statement {
        var raw: OpaquePointer?
        let flags = persistent ? UInt32(SQLITE_PREPARE_PERSISTENT) : 0
        try check(sqlite3_prepare_v3(try liveHandle(), sql, -1, flags, &raw, nil))
        guard let raw else { throw FlashError.io(path, "empty SQL statement (a vphone bug)") }
        return Statement(handle: raw, connection: self)
    }
}

// MARK: - Statements

/// A prepared statement. Lives inside `SQLiteConnection`; nothing outside this file holds its pointer.
final class Statement {
    fileprivate let handle: OpaquePointer
    fileprivate unowned let connection: SQLiteConnection

    fileprivate init(handle: OpaquePointer, connection: SQLiteConnection) {
        self.handle = handle
        self.connection = connection
    }

    /// True for a row, false when done.
    fileprivate func step() throws(FlashError) -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw connection.error(rc)
    }

    // sqlite3_reset and sqlite3_finalize return the code of the last step, which step() has already thrown.
    fileprivate func reset() { _ = sqlite3_reset(handle) }
    fileprivate func finalize() { _ = sqlite3_finalize(handle) }

    fileprivate func bind(_ arguments: [any SQLBindable]) throws(FlashError) {
        for (offset, argument) in arguments.enumerated() { try argument.bind(to: self, at: Int32(offset + 1)) }
    }

    // MARK: Typed binds

    func bind(_ value: Int64, at index: Int32) throws(FlashError) {
        try connection.check(sqlite3_bind_int64(handle, index, value))
    }

    func bindNull(at index: Int32) throws(FlashError) {
        try connection.check(sqlite3_bind_null(handle, index))
    }

    func bind(_ value: String, at index: Int32) throws(FlashError) {
        var value = value
        let rc = value.withUTF8 { utf8 -> Int32 in
            // A nil base address would bind NULL, not the empty string.
            guard let base = utf8.baseAddress else {
                return sqlite3_bind_text(handle, index, "", 0, vphone_sqlite_transient())
            }
            return base.withMemoryRebound(to: CChar.self, capacity: utf8.count) {
                sqlite3_bind_text(handle, index, $0, Int32(utf8.count), vphone_sqlite_transient())
            }
        }
        try connection.check(rc)
    }

    func bind(_ value: [UInt8], at index: Int32) throws(FlashError) {
        let rc = value.withUnsafeBytes { bytes -> Int32 in
            // A nil pointer would bind NULL: an empty body is a zero-length blob.
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return sqlite3_bind_zeroblob(handle, index, 0) }
            return sqlite3_bind_blob(handle, index, base, Int32(bytes.count), vphone_sqlite_transient())
        }
        try connection.check(rc)
    }
}

/// One cached statement its caller runs many times in a row (`SQLiteConnection.repeating`): the fleet store's hundreds
/// of parameter rows a phone, where copying every text into an allocation of SQLite's own (SQLITE_TRANSIENT) and
/// boxing every argument cost as much as the inserts' own work.
struct RepeatedStatement {
    fileprivate let statement: Statement

    /// Binds `texts` at parameters 1, 2, ... and runs the statement to its end. The texts are copied back to back into
    /// a buffer on the stack, which SQLite reads in place (SQLITE_STATIC) during the run; the bindings are cleared
    /// before the buffer goes, so none ever points at freed memory.
    func run(_ texts: String...) throws(FlashError) {
        var total = 1  // a NUL after the texts: no pointer into the buffer is ever nil, not even an empty text's
        for text in texts { total += text.utf8.count }
        let handle = statement.handle
        let failure = withUnsafeTemporaryAllocation(of: CChar.self, capacity: total) { buffer -> FlashError? in
            guard let base = buffer.baseAddress else { return statement.connection.error(SQLITE_NOMEM) }
            var rc = SQLITE_OK
            var start = 0
            for (offset, text) in texts.enumerated() where rc == SQLITE_OK {
                // As `Statement.bind` reads a text: `withUTF8` makes it contiguous if it is not.
                var text = text
                let count = text.withUTF8 { utf8 -> Int in
                    if let source = utf8.baseAddress {
                        UnsafeMutableRawPointer(base + start).copyMemory(from: source, byteCount: utf8.count)
                    }
                    return utf8.count
                }
                // A nil destructor is SQLITE_STATIC: the text is read in place, and only during this run.
                rc = sqlite3_bind_text(handle, Int32(offset + 1), base + start, Int32(count), nil)
                start += count
            }
            base[start] = 0
            if rc == SQLITE_OK {
                rc = sqlite3_step(handle)
                while rc == SQLITE_ROW { rc = sqlite3_step(handle) }
            }
            // The message before the reset; the reset before the next run; no binding left into this buffer.
            let failure = rc == SQLITE_DONE ? nil : statement.connection.error(rc)
            statement.reset()
            _ = sqlite3_clear_bindings(handle)  // always SQLITE_OK
            return failure
        }
        if let failure { throw failure }
    }
}

/// A value that can be bound to a statement parameter.
protocol SQLBindable {
    func bind(to statement: Statement, at index: Int32) throws(FlashError)
}

extension Int64: SQLBindable {
    func bind(to statement: Statement, at index: Int32) throws(FlashError) { try statement.bind(self, at: index) }
}

extension Int: SQLBindable {
    func bind(to statement: Statement, at index: Int32) throws(FlashError) {
        try statement.bind(Int64(self), at: index)
    }
}

extension String: SQLBindable {
    func bind(to statement: Statement, at index: Int32) throws(FlashError) { try statement.bind(self, at: index) }
}

extension Array: SQLBindable where Element == UInt8 {
    func bind(to statement: Statement, at index: Int32) throws(FlashError) { try statement.bind(self, at: index) }
}

extension Optional: SQLBindable where Wrapped: SQLBindable {
    func bind(to statement: Statement, at index: Int32) throws(FlashError) {
        if let value = self { try value.bind(to: statement, at: index) } else { try statement.bindNull(at: index) }
    }
}

// MARK: - Rows

/// The current row of a query. Every accessor checks the stored type, so a hand-edited or damaged image
/// becomes a `corrupt` error naming table, column and value, never a crash or a silent zero.
struct Row {
    fileprivate let statement: Statement
    let table: String

    private var handle: OpaquePointer { statement.handle }
    private var path: String { statement.connection.path }

    func int64(_ column: Int32) throws(FlashError) -> Int64 {
        guard sqlite3_column_type(handle, column) == SQLITE_INTEGER else { throw wrongType(column, "an integer") }
        return sqlite3_column_int64(handle, column)
    }

    func int(_ column: Int32) throws(FlashError) -> Int { Int(try int64(column)) }

    /// Whether the column is NULL (an outer join that found no row).
    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    func text(_ column: Int32) throws(FlashError) -> String {
        guard sqlite3_column_type(handle, column) == SQLITE_TEXT else { throw wrongType(column, "text") }
        return rawText(column)
    }

    /// A BLOB column; TEXT is accepted too, as the bytes of the text (a body edited in by hand).
    func blob(_ column: Int32) throws(FlashError) -> [UInt8] {
        let type = sqlite3_column_type(handle, column)
        guard type == SQLITE_BLOB || type == SQLITE_TEXT else { throw wrongType(column, "a blob") }
        // sqlite3_column_blob before sqlite3_column_bytes, as SQLite documents.
        let base = sqlite3_column_blob(handle, column)
        let count = Int(sqlite3_column_bytes(handle, column))
        guard let base, count > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// A TEXT column holding the raw value of `E`.
    func value<E: RawRepresentable>(_ type: E.Type, _ column: Int32) throws(FlashError) -> E
    where E.RawValue == String {
        let raw = try text(column)
        guard let value = E(rawValue: raw) else { throw unknown(column, raw) }
        return value
    }

    /// The error for a value of the right type whose content this vphone cannot use.
    func unknown(_ column: Int32, _ value: String, expected: String? = nil) -> FlashError {
        let what = expected.map { "which is not \($0)" } ?? "which this vphone does not know"
        return FlashError.corrupt(
            path,
            "table \(table), column \(columnName(column)) holds '\(Self.excerpt(value))', \(what)"
        )
    }

    /// At most 40 characters of a value, for a message.
    static func excerpt(_ value: String) -> String { value.count <= 40 ? value : value.prefix(40) + "..." }

    private func wrongType(_ column: Int32, _ expected: String) -> FlashError {
        let found: String
        switch sqlite3_column_type(handle, column) {
        case SQLITE_NULL: found = "NULL"
        case SQLITE_INTEGER: found = "the integer \(sqlite3_column_int64(handle, column))"
        case SQLITE_FLOAT: found = "the real \(sqlite3_column_double(handle, column))"
        case SQLITE_TEXT: found = "the text '\(Self.excerpt(rawText(column)))'"
        default: found = "a blob"
        }
        return FlashError.corrupt(
            path,
            "table \(table), column \(columnName(column)) holds \(found) where \(expected) belongs"
        )
    }

    private func rawText(_ column: Int32) -> String {
        guard let base = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: base, count: count), as: UTF8.self)
    }

    private func columnName(_ column: Int32) -> String {
        sqlite3_column_name(handle, column).map { String(cString: $0) } ?? "#\(column)"
    }
}
