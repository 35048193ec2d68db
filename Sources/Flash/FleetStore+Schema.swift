// The fleet store's schema: the tables of a flash image, each keyed by the phone's MAC as well, and (from schema 2)
// the saved files' bodies kept once per distinct content. Storage/README.md ("Fleet stores") documents every
// difference from the image; keep the two in step. A change to any table of either is a new schema version of both.

extension FleetStore {
    /// The tables of schema v1: the same names as in a flash image (`FlashStore.tables`).
    static let tablesV1 = FlashStore.tables
    /// The tables of schema v2: those, and `bodies`.
    static let tables = FlashStore.tables + ["bodies"]
    /// The indexes every schema-2 store has.
    static let indexes = ["events_by_phone", "bodies_by_hash"]

    /// Schema v1, as vphone made it before schema 2: kept to describe what `migrateFromV1` upgrades (and for tests).
    static let schemaV1 = """
        \(phoneTables)
        \(savedFilesV1)
        \(historyTables)
        PRAGMA application_id = \(applicationID);
        PRAGMA user_version = 1;
        """

    /// The tables of schema v2, and its stamp; `create` runs it inside its transaction.
    ///
    /// Small rows are clustered by `(mac, ...)` (WITHOUT ROWID), so one phone's rows sit on a few pages; the tables
    /// holding file bodies keep a rowid, as SQLite advises for large rows. A saved file's body is a row of `bodies`,
    /// one per distinct content (found by `hash`, confirmed byte for byte), so the product, master and initial files
    /// every phone saves are stored once. `events` keeps its global `id` (rows are appended at the end of the table,
    /// which keeps a batch's journal small) and numbers each phone's entries with `seq`, so trimming one phone's log
    /// is an index range delete.
    static let schemaV2 = """
        \(phoneTables)
        \(bodiesTable)
        \(savedFilesV2)
        \(historyTables)
        PRAGMA application_id = \(applicationID);
        PRAGMA user_version = 2;
        """

    /// `identity` and `state`: the same in both versions.
    private static let phoneTables = """
        CREATE TABLE identity (
            mac        TEXT    NOT NULL PRIMARY KEY,
            model      TEXT    NOT NULL,
            firmware   TEXT    NOT NULL,
            created_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE state (
            mac        TEXT    NOT NULL PRIMARY KEY,
            boot_count INTEGER NOT NULL CHECK (boot_count >= 0)
        ) WITHOUT ROWID;
        """

    private static let savedFilesV1 = """
        CREATE TABLE saved_files (
            mac      TEXT    NOT NULL,
            kind     TEXT    NOT NULL,
            url      TEXT    NOT NULL,
            body     BLOB    NOT NULL,
            saved_at INTEGER NOT NULL,
            PRIMARY KEY (mac, kind)
        );
        """

    /// Schema 2's one new table: each distinct saved body once.
    private static let bodiesTable = """
        CREATE TABLE bodies (
            id   INTEGER PRIMARY KEY,
            hash INTEGER NOT NULL,
            body BLOB    NOT NULL
        );
        CREATE INDEX bodies_by_hash ON bodies (hash);
        """

    static let savedFilesV2 = """
        CREATE TABLE saved_files (
            mac      TEXT    NOT NULL,
            kind     TEXT    NOT NULL,
            url      TEXT    NOT NULL,
            body_id  INTEGER NOT NULL,
            saved_at INTEGER NOT NULL,
            PRIMARY KEY (mac, kind)
        ) WITHOUT ROWID;
        """

