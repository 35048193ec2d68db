// The JSON layout of a flash export, field by field (Storage/README.md, "Export format"). Decoding refuses
// unknown fields and names the place of every bad value; encoding is the synthesized one, whose keys
// FlashJSON sorts.

import PhoneCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Just the fields that say what a document is, read before anything else.
struct ExportHeader: Decodable {
    var format: String
    var formatVersion: Int
}

struct ExportDocument: Codable, Hashable {
    var format = FlashExport.formatName
    var formatVersion = FlashExport.formatVersion
    var schemaVersion: Int
    /// `included` or `masked`: how the export was made.
    var secrets: String
    var identity: IdentityJSON
    var bootCount: Int
    var savedFiles: [String: SavedFileJSON]
    var parameters: [String: ParameterJSON]
    var localEdits: [String: LocalEditJSON]
    var timers: [String: ExportTime]
    var fileStatus: [String: FileStatusJSON]
    var fileKey: FileKeyJSON?
    var rootCertificates: [String: RootCertificateJSON]
    var events: [EventJSON]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case format, formatVersion, schemaVersion, secrets, identity, bootCount, savedFiles, parameters, localEdits
        case timers, fileStatus, fileKey, rootCertificates, events
    }

    // MARK: From a snapshot

    init(
        snapshot: FlashSnapshot,
        events: [LogEntry],
        schemaVersion: Int,
        includeSecrets: Bool,
        isSecret: (String) -> Bool
    ) {
        let hide = !includeSecrets
        self.schemaVersion = schemaVersion
        secrets = includeSecrets ? "included" : "masked"
        identity = IdentityJSON(snapshot.identity)
        bootCount = snapshot.bootCount
        savedFiles = [:]
        for (kind, file) in snapshot.savedFiles {
            savedFiles[kind.rawValue] = SavedFileJSON(file, hide: hide, isSecret: isSecret)
        }
        parameters = [:]
        for (name, parameter) in snapshot.parameters {
            parameters[name] = ParameterJSON(parameter, hide: hide, isSecret: isSecret)
        }
        localEdits = [:]
        for (name, edit) in snapshot.localEdits {
            localEdits[name] = LocalEditJSON(edit, hide: hide, isSecret: isSecret)
        }
        timers = [:]
        for (kind, time) in snapshot.timers { timers[kind.rawValue] = ExportTime(time) }
        fileStatus = [:]
        for (kind, status) in snapshot.fileStatus { fileStatus[kind.rawValue] = FileStatusJSON(status, hide: hide) }
        fileKey = snapshot.fileKey.map { FileKeyJSON($0, hide: hide) }
        rootCertificates = [:]
        for (slot, certificate) in snapshot.rootCertificates {
            rootCertificates[String(slot)] = RootCertificateJSON(certificate, hide: hide)
        }
        self.events = events.map { EventJSON($0, hide: hide) }
    }

    // MARK: Back to a snapshot

    /// The contents, masked entries left out.
    func snapshot() -> FlashSnapshot {
        var snapshot = FlashSnapshot(identity: identity.value, bootCount: bootCount)
        for (key, file) in savedFiles where file.masked != true {
            guard let kind = FileKind(rawValue: key), let body = file.bytes else { continue }
            snapshot.savedFiles[kind] = SavedFile(kind: kind, url: file.url, body: body, savedAt: file.savedAt.time)
        }
        for (name, parameter) in parameters where parameter.masked != true {
            guard let source = ParameterSource(rawValue: parameter.source) else { continue }
            snapshot.parameters[name] = Parameter(
                name: name,
                value: parameter.value,
                source: source,
                perm: parameter.perm ?? "",
                access: parameter.access ?? ""
            )
        }
        for (name, edit) in localEdits where edit.masked != true {
            snapshot.localEdits[name] = LocalEdit(name: name, value: edit.value, editedAt: edit.editedAt.time)
        }
        for (key, time) in timers {
            if let kind = TimerKind(rawValue: key) { snapshot.timers[kind] = time.time }
        }
        for (key, status) in fileStatus where status.masked != true {
            guard let kind = FileKind(rawValue: key), let outcome = FileOutcome(rawValue: status.outcome) else {
                continue
            }
            snapshot.fileStatus[kind] = FileStatus(
                kind: kind,
                url: status.url,
                outcome: outcome,
                reason: status.reason,
                at: status.at.time
            )
        }
        if let key = fileKey, key.masked != true {
            snapshot.fileKey = FileKey(key: key.key, installedAt: key.installedAt.time, sourceURL: key.sourceURL)
        }
        for (key, certificate) in rootCertificates where certificate.masked != true {
            guard let slot = Int(key), let pem = certificate.bytes else { continue }
            snapshot.rootCertificates[slot] = RootCertificate(
                slot: slot,
                url: certificate.url,
                pem: pem,
                savedAt: certificate.savedAt.time
            )
        }
        return snapshot
    }

    var maskedEntries: [String] {
        var out: [String] = []
        if fileKey?.masked == true { out.append("fileKey") }
        out += savedFiles.filter { $0.value.masked == true }.map { "savedFiles.\($0.key)" }
        out += parameters.filter { $0.value.masked == true }.map { "parameters.\($0.key)" }
        out += localEdits.filter { $0.value.masked == true }.map { "localEdits.\($0.key)" }
        out += fileStatus.filter { $0.value.masked == true }.map { "fileStatus.\($0.key)" }
        out += rootCertificates.filter { $0.value.masked == true }.map { "rootCertificates.\($0.key)" }
        return out.sorted()
    }

    // MARK: Coding

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(format, forKey: .format)
        try c.encode(formatVersion, forKey: .formatVersion)
        try c.encode(schemaVersion, forKey: .schemaVersion)
        try c.encode(secrets, forKey: .secrets)
        try c.encode(identity, forKey: .identity)
        try c.encode(bootCount, forKey: .bootCount)
        try c.encode(savedFiles, forKey: .savedFiles)
        try c.encode(parameters, forKey: .parameters)
        try c.encode(localEdits, forKey: .localEdits)
        try c.encode(timers, forKey: .timers)
        try c.encode(fileStatus, forKey: .fileStatus)
        // `"fileKey": null` says "no key" outright, rather than leave the reader to wonder.
        try c.encode(fileKey, forKey: .fileKey)
        try c.encode(rootCertificates, forKey: .rootCertificates)
        try c.encode(events, forKey: .events)
    }

    init(from decoder: any Decoder) throws {
        try decoder.requireKnownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        format = try c.decode(String.self, forKey: .format)
        formatVersion = try c.decode(Int.self, forKey: .formatVersion)
        schemaVersion = try c.decode(Int.self, forKey: .schemaVersion)
        secrets = try c.decode(String.self, forKey: .secrets)
        guard ["included", "masked"].contains(secrets) else {
            throw DecodingError.dataCorruptedError(
                forKey: .secrets,
                in: c,
                debugDescription: "\"\(secrets)\" is not \"included\" or \"masked\""
            )
        }
        identity = try c.decode(IdentityJSON.self, forKey: .identity)
        bootCount = try c.decode(Int.self, forKey: .bootCount)
        guard (0...FlashSnapshot.maxBootCount).contains(bootCount) else {
            throw DecodingError.dataCorruptedError(
                forKey: .bootCount,
                in: c,
                debugDescription: "must be 0...\(FlashSnapshot.maxBootCount)"
            )
        }
        savedFiles = try c.decode([String: SavedFileJSON].self, forKey: .savedFiles)
        try Self.requireKeys(savedFiles, at: .savedFiles, in: c, "a file kind", FileKind.allCases.map(\.rawValue))
        parameters = try c.decode([String: ParameterJSON].self, forKey: .parameters)
        localEdits = try c.decode([String: LocalEditJSON].self, forKey: .localEdits)
        timers = try c.decode([String: ExportTime].self, forKey: .timers)
        try Self.requireKeys(timers, at: .timers, in: c, "a timer", TimerKind.allCases.map(\.rawValue))
        fileStatus = try c.decode([String: FileStatusJSON].self, forKey: .fileStatus)
        try Self.requireKeys(fileStatus, at: .fileStatus, in: c, "a file kind", FileKind.allCases.map(\.rawValue))
        fileKey = try c.decodeIfPresent(FileKeyJSON.self, forKey: .fileKey)
        rootCertificates = try c.decode([String: RootCertificateJSON].self, forKey: .rootCertificates)
        try Self.requireKeys(rootCertificates, at: .rootCertificates, in: c, "a certificate slot", ["1", "2", "3"])
        events = try c.decode([EventJSON].self, forKey: .events)
    }

    /// Refuses a map key that is not one of `allowed` (a file kind, a timer, a slot).
    private static func requireKeys<V>(
        _ map: [String: V],
        at key: CodingKeys,
        in container: KeyedDecodingContainer<CodingKeys>,
        _ what: String,
        _ allowed: [String]
    ) throws {
        for name in map.keys.sorted() where !allowed.contains(name) {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(
                    codingPath: container.codingPath + [key, AnyCodingKey(stringValue: name)],
                    debugDescription: "\"\(name)\" is not \(what) (\(allowed.joined(separator: ", ")))"
                )
            )
        }
    }
}

