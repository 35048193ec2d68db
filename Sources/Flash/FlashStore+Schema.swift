// Schema v1 of a flash image. Storage/README.md documents every table and column; keep the two in step.
// A change to any table is a new schema version (FlashStore.schemaVersion) with a migration from the last.

extension FlashStore {
    /// The tables of schema v1, in the order `create` makes them.
    static let tables = [
        "identity", "state", "saved_files", "parameters", "local_edits", "timers", "file_status", "file_key",
        "root_certificates", "events",
    ]

    /// Makes the tables of schema v1 and stamps the image; run inside `create`'s transaction.
    static let schemaV1 = """
        CREATE TABLE identity (
            id         INTEGER PRIMARY KEY CHECK (id = 1),
            mac        TEXT    NOT NULL,
            model      TEXT    NOT NULL,
            firmware   TEXT    NOT NULL,
            created_at INTEGER NOT NULL
        );
        CREATE TABLE state (
            id         INTEGER PRIMARY KEY CHECK (id = 1),
            boot_count INTEGER NOT NULL CHECK (boot_count >= 0)
        );
        CREATE TABLE saved_files (
            kind     TEXT    NOT NULL PRIMARY KEY,
            url      TEXT    NOT NULL,
            body     BLOB    NOT NULL,
            saved_at INTEGER NOT NULL
        );
        CREATE TABLE parameters (
            name   TEXT NOT NULL PRIMARY KEY,
            value  TEXT NOT NULL,
            source TEXT NOT NULL,
            perm   TEXT NOT NULL,
            access TEXT NOT NULL
        );
        CREATE TABLE local_edits (
            name      TEXT    NOT NULL PRIMARY KEY,
            value     TEXT    NOT NULL,
            edited_at INTEGER NOT NULL
        );
        CREATE TABLE timers (
            kind   TEXT    NOT NULL PRIMARY KEY,
            due_at INTEGER NOT NULL
        );
        CREATE TABLE file_status (
            kind    TEXT    NOT NULL PRIMARY KEY,
            url     TEXT    NOT NULL,
            outcome TEXT    NOT NULL,
            reason  TEXT    NOT NULL,
            at      INTEGER NOT NULL
        );
        CREATE TABLE file_key (
            id           INTEGER PRIMARY KEY CHECK (id = 1),
            key          TEXT    NOT NULL,
            installed_at INTEGER NOT NULL,
            source_url   TEXT    NOT NULL
        );
        CREATE TABLE root_certificates (
            slot     INTEGER PRIMARY KEY CHECK (slot BETWEEN 1 AND 3),
            url      TEXT    NOT NULL,
            pem      BLOB    NOT NULL,
            saved_at INTEGER NOT NULL
        );
        CREATE TABLE events (
            id      INTEGER PRIMARY KEY,
            at      INTEGER NOT NULL,
            boot    INTEGER NOT NULL,
            level   TEXT    NOT NULL,
            kind    TEXT    NOT NULL,
            message TEXT    NOT NULL,
            fields  TEXT    NOT NULL DEFAULT '{}'
        );
        PRAGMA application_id = \(applicationID);
        PRAGMA user_version = \(schemaVersion);
        """

    /// The oldest schema this vphone reads (and upgrades when it opens the image to write).
    static let oldestReadableSchema = 1

    /// Schema 2 changed no table of an image (it is the fleet store's content-addressed bodies; the two count
    /// together): an image of schema 1 is read as it is, and stamped 2 when opened to write.
    static func migrate(_ connection: SQLiteConnection) throws(FlashError) {
        try connection.transaction(.immediate) { () throws(FlashError) in
            try connection.execute("PRAGMA user_version = \(schemaVersion)")
        }
    }

