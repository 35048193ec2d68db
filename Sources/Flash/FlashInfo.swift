import PhoneCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A summary of one flash image for `vphone flash info`: what phone, how healthy, what happened to each file
/// last time, whether a key is held (never the key itself), and how much of everything there is.
///
/// ```swift
/// let info = try FlashInfo(store: FlashStore.open(at: "phone.flash", readOnly: true))
/// print(info.text)
/// ```
public struct FlashInfo: Hashable, Sendable {
    /// One configuration file: its last outcome and its saved copy, either of which may be missing.
    public struct File: Hashable, Sendable {
        public var kind: FileKind
        public var status: FileStatus?
        public var savedURL: String?
        public var savedSize: Int?
        public var savedAt: PhoneTime?
    }

    public struct Certificate: Hashable, Sendable {
        public var slot: Int
        public var url: String
        public var size: Int
        public var savedAt: PhoneTime
    }

    public var path: String
    /// Bytes on disk.
    public var fileSize: Int64
    public var schemaVersion: Int
    /// `ok`, or what SQLite's integrity check found.
    public var integrity: String
    public var identity: Identity
    public var bootCount: Int
    /// One entry per kind that has a status or a saved copy, in download order.
    public var files: [File]
    public var keyPresent: Bool
    public var keyInstalledAt: PhoneTime?
    /// Where the key came from (credentials redacted).
    public var keySourceURL: String?
    public var rootCertificates: [Certificate]
    public var timers: [TimerKind: PhoneTime]
    public var parametersBySource: [ParameterSource: Int]
    /// Names of local edits, sorted (names are not secret; their values are not shown).
    public var localEdits: [String]
    public var eventsByLevel: [LogEntry.Level: Int]
    public var firstEventAt: PhoneTime?
    public var lastEventAt: PhoneTime?

    public var parameterCount: Int { parametersBySource.values.reduce(0, +) }
    public var eventCount: Int { eventsByLevel.values.reduce(0, +) }

    /// Reads everything from `store` (read-only is enough), including a full integrity check.
    ///
    /// - Throws: what `load` throws. A failed integrity check does not throw: it is reported in `integrity`.
    public init(store: FlashStore) throws(FlashError) {
        let snapshot = try store.load()
        let summary = try store.eventSummary()
        path = store.path
        fileSize = Self.size(of: store.path)
        schemaVersion = try store.storedSchemaVersion()
        do {
            try store.integrityCheck()
            integrity = "ok"
        } catch let error where error.kind == .corrupt {
            integrity = error.message
        }
        identity = snapshot.identity
        bootCount = snapshot.bootCount
        files = FileKind.allCases.compactMap { kind in
            let status = snapshot.fileStatus[kind]
            let saved = snapshot.savedFiles[kind]
            guard status != nil || saved != nil else { return nil }
            return File(
                kind: kind,
                status: status,
                savedURL: saved?.url,
                savedSize: saved?.savedBody.count,
                savedAt: saved?.savedAt
            )
        }
        keyPresent = snapshot.fileKey != nil
        keyInstalledAt = snapshot.fileKey?.installedAt
        keySourceURL = snapshot.fileKey.map { redactURL($0.sourceURL) }
        rootCertificates = snapshot.rootCertificates.keys.sorted().compactMap { slot in
            snapshot.rootCertificates[slot].map {
                Certificate(slot: slot, url: redactURL($0.url), size: $0.pem.count, savedAt: $0.savedAt)
            }
        }
        timers = snapshot.timers
        parametersBySource = [:]
        for parameter in snapshot.parameters.values { parametersBySource[parameter.source, default: 0] += 1 }
        localEdits = snapshot.localEdits.keys.sorted()
        eventsByLevel = summary.byLevel
        firstEventAt = summary.first
        lastEventAt = summary.last
    }

    private static func size(of path: String) -> Int64 {
        var info = stat()
        return stat(path, &info) == 0 ? Int64(info.st_size) : 0
    }

    // MARK: - Rendering