// MARK: - Parts

extension KeyedDecodingContainer {
    /// A string field that must be one of `allowed` (the raw values of an enum).
    func decode(_ key: Key, oneOf allowed: [String]) throws -> String {
        let value = try decode(String.self, forKey: key)
        guard allowed.contains(value) else {
            throw DecodingError.dataCorruptedError(
                forKey: key,
                in: self,
                debugDescription: "\"\(value)\" is not one of \(allowed.joined(separator: ", "))"
            )
        }
        return value
    }
}

struct IdentityJSON: Codable, Hashable {
    var mac: String
    var model: String
    var firmware: String
    var createdAt: ExportTime

    enum CodingKeys: String, CodingKey, CaseIterable { case mac, model, firmware, createdAt }

    init(_ identity: Identity) {
        mac = identity.mac.upper
        model = identity.model
        firmware = identity.firmware
        createdAt = ExportTime(identity.createdAt)
    }

    init(from decoder: any Decoder) throws {
        try decoder.requireKnownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        mac = try c.decode(String.self, forKey: .mac)
        guard MAC(mac) != nil else {
            throw DecodingError.dataCorruptedError(
                forKey: .mac,
                in: c,
                debugDescription: "\"\(mac)\" is not a MAC address (12 hex digits)"
            )
        }
        model = try c.decode(String.self, forKey: .model)
        firmware = try c.decode(String.self, forKey: .firmware)
        createdAt = try c.decode(ExportTime.self, forKey: .createdAt)
    }