    /// `parameters` to `events`: the same in both versions.
    private static let historyTables = """
        CREATE TABLE parameters (
            mac    TEXT NOT NULL,
            name   TEXT NOT NULL,
            value  TEXT NOT NULL,
            source TEXT NOT NULL,
            perm   TEXT NOT NULL,
            access TEXT NOT NULL,
            PRIMARY KEY (mac, name)
        ) WITHOUT ROWID;
        CREATE TABLE local_edits (
            mac       TEXT    NOT NULL,
            name      TEXT    NOT NULL,
            value     TEXT    NOT NULL,
            edited_at INTEGER NOT NULL,
            PRIMARY KEY (mac, name)
        ) WITHOUT ROWID;
        CREATE TABLE timers (
            mac    TEXT    NOT NULL,
            kind   TEXT    NOT NULL,
            due_at INTEGER NOT NULL,
            PRIMARY KEY (mac, kind)
        ) WITHOUT ROWID;
        CREATE TABLE file_status (
            mac     TEXT    NOT NULL,
            kind    TEXT    NOT NULL,
            url     TEXT    NOT NULL,
            outcome TEXT    NOT NULL,
            reason  TEXT    NOT NULL,
            at      INTEGER NOT NULL,
            PRIMARY KEY (mac, kind)
        ) WITHOUT ROWID;
        CREATE TABLE file_key (
            mac          TEXT    NOT NULL PRIMARY KEY,
            key          TEXT    NOT NULL,
            installed_at INTEGER NOT NULL,
            source_url   TEXT    NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE root_certificates (
            mac      TEXT    NOT NULL,
            slot     INTEGER NOT NULL CHECK (slot BETWEEN 1 AND 3),
            url      TEXT    NOT NULL,
            pem      BLOB    NOT NULL,
            saved_at INTEGER NOT NULL,
            PRIMARY KEY (mac, slot)
        );
        CREATE TABLE events (
            id      INTEGER PRIMARY KEY,
            mac     TEXT    NOT NULL,
            seq     INTEGER NOT NULL,
            at      INTEGER NOT NULL,
            boot    INTEGER NOT NULL,
            level   TEXT    NOT NULL,
            kind    TEXT    NOT NULL,
            message TEXT    NOT NULL,
            fields  TEXT    NOT NULL DEFAULT '{}'
        );
        CREATE UNIQUE INDEX events_by_phone ON events (mac, seq);
        """

    /// Schema 1 to 2, in one transaction: every saved body moves into `bodies`, once per distinct content.
    static func migrateFromV1(_ connection: SQLiteConnection) throws(FlashError) {
        try connection.transaction(.immediate) { () throws(FlashError) in
            try connection.execute(
                """
                \(bodiesTable)
                ALTER TABLE saved_files RENAME TO saved_files_v1;
                \(savedFilesV2)
                """
            )
            try connection.query(
                "SELECT mac, kind, url, body, saved_at FROM saved_files_v1",
                table: "saved_files"
            ) { (row) throws(FlashError) in
                let id = try bodyID(for: try row.blob(3), in: connection)
                try connection.run(
                    "INSERT INTO saved_files (mac, kind, url, body_id, saved_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    try row.text(0),
                    try row.text(1),
                    try row.text(2),
                    id,
                    try row.int64(4)
                )
            }
            try connection.execute("DROP TABLE saved_files_v1; PRAGMA user_version = 2;")
        }
    }

    /// The row of `bodies` holding exactly `body`, made if there is none.
    static func bodyID(for body: [UInt8], in connection: SQLiteConnection) throws(FlashError) -> Int64 {
        let hash = contentHash(body)
        var found: Int64?
        try connection.query(
            "SELECT id FROM bodies WHERE hash = ?1 AND body = ?2 LIMIT 1",
            table: "bodies",
            cached: true,
            hash,
            body
        ) { (row) throws(FlashError) in found = try row.int64(0) }
        if let found { return found }
        var id: Int64 = 0
        try connection.query(
            "INSERT INTO bodies (hash, body) VALUES (?1, ?2) RETURNING id",
            table: "bodies",
            cached: true,
            hash,
            body
        ) { (row) throws(FlashError) in id = try row.int64(0) }
        return id
    }

