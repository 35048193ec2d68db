import Bundled
import Foundation

/// The files a provisioning server serves: a directory on disk (read at each request, so edits show at once, as
/// with nginx), or the example tree built into the binary.
public struct ServedTree: Sendable {
    enum Source: Sendable {
        case directory(String)
        /// Files by path (`/KX-UTG300.cfg`); `BundledFiles.exampleOrigin` in them becomes the server's own origin.
        case builtIn([String: [UInt8]])
    }

    let source: Source

    /// Serves the directory at `path`.
    /// - Throws: `ServedTreeError` when it is not a readable directory.
    public static func directory(_ path: String) throws(ServedTreeError) -> ServedTree {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ServedTreeError("\(path): no such directory; give the directory of the provisioning files")
        }
        guard let real = realpath(path, nil) else {
            throw ServedTreeError("\(path): cannot be opened (\(String(cString: strerror(errno))))")
        }
        defer { free(real) }
        return ServedTree(source: .directory(String(cString: real)))
    }

    /// The example tree built into the binary (`examples/prov`): an initial file naming a standard file for
    /// 0080F0C571EB, a product file and a master file, all on this server.
    public static let example = ServedTree(
        source: .builtIn(
            Dictionary(uniqueKeysWithValues: BundledFiles.exampleTree.map { ("/" + $0.name, Array($0.contents.utf8)) })
        )
    )

    /// The file at `path` (a request path, `/dir/name.cfg`), or nil when there is none or the path leaves the tree.
    /// - Parameter origin: `http://HOST:PORT` of the server, written into the built-in tree's URLs.
    func file(at path: String, origin: String) -> [UInt8]? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard !parts.isEmpty, !parts.contains(where: { $0 == ".." || $0 == "." || $0.contains("\0") }) else {
            return nil
        }
        switch source {
        case .builtIn(let files):
            guard let body = files["/" + parts.joined(separator: "/")] else { return nil }
            let text = String(decoding: body, as: UTF8.self)
            return Array(text.replacingOccurrences(of: BundledFiles.exampleOrigin, with: origin).utf8)
        case .directory(let root):
            let full = root + "/" + parts.joined(separator: "/")
            // A symbolic link may point anywhere: serve only what resolves inside the tree.
            guard let real = realpath(full, nil) else { return nil }
            defer { free(real) }
            let resolved = String(cString: real)
            guard resolved.hasPrefix(root + "/") else { return nil }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: resolved, isDirectory: &isDirectory), !isDirectory.boolValue,
                let data = FileManager.default.contents(atPath: resolved)
            else { return nil }
            return Array(data)
        }
    }

    /// Request paths of the files in the directory of request path `path` (not below it), sorted: where another
    /// phone's file shaped like `path` can be.
    func siblings(of path: String) -> [String] {
        let directory = path.split(separator: "/", omittingEmptySubsequences: true).dropLast().joined(separator: "/")
        let prefix = directory.isEmpty ? "/" : "/" + directory + "/"
        switch source {
        case .builtIn(let files):
            return files.keys.filter { $0.hasPrefix(prefix) && !$0.dropFirst(prefix.count).contains("/") }.sorted()
        case .directory(let root):
            let names = (try? FileManager.default.contentsOfDirectory(atPath: root + prefix)) ?? []
            return names.map { prefix + $0 }.sorted()
        }
    }

    /// For `wrong-mac`: the path of another phone's file shaped like `path` (the same text around a different
    /// 12-hex-digit MAC), or nil when `path` names no MAC or the tree holds no other.
    func otherMACPath(for path: String) -> String? {
        guard let range = Self.macRange(in: path) else { return nil }
        let prefix = path[..<range.lowerBound]
        let suffix = path[range.upperBound...]
        let mac = path[range].uppercased()
        // Only the directory of `path` is listed: a request never walks the whole tree (a fleet may hold 100,000 files).
        return siblings(of: path).first { candidate in
            guard candidate.count == path.count, candidate.hasPrefix(prefix), candidate.hasSuffix(suffix),
                let other = Self.macRange(in: candidate)
            else { return false }
            return candidate[other].uppercased() != mac
        }
    }

    /// The first run of exactly 12 hexadecimal digits in `text`.
    static func macRange(in text: String) -> Range<String.Index>? {
        var start = text.startIndex
        while start < text.endIndex {
            guard text[start].isHexDigit else {
                start = text.index(after: start)
                continue
            }
            var end = start
            while end < text.endIndex, text[end].isHexDigit { end = text.index(after: end) }
            if text.distance(from: start, to: end) == 12 { return start..<end }
            start = end
        }
        return nil
    }
}

/// A tree that cannot be served.
public struct ServedTreeError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
