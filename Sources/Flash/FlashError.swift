import CSQLite

/// Why a flash image could not be opened, read or written.
///
/// `message` is meant for the user as it stands: it names the file, says what is wrong and how to fix it.
///
/// ```swift
/// do { _ = try FlashStore.open(at: "Storage/0080F0C571EB.flash") } catch { print(error) }
/// // flash image Storage/0080F0C571EB.flash was written by a newer vphone (schema 2); this vphone reads up to
/// // schema 1: upgrade vphone
/// ```
public struct FlashError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// No file at the path.
        case notFound
        /// `create` found a file already there.
        case alreadyExists
        /// An SQLite database, but not a vphone flash image (foreign `application_id`).
        case notAnImage
        /// Not an SQLite database at all (empty, random bytes, another format).
        case notSQLite
        /// Written by a newer vphone: its schema version is above ours.
        case newerSchema
        /// Written by an older vphone whose schema this one cannot read.
        case olderSchema
        /// Damaged: truncated, malformed, a missing table, a value this vphone does not know.
        case corrupt
        /// A write to a read-only image or file.
        case readOnly
        /// Another process held the image longer than the busy timeout.
        case locked
        /// The file system failed: permissions, disk full, I/O error, closed store.
        case io
        /// The image belongs to another phone (its MAC differs from the one asked for).
        case macMismatch
        /// A flash export that cannot be imported: not JSON, another format or version, a bad field (`path` is
        /// the export).
        case invalidExport
        /// A flash export whose secrets were masked, imported without allowing it (`path` is the export).
        case maskedExport
    }

    public var kind: Kind
    /// The flash image concerned (the export file, for `invalidExport` and `maskedExport`).
    public var path: String
    /// Which file, what is wrong, and the fix.
    public var message: String

    public init(kind: Kind, path: String, message: String) {
        self.kind = kind
        self.path = path
        self.message = message
    }

    public var description: String { message }
}

// MARK: - Messages

extension FlashError {
    static let resetAdvice = "restore it from a copy or factory-reset by deleting it"

    static func corrupt(_ path: String, _ detail: String) -> FlashError {
        FlashError(kind: .corrupt, path: path, message: "flash image \(path) is damaged: \(detail); \(resetAdvice)")
    }

    static func io(_ path: String, _ detail: String) -> FlashError {
        FlashError(
            kind: .io,
            path: path,
            message: "could not read or write flash image \(path): \(detail); check the disk (free space, "
                + "permissions) and retry"
        )
    }

    static func closed(_ path: String) -> FlashError {
        FlashError(kind: .io, path: path, message: "flash image \(path) is closed: open it again before using it")
    }

    static func readOnly(_ path: String, _ detail: String) -> FlashError {
        FlashError(
            kind: .readOnly,
            path: path,
            message: "flash image \(path) is read-only (\(detail)): open it for writing, and check the file's "
                + "permissions"
        )
    }

    /// The one place an SQLite result code becomes a `FlashError` (STYLE 3: one funnel per C library).
    ///
    /// `detail` is `sqlite3_errmsg` of the connection; it never contains bound values, so no secret can leak
    /// into a message.
    static func sqlite(code: Int32, detail: String, path: String) -> FlashError {
        switch code & 0xFF {
        case SQLITE_CORRUPT, SQLITE_FORMAT:
            return corrupt(path, detail)
        case SQLITE_NOTADB:
            return FlashError(
                kind: .notSQLite,
                path: path,
                message: "\(path) is not an SQLite database (\(detail)), so not a vphone flash image: check the path"
            )
        case SQLITE_READONLY:
            return readOnly(path, detail)
        case SQLITE_BUSY, SQLITE_LOCKED:
            return FlashError(
                kind: .locked,
                path: path,
                message: "flash image \(path) is in use by another process and stayed locked for "
                    + "\(SQLiteConnection.busyTimeoutMilliseconds / 1000) s (\(detail)): stop the other vphone "
                    + "using it, or retry"
            )
        case SQLITE_ERROR, SQLITE_SCHEMA, SQLITE_MISMATCH:
            // Our SQL is fixed and tested, so a plain SQL error means the image's tables are not the ones of
            // its schema version (edited by hand, or damaged).
            return corrupt(path, "\(detail) (its tables do not match flash schema \(FlashStore.schemaVersion))")
        case SQLITE_CONSTRAINT:
            return FlashError(
                kind: .io,
                path: path,
                message: "flash image \(path) refused a write: \(detail); nothing was changed (the value is out "
                    + "of range, or a trigger was added to the image by hand)"
            )
        default:
            return io(path, detail)
        }
    }
}