    var value: Identity {
        Identity(mac: MAC(mac) ?? MAC(value: 0), model: model, firmware: firmware, createdAt: createdAt.time)
    }
}

/// Bytes as JSON text: the text itself when it is UTF-8 (configuration files, PEM), else base64.
enum ByteEncoding: String {
    case utf8 = "utf-8"
    case base64

    static func encode(_ bytes: [UInt8]) -> (ByteEncoding, String) {
        if let text = String(validating: bytes, as: UTF8.self) { return (.utf8, text) }
        return (.base64, Data(bytes).base64EncodedString())
    }

    func decode(_ text: String) -> [UInt8]? {
        switch self {
        case .utf8: Array(text.utf8)
        case .base64: Data(base64Encoded: text).map { Array($0) }
        }
    }
}

struct SavedFileJSON: Codable, Hashable {
    var url: String
    var savedAt: ExportTime
    /// Bytes of the file as stored (informational: import takes the body).
    var size: Int
    /// `utf-8` or `base64`; nil with the body.
    var encoding: String?
    /// Nil when withheld from a masked export.
    var body: String?
    var masked: Bool?

    enum CodingKeys: String, CodingKey, CaseIterable { case url, savedAt, size, encoding, body, masked }

    init(_ file: SavedFile, hide: Bool, isSecret: (String) -> Bool) {
        url = file.url
        savedAt = ExportTime(file.savedAt)
        let content = file.body  // rebuilt from a delta in a fleet: once
        size = content.count
        var bytes: [UInt8]? = content
        if hide {
            if let redacted = SecretRedaction.redact(url: file.url) {
                url = redacted
                masked = true
            }
            switch SecretRedaction.redact(body: content, isSecret: isSecret) {
            case .unchanged: break
            case .redacted(let text):
                bytes = text
                masked = true
            case .withheld:
                bytes = nil
                masked = true
            }
        }
        if let bytes {
            let (encoding, text) = ByteEncoding.encode(bytes)
            self.encoding = encoding.rawValue
            body = text
        }
    }

