import PhoneCore

/// What differs between two flash images (`vphone flash diff A B`): identity, boot count, parameters with their
/// sources, local edits, saved files, file outcomes, the key (changed or not, never its value), root
/// certificates and timers. Secret values are masked; a change to one is still reported.
///
/// ```swift
/// let diff = FlashDiff.compare(try a.load(), try b.load(), isSecret: profile.isSecret)
/// if !diff.isEmpty { print(diff.text) }
/// ```
public struct FlashDiff: Hashable, Sendable {
    /// Whether an entry is only in A, only in B, or in both with different content.
    public enum Change: String, Hashable, Sendable {
        case added, removed, changed

        init(_ a: Bool, _ b: Bool) { self = !a ? .added : (!b ? .removed : .changed) }

        var sign: String {
            switch self {
            case .added: "+"
            case .removed: "-"
            case .changed: "~"
            }
        }
    }

    /// An identity field (`mac`, `model`, `firmware`, `createdAt`) with its text on each side.
    public struct FieldDifference: Hashable, Sendable {
        public var field: String
        public var a: String
        public var b: String
    }

    /// A parameter as one image holds it; `value` is `********` for a non-empty secret.
    public struct ParameterSide: Hashable, Sendable {
        public var value: String
        public var source: ParameterSource
        public var perm: String
        public var access: String
    }

    public struct ParameterDifference: Hashable, Sendable {
        public var name: String
        public var a: ParameterSide?
        public var b: ParameterSide?
        /// The name is a secret: when both sides read `********`, the hidden values differ.
        public var secret: Bool
        public var change: Change { Change(a != nil, b != nil) }
    }

    public struct LocalEditSide: Hashable, Sendable {
        /// `********` for a non-empty secret.
        public var value: String
        public var editedAt: PhoneTime
    }

    public struct LocalEditDifference: Hashable, Sendable {
        public var name: String
        public var a: LocalEditSide?
        public var b: LocalEditSide?
        public var secret: Bool
        public var change: Change { Change(a != nil, b != nil) }
    }

    /// A saved file or a root certificate as one image holds it.
    public struct ContentSide: Hashable, Sendable {
        public var url: String
        public var size: Int
        public var savedAt: PhoneTime
    }

    /// A saved file (`name` is its kind) or a root certificate (`name` is its slot).
    public struct ContentDifference: Hashable, Sendable {
        public var name: String
        public var a: ContentSide?
        public var b: ContentSide?
        /// Both sides hold the same bytes (only the URL or the time differs).
        public var sameBytes: Bool
        public var change: Change { Change(a != nil, b != nil) }
    }

    public struct FileStatusDifference: Hashable, Sendable {
        public var kind: FileKind
        public var a: FileStatus?
        public var b: FileStatus?
        public var change: Change { Change(a != nil, b != nil) }
    }

    /// The file key: present on each side, and whether it changed. Never the key.
    public struct KeyDifference: Hashable, Sendable {
        public var aPresent: Bool
        public var bPresent: Bool
        /// The key text differs (or one side has none).
        public var keyChanged: Bool
        public var aInstalledAt: PhoneTime?
        public var bInstalledAt: PhoneTime?
    }

    public struct BootCountDifference: Hashable, Sendable {
        public var a: Int
        public var b: Int
    }

    public struct TimerDifference: Hashable, Sendable {
        public var kind: TimerKind
        public var a: PhoneTime?
        public var b: PhoneTime?
        public var change: Change { Change(a != nil, b != nil) }
    }

    public var identity: [FieldDifference] = []
    /// The boot counts, when they differ.
    public var bootCount: BootCountDifference?
    public var parameters: [ParameterDifference] = []
    public var localEdits: [LocalEditDifference] = []
    public var savedFiles: [ContentDifference] = []
    public var fileStatus: [FileStatusDifference] = []
    public var fileKey: KeyDifference?
    public var rootCertificates: [ContentDifference] = []
    public var timers: [TimerDifference] = []

    /// True when the two images hold the same contents.
    public var isEmpty: Bool { count == 0 }