    /// `bodies.hash`: 64-bit FNV-1a of the bytes, as a signed integer (an index to find a body by; equal hashes are
    /// confirmed by comparing the bodies).
    static func contentHash(_ body: [UInt8]) -> Int64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in body {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01B3
        }
        return Int64(bitPattern: h)
    }

    /// Deletes the bodies no saved file refers to any more (replaced or reset phones' old copies).
    static func deleteUnusedBodies(_ connection: SQLiteConnection) throws(FlashError) {
        try connection.transaction(.immediate) { () throws(FlashError) in
            try connection.execute("DELETE FROM bodies WHERE id NOT IN (SELECT body_id FROM saved_files)")
        }
    }

    /// Checks what a file says it is before anything reads its tables; tells a single phone's image apart.
    ///
    /// - Returns: the store's schema version: 1 (read as it is, upgraded by `migrateFromV1` when opened to write) or 2.
    static func checkHeader(_ connection: SQLiteConnection) throws(FlashError) -> Int {
        let path = connection.path
        // The first read of the file: SQLite reports a damaged header or a truncated file here, and rolls back a
        // hot journal left by a crash (a batch cut in half).
        var applicationID: Int64 = 0
        var version: Int64 = 0
        try connection.query("PRAGMA application_id", table: "(header)") { (row) throws(FlashError) in
            applicationID = try row.int64(0)
        }
        try connection.query("PRAGMA user_version", table: "(header)") { (row) throws(FlashError) in
            version = try row.int64(0)
        }
        if applicationID == Int64(FlashStore.applicationID) {
            throw FlashError(
                kind: .notAnImage,
                path: path,
                message: "\(path) is a single phone's flash image, not a fleet store: use it as an image (vphone "
                    + "boot --flash, vphone flash info); a fleet store is the file of vphone fleet --store"
            )
        }
        guard applicationID == Int64(Self.applicationID) else {
            throw FlashError(
                kind: .notAnImage,
                path: path,
                message: "\(path) is an SQLite database but not a vphone fleet store (its application_id is "
                    + "\(applicationID), not \(Self.applicationID) 'VPHF'): check the path"
            )
        }
        if version > Int64(schemaVersion) {
            throw FlashError(
                kind: .newerSchema,
                path: path,
                message: "fleet store \(path) was written by a newer vphone (schema \(version)); this vphone reads "
                    + "up to schema \(schemaVersion): upgrade vphone"
            )
        }
        if version < 1 {
            throw FlashError(
                kind: .olderSchema,
                path: path,
                message: "fleet store \(path) was written by an older vphone (schema \(version)); this vphone reads "
                    + "schema 1 to \(schemaVersion) and has no upgrade from schema \(version): open it with the vphone "
                    + "that wrote it, or start the fleet on a new store"
            )
        }
        var present = Set<String>()
        try connection.query("SELECT name FROM sqlite_schema WHERE type IN ('table', 'index')", table: "sqlite_schema")
        { (row) throws(FlashError) in present.insert(try row.text(0)) }
        let required = version == 1 ? tablesV1 + ["events_by_phone"] : tables + indexes
        let missing = required.filter { !present.contains($0) }
        guard missing.isEmpty else {
            throw damaged(
                path,
                "it has no table or index \(missing.joined(separator: ", ")) (schema \(version) has all of "
                    + required.joined(separator: ", ") + ")"
            )
        }
        return Int(version)
    }

    /// Settings of the store's connection, before it reads anything: those of an image, with a larger page cache
    /// (one connection serves the whole fleet). A batch of 10,000 phones touches about 60 MB of pages; the cache
    /// spills into the file (after a journal fsync) when full. 2, 8 and 64 MiB measured alike, so 8 MiB bounds the
    /// memory of a batch; the cache is handed back after each batch, like an image's.
    static func configureReading(_ connection: SQLiteConnection) throws(FlashError) {
        try FlashStore.configureReading(connection)
        try connection.execute("PRAGMA cache_size = -\(cacheKibibytes)")
    }

    /// Settings of a connection that writes, once the file is known to be a fleet store: those of an image
    /// (rollback journal, synchronous=FULL), with `secure_delete=FAST`, which zeroes deleted content only on pages
    /// a batch writes anyway: FULL would rewrite every freed page of every replaced parameter table, each batch.
    static func configureWriting(_ connection: SQLiteConnection) throws(FlashError) {
        try FlashStore.configureWriting(connection)
        try connection.execute("PRAGMA secure_delete = FAST")
    }

    /// A `corrupt` error that says "fleet store".
    static func damaged(_ path: String, _ detail: String) -> FlashError {
        FlashError(
            kind: .corrupt,
            path: path,
            message: "fleet store \(path) is damaged: \(detail); restore it from a copy, or start the fleet on a new "
                + "store (extract the phones you need first with vphone flash extract)"
        )
    }
}