    /// The report as aligned lines of text.
    public var text: String {
        var lines: [(String, String)] = []
        lines.append(("image", "\(path) (\(fileSize) bytes, schema \(schemaVersion), integrity \(integrity))"))
        lines.append(
            (
                "phone",
                "\(identity.mac) \(identity.model) firmware \(identity.firmware), image created \(identity.createdAt.shown)"
            )
        )
        lines.append(("boots", "\(bootCount)"))
        if files.isEmpty { lines.append(("files", "none provisioned")) }
        for file in files {
            var parts: [String] = []
            if let status = file.status {
                var outcome = "\(status.outcome.rawValue) at \(status.at.shown)"
                if !status.url.isEmpty { outcome += " from \(redactURL(status.url))" }
                if !status.reason.isEmpty { outcome += " (\(SecretRedaction.redactURLCredentials(in: status.reason)))" }
                parts.append(outcome)
            } else {
                parts.append("no outcome recorded")
            }
            if let size = file.savedSize, let savedAt = file.savedAt {
                parts.append("saved copy \(size) bytes from \(savedAt.shown)")
            } else {
                parts.append("no saved copy")
            }
            lines.append(("file \(file.kind.rawValue)", parts.joined(separator: "; ")))
        }
        if keyPresent {
            var key = "present (not shown)"
            if let installed = keyInstalledAt { key += ", installed \(installed.shown)" }
            if let url = keySourceURL, !url.isEmpty { key += " by \(url)" }
            lines.append(("file key", key))
        } else {
            lines.append(("file key", "none"))
        }
        if rootCertificates.isEmpty { lines.append(("root certs", "none")) }
        for c in rootCertificates {
            lines.append(("root cert \(c.slot)", "\(c.url) (\(c.size) bytes, saved \(c.savedAt.shown))"))
        }
        if timers.isEmpty { lines.append(("timers", "none armed")) }
        for kind in TimerKind.allCases {
            if let due = timers[kind] { lines.append(("timer \(kind.rawValue)", "due \(due.shown)")) }
        }
        let bySource = ParameterSource.allCases.reversed().compactMap { source in
            parametersBySource[source].map { "\(source.rawValue) \($0)" }
        }
        lines.append(
            ("parameters", "\(parameterCount)" + (bySource.isEmpty ? "" : " (\(bySource.joined(separator: ", ")))"))
        )
        lines.append(
            (
                "local edits",
                "\(localEdits.count)" + (localEdits.isEmpty ? "" : ": " + localEdits.joined(separator: ", "))
            )
        )
        let byLevel = [LogEntry.Level.debug, .info, .warning, .error].compactMap { level in
            eventsByLevel[level].map { "\(level.rawValue) \($0)" }
        }
        var events = "\(eventCount)"
        if !byLevel.isEmpty { events += " (\(byLevel.joined(separator: ", ")))" }
        if let first = firstEventAt, let last = lastEventAt { events += ", \(first.shown) to \(last.shown)" }
        lines.append(("events", events))
        let width = lines.map(\.0.count).max() ?? 0
        return lines.map { $0.0 + String(repeating: " ", count: width - $0.0.count + 2) + $0.1 }
            .joined(separator: "\n") + "\n"
    }

    /// The report as JSON (sorted keys, pretty-printed); times as ISO 8601 text.
    public var json: [UInt8] {
        var filesJSON: [String: JSONValue] = [:]
        for file in files {
            var object: [String: JSONValue] = [:]
            if let status = file.status {
                object["outcome"] = .string(status.outcome.rawValue)
                object["url"] = .string(redactURL(status.url))
                object["reason"] = .string(SecretRedaction.redactURLCredentials(in: status.reason))
                object["at"] = .time(status.at)
            }
            if let size = file.savedSize, let savedAt = file.savedAt {
                object["saved"] = .object([
                    "url": .string(redactURL(file.savedURL ?? "")), "size": .int(Int64(size)),
                    "savedAt": .time(savedAt),
                ])
            }
            filesJSON[file.kind.rawValue] = .object(object)
        }
        var key: [String: JSONValue] = ["present": .bool(keyPresent)]
        if let installed = keyInstalledAt { key["installedAt"] = .time(installed) }
        if let url = keySourceURL { key["sourceURL"] = .string(url) }
        var certificates: [String: JSONValue] = [:]
        for c in rootCertificates {
            certificates[String(c.slot)] = .object([
                "url": .string(c.url), "size": .int(Int64(c.size)), "savedAt": .time(c.savedAt),
            ])
        }
        var timersJSON: [String: JSONValue] = [:]
        for (kind, due) in timers { timersJSON[kind.rawValue] = .time(due) }
        var sources: [String: JSONValue] = [:]
        for (source, count) in parametersBySource { sources[source.rawValue] = .int(Int64(count)) }
        var levels: [String: JSONValue] = [:]
        for (level, count) in eventsByLevel { levels[level.rawValue] = .int(Int64(count)) }
        let document: JSONValue = .object([
            "path": .string(path),
            "fileSize": .int(fileSize),
            "schemaVersion": .int(Int64(schemaVersion)),
            "integrity": .string(integrity),
            "identity": .object([
                "mac": .string(identity.mac.upper), "model": .string(identity.model),
                "firmware": .string(identity.firmware), "createdAt": .time(identity.createdAt),
            ]),
            "bootCount": .int(Int64(bootCount)),
            "files": .object(filesJSON),
            "fileKey": .object(key),
            "rootCertificates": .object(certificates),
            "timers": .object(timersJSON),
            "parameters": .object(["count": .int(Int64(parameterCount)), "bySource": .object(sources)]),
            "localEdits": .array(localEdits.map(JSONValue.string)),
            "events": .object([
                "count": .int(Int64(eventCount)), "byLevel": .object(levels),
                "first": .optional(firstEventAt.map(JSONValue.time)),
                "last": .optional(lastEventAt.map(JSONValue.time)),
            ]),
        ])
        return FlashJSON.encode(document)
    }
}