    /// How many entries differ.
    public var count: Int {
        identity.count + (bootCount == nil ? 0 : 1) + parameters.count + localEdits.count + savedFiles.count
            + fileStatus.count + (fileKey == nil ? 0 : 1) + rootCertificates.count + timers.count
    }

    // MARK: - Comparing

    /// Everything that differs from `a` to `b`.
    ///
    /// - Parameter isSecret: whether a parameter name is a secret (`DeviceProfile.isSecret`): its values are
    ///   shown as `********`.
    public static func compare(
        _ a: FlashSnapshot,
        _ b: FlashSnapshot,
        isSecret: (String) -> Bool
    ) -> FlashDiff {
        var diff = FlashDiff()
        let fields: [(String, (Identity) -> String)] = [
            ("mac", { $0.mac.upper }), ("model", { $0.model }), ("firmware", { $0.firmware }),
            ("createdAt", { $0.createdAt.shown }),
        ]
        for (field, text) in fields where text(a.identity) != text(b.identity) {
            diff.identity.append(FieldDifference(field: field, a: text(a.identity), b: text(b.identity)))
        }
        if a.bootCount != b.bootCount { diff.bootCount = BootCountDifference(a: a.bootCount, b: b.bootCount) }

        // As an export masks them: a secret's value, and the credentials of a URL (a file path with user:password@).
        func shown(_ name: String, _ value: String) -> String {
            SecretRedaction.redact(value: value, name: name, isSecret: isSecret) ?? value
        }
        for name in Set(a.parameters.keys).union(b.parameters.keys).sorted()
        where a.parameters[name] != b.parameters[name] {
            func side(_ p: Parameter?) -> ParameterSide? {
                p.map {
                    ParameterSide(value: shown(name, $0.value), source: $0.source, perm: $0.perm, access: $0.access)
                }
            }
            diff.parameters.append(
                ParameterDifference(
                    name: name,
                    a: side(a.parameters[name]),
                    b: side(b.parameters[name]),
                    secret: isSecret(name)
                )
            )
        }
        for name in Set(a.localEdits.keys).union(b.localEdits.keys).sorted()
        where a.localEdits[name] != b.localEdits[name] {
            func side(_ e: LocalEdit?) -> LocalEditSide? {
                e.map { LocalEditSide(value: shown(name, $0.value), editedAt: $0.editedAt) }
            }
            diff.localEdits.append(
                LocalEditDifference(
                    name: name,
                    a: side(a.localEdits[name]),
                    b: side(b.localEdits[name]),
                    secret: isSecret(name)
                )
            )
        }
        for kind in FileKind.allCases where a.savedFiles[kind] != b.savedFiles[kind] {
            let (x, y) = (a.savedFiles[kind], b.savedFiles[kind])
            diff.savedFiles.append(
                ContentDifference(
                    name: kind.rawValue,
                    a: x.map { ContentSide(url: redactURL($0.url), size: $0.savedBody.count, savedAt: $0.savedAt) },
                    b: y.map { ContentSide(url: redactURL($0.url), size: $0.savedBody.count, savedAt: $0.savedAt) },
                    sameBytes: x != nil && x?.body == y?.body
                )
            )
        }
        for kind in FileKind.allCases where a.fileStatus[kind] != b.fileStatus[kind] {
            diff.fileStatus.append(FileStatusDifference(kind: kind, a: a.fileStatus[kind], b: b.fileStatus[kind]))
        }
        if a.fileKey != b.fileKey {
            diff.fileKey = KeyDifference(
                aPresent: a.fileKey != nil,
                bPresent: b.fileKey != nil,
                keyChanged: a.fileKey?.key != b.fileKey?.key,
                aInstalledAt: a.fileKey?.installedAt,
                bInstalledAt: b.fileKey?.installedAt
            )
        }
        let slots = Set(a.rootCertificates.keys).union(b.rootCertificates.keys).sorted()
        for slot in slots where a.rootCertificates[slot] != b.rootCertificates[slot] {
            let (x, y) = (a.rootCertificates[slot], b.rootCertificates[slot])
            diff.rootCertificates.append(
                ContentDifference(
                    name: String(slot),
                    a: x.map { ContentSide(url: redactURL($0.url), size: $0.pem.count, savedAt: $0.savedAt) },
                    b: y.map { ContentSide(url: redactURL($0.url), size: $0.pem.count, savedAt: $0.savedAt) },
                    sameBytes: x != nil && x?.pem == y?.pem
                )
            )
        }
        for kind in TimerKind.allCases where a.timers[kind] != b.timers[kind] {
            diff.timers.append(TimerDifference(kind: kind, a: a.timers[kind], b: b.timers[kind]))
        }
        return diff
    }
}