    init(from decoder: any Decoder) throws {
        try decoder.requireKnownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        url = try c.decode(String.self, forKey: .url)
        savedAt = try c.decode(ExportTime.self, forKey: .savedAt)
        size = try c.decode(Int.self, forKey: .size)
        masked = try c.decodeIfPresent(Bool.self, forKey: .masked)
        // Only a masked entry may go without its body (withheld).
        if masked == true && !c.contains(.body) { return }
        encoding = try c.decode(.encoding, oneOf: ["utf-8", "base64"])
        let body = try c.decode(String.self, forKey: .body)
        self.body = body
        if ByteEncoding(rawValue: encoding ?? "")?.decode(body) == nil {
            throw DecodingError.dataCorruptedError(forKey: .body, in: c, debugDescription: "not valid base64")
        }
    }

    var bytes: [UInt8]? { body.flatMap { ByteEncoding(rawValue: encoding ?? "")?.decode($0) } }
}

struct ParameterJSON: Codable, Hashable {
    var value: String
    var source: String
    /// Left out when empty.
    var perm: String?
    var access: String?
    var masked: Bool?

    enum CodingKeys: String, CodingKey, CaseIterable { case value, source, perm, access, masked }

    init(_ parameter: Parameter, hide: Bool, isSecret: (String) -> Bool) {
        value = parameter.value
        source = parameter.source.rawValue
        perm = parameter.perm.isEmpty ? nil : parameter.perm
        access = parameter.access.isEmpty ? nil : parameter.access
        if hide, let shown = SecretRedaction.redact(value: parameter.value, name: parameter.name, isSecret: isSecret) {
            value = shown
            masked = true
        }
    }

    init(from decoder: any Decoder) throws {
        try decoder.requireKnownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        value = try c.decode(String.self, forKey: .value)
        source = try c.decode(.source, oneOf: ParameterSource.allCases.map(\.rawValue))
        perm = try c.decodeIfPresent(String.self, forKey: .perm)
        access = try c.decodeIfPresent(String.self, forKey: .access)
        masked = try c.decodeIfPresent(Bool.self, forKey: .masked)
    }
}

struct LocalEditJSON: Codable, Hashable {
    var value: String
    var editedAt: ExportTime
    var masked: Bool?

    enum CodingKeys: String, CodingKey, CaseIterable { case value, editedAt, masked }

    init(_ edit: LocalEdit, hide: Bool, isSecret: (String) -> Bool) {
        value = edit.value
        editedAt = ExportTime(edit.editedAt)
        if hide, let shown = SecretRedaction.redact(value: edit.value, name: edit.name, isSecret: isSecret) {
            value = shown
            masked = true
        }
    }

    init(from decoder: any Decoder) throws {
        try decoder.requireKnownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        value = try c.decode(String.self, forKey: .value)
        editedAt = try c.decode(ExportTime.self, forKey: .editedAt)
        masked = try c.decodeIfPresent(Bool.self, forKey: .masked)
    }
}

struct FileStatusJSON: Codable, Hashable {
    var url: String
    var outcome: String
    var reason: String
    var at: ExportTime
    var masked: Bool?

    enum CodingKeys: String, CodingKey, CaseIterable { case url, outcome, reason, at, masked }

    static let outcomes = ["downloaded", "fell_back", "failed", "skipped"]

    init(_ status: FileStatus, hide: Bool) {
        url = status.url
        outcome = status.outcome.rawValue
        reason = status.reason
        at = ExportTime(status.at)
        if hide {
            if let redacted = SecretRedaction.redact(url: url) {
                url = redacted
                masked = true
            }
            let cleaned = SecretRedaction.redactURLCredentials(in: reason)
            if cleaned != reason {
                reason = cleaned
                masked = true
            }
        }
    }

    init(from decoder: any Decoder) throws {
        try decoder.requireKnownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        url = try c.decode(String.self, forKey: .url)
        outcome = try c.decode(.outcome, oneOf: Self.outcomes)
        reason = try c.decode(String.self, forKey: .reason)
        at = try c.decode(ExportTime.self, forKey: .at)
        masked = try c.decodeIfPresent(Bool.self, forKey: .masked)
    }
}