    /// Checks what an image says it is before anything reads its tables.
    ///
    /// - Returns: the image's schema version (`oldestReadableSchema...schemaVersion`).
    static func checkHeader(_ connection: SQLiteConnection) throws(FlashError) -> Int {
        let path = connection.path
        // The first read of the file: SQLite reports a damaged header or a truncated file (its header counts
        // more pages than the file holds) here, and rolls back a hot journal left by a crash.
        var applicationID: Int64 = 0
        var version: Int64 = 0
        try connection.query("PRAGMA application_id", table: "(header)") { (row) throws(FlashError) in
            applicationID = try row.int64(0)
        }
        try connection.query("PRAGMA user_version", table: "(header)") { (row) throws(FlashError) in
            version = try row.int64(0)
        }
        if applicationID == Int64(FleetStore.applicationID) {
            throw FlashError(
                kind: .notAnImage,
                path: path,
                message: "\(path) is a vphone fleet store (the flash of many phones), not a single phone's flash "
                    + "image: pull one phone out with vphone flash extract \(path) --mac MAC --to IMAGE"
            )
        }
        guard applicationID == Int64(Self.applicationID) else {
            throw FlashError(
                kind: .notAnImage,
                path: path,
                message: "\(path) is an SQLite database but not a vphone flash image (its application_id is "
                    + "\(applicationID), not \(Self.applicationID) 'VPHN'): check the path"
            )
        }
        if version > Int64(schemaVersion) {
            throw FlashError(
                kind: .newerSchema,
                path: path,
                message: "flash image \(path) was written by a newer vphone (schema \(version)); this vphone reads "
                    + "up to schema \(schemaVersion): upgrade vphone"
            )
        }
        if version < Int64(oldestReadableSchema) {
            throw FlashError(
                kind: .olderSchema,
                path: path,
                message: "flash image \(path) was written by an older vphone (schema \(version)); this vphone reads "
                    + "schema \(oldestReadableSchema) to \(schemaVersion) and has no upgrade from schema \(version): "
                    + "open it with the vphone that wrote it, or factory-reset by deleting it"
            )
        }
        var present = Set<String>()
        try connection.query("SELECT name FROM sqlite_schema WHERE type = 'table'", table: "sqlite_schema") {
            (row) throws(FlashError) in present.insert(try row.text(0))
        }
        let missing = tables.filter { !present.contains($0) }
        guard missing.isEmpty else {
            throw FlashError.corrupt(
                path,
                "it has no table \(missing.joined(separator: ", ")) (schema \(schemaVersion) has all of "
                    + tables.joined(separator: ", ") + ")"
            )
        }
        return Int(version)
    }

    /// Settings of every connection, before it reads anything.
    static func configureReading(_ connection: SQLiteConnection) throws(FlashError) {
        // trusted_schema=OFF: an image from someone else may carry triggers or views; they must not call
        // functions with side effects. cache_size bounds one transaction's page cache (fleet mode keeps
        // thousands of images open).
        try connection.execute("PRAGMA trusted_schema = OFF; PRAGMA cell_size_check = ON; PRAGMA cache_size = -512")
    }

    /// Settings of a connection that writes, once the image is known to be ours. Rollback journal (not WAL),
    /// so an image at rest is one self-contained file; synchronous=FULL, so a commit survives power loss;
    /// secure_delete, so a factory reset or a replaced parameter leaves no old password in free pages of an
    /// image that users share.
    static func configureWriting(_ connection: SQLiteConnection) throws(FlashError) {
        try connection.execute("PRAGMA synchronous = FULL; PRAGMA secure_delete = ON")
        var mode = ""
        try connection.query("PRAGMA journal_mode = DELETE", table: "(header)") { (row) throws(FlashError) in
            mode = try row.text(0)
        }
        guard mode == "delete" else {
            throw FlashError(
                kind: .locked,
                path: connection.path,
                message: "flash image \(connection.path) is in journal mode '\(mode)' and could not be switched "
                    + "back to 'delete' (another process has it open): stop the other process and retry"
            )
        }
    }
}
