#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The file-system side of a flash image, before SQLite sees it: creating it with the right mode, and telling
/// "no file" and "empty file" apart (SQLite would open an empty file as a new, empty database).
///
/// Nothing here opens an existing image: closing any descriptor of a file drops every POSIX lock this process
/// holds on it, SQLite's included (another `FlashStore` of this process may have it open), so existing images
/// are only looked at with stat(2) and read by SQLite.
enum ImageFile {
    /// The smallest SQLite database that is not empty: one page of the smallest page size.
    static let smallestDatabase = 512

    /// Refuses a missing file, a directory, an empty file and one too short to be SQLite. SQLite itself then
    /// refuses any other file that is not a database (`notSQLite`).
    static func checkPlausibleImage(_ path: String) throws(FlashError) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let code = errno
            if code == ENOENT {
                throw FlashError(
                    kind: .notFound,
                    path: path,
                    message: "no flash image at \(path): check the path, or create a new image for this phone"
                )
            }
            throw FlashError.io(path, describe(code))
        }
        if info.st_mode & S_IFMT == S_IFDIR {
            throw FlashError.io(path, "it is a directory, not a flash image file")
        }
        // A device, pipe or socket (/dev/null reads as empty): not an image, and not a file to delete either.
        if info.st_mode & S_IFMT != S_IFREG {
            throw FlashError(
                kind: .notSQLite,
                path: path,
                message: "\(path) is not a regular file (a device, pipe or socket), so not a vphone flash image: "
                    + "check the path"
            )
        }
        if info.st_size == 0 {
            throw FlashError(
                kind: .notSQLite,
                path: path,
                message: "\(path) is empty (0 bytes), so not a vphone flash image: delete it, or restore the image "
                    + "from a copy"
            )
        }
        if info.st_size < smallestDatabase {
            throw FlashError(
                kind: .notSQLite,
                path: path,
                message: "\(path) is not an SQLite database (\(info.st_size) bytes is too short for one), so not a "
                    + "vphone flash image: check the path"
            )
        }
    }

    /// The error for a path already taken: a link that points nowhere is named as one (O_EXCL refuses it too, and
    /// "open it instead" would fail).
    static func alreadyExists(_ path: String) -> FlashError {
        var target = stat()
        var link = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink(path, &link, link.count - 1)
        if length > 0, stat(path, &target) != 0 {
            let pointsTo = String(decoding: link[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return FlashError(
                kind: .alreadyExists,
                path: path,
                message: "\(path) is a symbolic link to \(pointsTo), which does not exist: remove the link, or "
                    + "point it at an existing image"
            )
        }
        return FlashError(
            kind: .alreadyExists,
            path: path,
            message: "\(path) already exists: open it instead, or move it away to make a new flash image there"
        )
    }

    /// Creates an empty file with mode 0600 (flash holds SIP passwords and the file key), refusing an existing
    /// one, and creates its parent directories if missing.
    static func createExclusive(_ path: String) throws(FlashError) {
        try makeParentDirectories(of: path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let code = errno
            if code == EEXIST { throw alreadyExists(path) }
            throw FlashError.io(path, describe(code))
        }
        defer { _ = close(fd) }
        // The umask may have taken bits away; 0600 exactly is what is wanted.
        guard fchmod(fd, 0o600) == 0 else { throw FlashError.io(path, describe(errno)) }
    }

    /// Whether anything exists at `path` (a dangling link counts).
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// `DIR/.NAME.new-RANDOM` beside `path`.
    static func temporarySibling(of path: String) -> String {
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[...$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        return dir + "." + name + ".new-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
    }

    /// Gives the finished image at `temporary` its final name atomically, never replacing an existing file, and
    /// drops the temporary name.
    static func linkIntoPlace(_ temporary: String, _ path: String) throws(FlashError) {
        guard link(temporary, path) == 0 else {
            let code = errno
            remove(temporary)
            if code == EEXIST {
                throw FlashError(
                    kind: .alreadyExists,
                    path: path,
                    message: "\(path) appeared while it was being created: open it instead"
                )
            }
            throw FlashError.io(path, describe(code))
        }
        _ = unlink(temporary)
    }

    /// Removes a half-made image and its journal after a failed `create` (a missing file is fine).
    static func remove(_ path: String) {
        // Results ignored: the caller is already throwing the error that made it give up.
        _ = unlink(path)
        _ = unlink(path + "-journal")
    }

    private static func makeParentDirectories(of path: String) throws(FlashError) {
        var prefix = ""
        let components = path.split(separator: "/", omittingEmptySubsequences: false).dropLast()
        for (index, component) in components.enumerated() {
            prefix += (index == 0 ? "" : "/") + component
            guard !component.isEmpty, component != ".", component != ".." else { continue }
            if mkdir(prefix, 0o755) != 0 {
                let code = errno
                var info = stat()
                guard code == EEXIST, stat(prefix, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
                    throw FlashError.io(path, "cannot create directory \(prefix): \(describe(code))")
                }
            }
        }
    }

    static func describe(_ code: Int32) -> String { String(cString: strerror(code)) }
}