struct FileKeyJSON: Codable, Hashable {
    var key: String
    var installedAt: ExportTime
    var sourceURL: String
    var masked: Bool?

    enum CodingKeys: String, CodingKey, CaseIterable { case key, installedAt, sourceURL, masked }

    init(_ key: FileKey, hide: Bool) {
        self.key = hide ? SecretRedaction.mask : key.key
        installedAt = ExportTime(key.installedAt)
        sourceURL = hide ? redactURL(key.sourceURL) : key.sourceURL
        masked = hide ? true : nil
    }

    init(from decoder: any Decoder) throws {
        try decoder.requireKnownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        key = try c.decode(String.self, forKey: .key)
        installedAt = try c.decode(ExportTime.self, forKey: .installedAt)
        sourceURL = try c.decode(String.self, forKey: .sourceURL)
        masked = try c.decodeIfPresent(Bool.self, forKey: .masked)
    }
}

struct RootCertificateJSON: Codable, Hashable {
    var url: String
    var savedAt: ExportTime
    var size: Int
    var encoding: String
    var pem: String
    var masked: Bool?

    enum CodingKeys: String, CodingKey, CaseIterable { case url, savedAt, size, encoding, pem, masked }

    init(_ certificate: RootCertificate, hide: Bool) {
        url = certificate.url
        savedAt = ExportTime(certificate.savedAt)
        size = certificate.pem.count
        let (encoding, text) = ByteEncoding.encode(certificate.pem)
        self.encoding = encoding.rawValue
        pem = text
        // A certificate is public; only its URL may carry credentials.
        if hide, let redacted = SecretRedaction.redact(url: url) {
            url = redacted
            masked = true
        }
    }

    init(from decoder: any Decoder) throws {
        try decoder.requireKnownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        url = try c.decode(String.self, forKey: .url)
        savedAt = try c.decode(ExportTime.self, forKey: .savedAt)
        size = try c.decode(Int.self, forKey: .size)
        encoding = try c.decode(.encoding, oneOf: ["utf-8", "base64"])
        pem = try c.decode(String.self, forKey: .pem)
        masked = try c.decodeIfPresent(Bool.self, forKey: .masked)
        if ByteEncoding(rawValue: encoding)?.decode(pem) == nil {
            throw DecodingError.dataCorruptedError(forKey: .pem, in: c, debugDescription: "not valid base64")
        }
    }

    var bytes: [UInt8]? { ByteEncoding(rawValue: encoding)?.decode(pem) }
}

struct EventJSON: Codable, Hashable {
    var at: ExportTime
    var boot: Int
    var level: String
    var kind: String
    var message: String
    /// Left out when empty.
    var fields: [String: String]?

    enum CodingKeys: String, CodingKey, CaseIterable { case at, boot, level, kind, message, fields }

    static let levels = ["debug", "info", "warning", "error"]

    /// With `hide`, URL credentials quoted in the message or a field become `***` (an event written before the
    /// phone masked them, or by another tool).
    init(_ entry: LogEntry, hide: Bool = false) {
        let shown = hide ? entry.withURLCredentialsMasked : entry
        at = ExportTime(shown.at)
        boot = shown.boot
        level = shown.level.rawValue
        kind = shown.kind
        message = shown.message
        fields = shown.fields.isEmpty ? nil : shown.fields
    }

    init(from decoder: any Decoder) throws {
        try decoder.requireKnownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        at = try c.decode(ExportTime.self, forKey: .at)
        boot = try c.decode(Int.self, forKey: .boot)
        level = try c.decode(.level, oneOf: Self.levels)
        kind = try c.decode(String.self, forKey: .kind)
        message = try c.decode(String.self, forKey: .message)
        fields = try c.decodeIfPresent([String: String].self, forKey: .fields)
    }

    var value: LogEntry {
        LogEntry(
            at: at.time,
            boot: boot,
            level: LogEntry.Level(rawValue: level) ?? .info,
            kind: kind,
            message: message,
            fields: fields ?? [:]
        )
    }
}