// MARK: - Rendering

extension FlashDiff {
    /// One line per difference, `+` only in B, `-` only in A, `~` in both but different; empty when identical.
    public var text: String {
        var lines: [String] = []
        for d in identity { lines.append("~ identity \(d.field): \(d.a) -> \(d.b)") }
        if let counts = bootCount { lines.append("~ boot count: \(counts.a) -> \(counts.b)") }
        for d in parameters {
            func side(_ s: ParameterSide) -> String {
                var text = "\"\(s.value)\" (\(s.source.rawValue)"
                if !s.perm.isEmpty { text += ", perm=\(s.perm)" }
                if !s.access.isEmpty { text += ", access=\(s.access)" }
                return text + ")"
            }
            lines.append(
                "\(d.change.sign) parameter \(d.name): "
                    + sides(d.a.map(side), d.b.map(side), hidden: d.secret && d.a?.value == d.b?.value, "secret value")
            )
        }
        for d in localEdits {
            func side(_ s: LocalEditSide) -> String { "\"\(s.value)\" (edited \(s.editedAt.shown))" }
            lines.append(
                "\(d.change.sign) local edit \(d.name): "
                    + sides(d.a.map(side), d.b.map(side), hidden: d.secret && d.a?.value == d.b?.value, "secret value")
            )
        }
        for d in savedFiles { lines.append("\(d.change.sign) saved file \(d.name): " + content(d)) }
        for d in fileStatus {
            func side(_ s: FileStatus) -> String {
                var text = "\(s.outcome.rawValue) at \(s.at.shown)"
                if !s.url.isEmpty { text += " from \(redactURL(s.url))" }
                if !s.reason.isEmpty { text += " (\(SecretRedaction.redactURLCredentials(in: s.reason)))" }
                return text
            }
            lines.append("\(d.change.sign) file outcome \(d.kind.rawValue): " + sides(d.a.map(side), d.b.map(side)))
        }
        if let k = fileKey {
            let text: String
            switch (k.aPresent, k.bPresent) {
            case (false, true): text = "+ file key: added in B (installed \(k.bInstalledAt.map(\.shown) ?? "?"))"
            case (true, false): text = "- file key: removed in B"
            default:
                text =
                    k.keyChanged
                    ? "~ file key: changed (the key differs)"
                    : "~ file key: same key, installed \(k.aInstalledAt.map(\.shown) ?? "?") -> "
                        + "\(k.bInstalledAt.map(\.shown) ?? "?")"
            }
            lines.append(text)
        }
        for d in rootCertificates { lines.append("\(d.change.sign) root certificate \(d.name): " + content(d)) }
        for d in timers {
            lines.append("\(d.change.sign) timer \(d.kind.rawValue): " + sides(d.a.map(\.shown), d.b.map(\.shown)))
        }
        return lines.map { $0 + "\n" }.joined()
    }

    private func sides(_ a: String?, _ b: String?, hidden: Bool = false, _ what: String = "") -> String {
        switch (a, b) {
        case (nil, let b?): return "\(b) (only in B)"
        case (let a?, nil): return "\(a) (only in A)"
        case (let a?, let b?): return "\(a) -> \(b)" + (hidden ? " (\(what) changed)" : "")
        case (nil, nil): return ""
        }
    }

    private func content(_ d: ContentDifference) -> String {
        func side(_ s: ContentSide) -> String { "\(s.url) (\(s.size) bytes, saved \(s.savedAt.shown))" }
        guard let a = d.a, let b = d.b else { return sides(d.a.map(side), d.b.map(side)) }
        var parts: [String] = []
        if a.url != b.url { parts.append("url \(a.url) -> \(b.url)") }
        if d.sameBytes {
            parts.append("same \(a.size) bytes")
        } else {
            parts.append(a.size == b.size ? "content differs (\(a.size) bytes each)" : "\(a.size) -> \(b.size) bytes")
        }
        if a.savedAt != b.savedAt { parts.append("saved \(a.savedAt.shown) -> \(b.savedAt.shown)") }
        return parts.joined(separator: "; ")
    }

    /// The differences as JSON (sorted keys, pretty-printed): `{"identical": false, "parameters": [...], ...}`;
    /// each entry has `change` (`added`, `removed`, `changed`) and its `a` and `b` sides (null when absent).
    public var json: [UInt8] {
        func entry(_ name: String, _ change: Change, _ a: JSONValue?, _ b: JSONValue?) -> [String: JSONValue] {
            ["name": .string(name), "change": .string(change.rawValue), "a": .optional(a), "b": .optional(b)]
        }
        func parameter(_ s: ParameterSide) -> JSONValue {
            .object([
                "value": .string(s.value), "source": .string(s.source.rawValue), "perm": .string(s.perm),
                "access": .string(s.access),
            ])
        }
        func edit(_ s: LocalEditSide) -> JSONValue {
            .object(["value": .string(s.value), "editedAt": .time(s.editedAt)])
        }
        func content(_ s: ContentSide) -> JSONValue {
            .object(["url": .string(s.url), "size": .int(Int64(s.size)), "savedAt": .time(s.savedAt)])
        }
        func status(_ s: FileStatus) -> JSONValue {
            .object([
                "outcome": .string(s.outcome.rawValue), "url": .string(redactURL(s.url)),
                "reason": .string(SecretRedaction.redactURLCredentials(in: s.reason)),
                "at": .time(s.at),
            ])
        }
        var document: [String: JSONValue] = [
            "identical": .bool(isEmpty),
            "identity": .array(
                identity.map { .object(["field": .string($0.field), "a": .string($0.a), "b": .string($0.b)]) }
            ),
            "parameters": .array(
                parameters.map { d in
                    var object = entry(d.name, d.change, d.a.map(parameter), d.b.map(parameter))
                    object["secret"] = .bool(d.secret)
                    return .object(object)
                }
            ),
            "localEdits": .array(
                localEdits.map { d in
                    var object = entry(d.name, d.change, d.a.map(edit), d.b.map(edit))
                    object["secret"] = .bool(d.secret)
                    return .object(object)
                }
            ),
            "savedFiles": .array(
                savedFiles.map { d in
                    var object = entry(d.name, d.change, d.a.map(content), d.b.map(content))
                    object["sameBytes"] = .bool(d.sameBytes)
                    return .object(object)
                }
            ),
            "fileStatus": .array(
                fileStatus.map { .object(entry($0.kind.rawValue, $0.change, $0.a.map(status), $0.b.map(status))) }
            ),
            "rootCertificates": .array(
                rootCertificates.map { d in
                    var object = entry(d.name, d.change, d.a.map(content), d.b.map(content))
                    object["sameBytes"] = .bool(d.sameBytes)
                    return .object(object)
                }
            ),
            "timers": .array(
                timers.map {
                    .object(entry($0.kind.rawValue, $0.change, $0.a.map(JSONValue.time), $0.b.map(JSONValue.time)))
                }
            ),
            "bootCount": .optional(bootCount.map { .object(["a": .int(Int64($0.a)), "b": .int(Int64($0.b))]) }),
        ]
        document["fileKey"] = .optional(
            fileKey.map { k in
                .object([
                    "aPresent": .bool(k.aPresent), "bPresent": .bool(k.bPresent), "keyChanged": .bool(k.keyChanged),
                    "aInstalledAt": .optional(k.aInstalledAt.map(JSONValue.time)),
                    "bInstalledAt": .optional(k.bInstalledAt.map(JSONValue.time)),
                ])
            }
        )
        return FlashJSON.encode(JSONValue.object(document))
    }
}
