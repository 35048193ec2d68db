import PhoneCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Everything in a flash image as one portable, human-readable JSON document (`vphone flash export`), and back
/// (`vphone flash import`). Storage/README.md documents the format.
///
/// The bytes depend on the content only: keys sorted, maps keyed by name, kind or slot, the event log oldest
/// first, times as ISO 8601 text. So export -> import -> export gives the same bytes.
///
/// Secrets are masked unless asked for: the file key, the values of secret parameters and local edits (by the
/// profile's `isSecret`), secret values inside saved files, and URL credentials. Every entry that was masked says
/// `"masked": true`; importing such an export is refused unless `allowMasked`, which leaves masked entries out
/// (factory default instead of the parameter, no key, no saved copy) rather than plant `********` as a password.
///
/// ```swift
/// let bytes = try store.exportJSON(includeSecrets: false, isSecret: profile.isSecret)
/// let export = try FlashExport.parse(bytes, source: "phone.json")
/// let copy = try FlashStore.importJSON(bytes, from: "phone.json", to: "copy.flash")
/// ```
public struct FlashExport: Hashable, Sendable {
    /// The `format` field of every export.
    public static let formatName = "vphone-flash-export"
    /// The `formatVersion` this vphone writes and reads.
    public static let formatVersion = 1

    var document: ExportDocument

    /// The export of `snapshot` and `events` (oldest first), masked unless `includeSecrets`.
    ///
    /// - Parameters:
    ///   - schemaVersion: the schema of the image it comes from.
    ///   - isSecret: whether a parameter name is a secret (`DeviceProfile.isSecret`).
    public init(
        snapshot: FlashSnapshot,
        events: [LogEntry],
        schemaVersion: Int = FlashStore.schemaVersion,
        includeSecrets: Bool,
        isSecret: (String) -> Bool
    ) {
        document = ExportDocument(
            snapshot: snapshot,
            events: events,
            schemaVersion: schemaVersion,
            includeSecrets: includeSecrets,
            isSecret: isSecret
        )
    }

    /// The JSON text (UTF-8, pretty-printed, sorted keys, a final newline).
    public var json: [UInt8] { FlashJSON.encode(document) }

    /// The identity the export describes.
    public var identity: Identity { document.identity.value }

    /// The schema version of the image it was exported from.
    public var schemaVersion: Int { document.schemaVersion }

    /// Where the export holds a masked value instead of the real one (`fileKey`, `parameters.SIP_PASS_1`,
    /// `savedFiles.standard`, ...), sorted; empty for an export made with secrets.
    public var maskedEntries: [String] { document.maskedEntries }

    /// The image's contents, masked entries left out (they never become `********` values).
    public var snapshot: FlashSnapshot { document.snapshot() }

    /// The event log, oldest first.
    public var events: [LogEntry] { document.events.map(\.value) }

    /// Reads an export, checking its format, version and every value.
    ///
    /// - Parameter source: the export's file name, for messages.
    /// - Throws: `invalidExport` saying where and what: not JSON (line and column), another format, a newer
    ///   format version or schema, a missing or unknown field, a value of the wrong type, an unknown kind.
    public static func parse(_ bytes: [UInt8], source: String) throws(FlashError) -> FlashExport {
        func refuse(_ problem: String) -> FlashError {
            FlashError(
                kind: .invalidExport,
                path: source,
                message: "\(source) is not a usable vphone flash export: \(problem)"
            )
        }
        if bytes.allSatisfy({ [0x20, 0x09, 0x0A, 0x0D].contains($0) }) { throw refuse("the file is empty") }
        if let syntax = JSONSyntax.firstError(in: bytes) { throw refuse("not valid JSON: \(syntax)") }
        // The format and version first, so a future export is refused for what it is, not for a field it added.
        let header: ExportHeader
        do {
            header = try JSONDecoder().decode(ExportHeader.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw refuse(error.placeAndProblem)
        } catch {
            throw refuse("\(error)")
        }
        guard header.format == formatName else {
            throw refuse("its \"format\" is \"\(header.format)\", not \"\(formatName)\"")
        }
        guard header.formatVersion == formatVersion else {
            let advice =
                header.formatVersion > formatVersion
                ? "it was written by a newer vphone: upgrade vphone" : "export it again with this vphone"
            throw refuse(
                "it is format version \(header.formatVersion); this vphone reads version \(formatVersion): \(advice)"
            )
        }
        let document: ExportDocument
        do {
            document = try JSONDecoder().decode(ExportDocument.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw refuse(error.placeAndProblem)
        } catch {
            throw refuse("\(error)")
        }
        guard document.schemaVersion <= FlashStore.schemaVersion else {
            throw refuse(
                "it comes from a flash image of schema \(document.schemaVersion); this vphone writes schema "
                    + "\(FlashStore.schemaVersion): upgrade vphone"
            )
        }
        return FlashExport(document: document)
    }

    init(document: ExportDocument) { self.document = document }
}

extension FlashStore {
    // MARK: - Export and import

    /// Everything in the image as the JSON of `FlashExport`.
    ///
    /// ```swift
    /// let bytes = try FlashStore.open(at: "phone.flash", readOnly: true)
    ///     .exportJSON(includeSecrets: false, isSecret: profile.isSecret)
    /// ```
    /// - Parameters:
    ///   - includeSecrets: write the file key and secret values as they are (treat the file like the image).
    ///   - isSecret: whether a parameter name is a secret (`DeviceProfile.isSecret`).
    /// - Throws: what `load` and `events` throw.
    public func exportJSON(includeSecrets: Bool, isSecret: (String) -> Bool) throws(FlashError) -> [UInt8] {
        let (snapshot, events, version) = try connection.transaction(.deferred) {
            () throws(FlashError) -> (FlashSnapshot, [LogEntry], Int) in
            (try readSnapshot(), try self.events(), try storedSchemaVersion())
        }
        return FlashExport(
            snapshot: snapshot,
            events: events,
            schemaVersion: version,
            includeSecrets: includeSecrets,
            isSecret: isSecret
        ).json
    }

    /// Makes a new image at `path` from an export: all of it in one transaction, or no file at all.
    ///
    /// ```swift
    /// let store = try FlashStore.importJSON(bytes, from: "phone.json", to: "copy.flash")
    /// ```
    /// - Parameters:
    ///   - source: the export's file name, for messages.
    ///   - allowMasked: import an export with masked entries, leaving those entries out.
    /// - Throws: `invalidExport` (see `FlashExport.parse`), `maskedExport` (masked entries without
    ///   `allowMasked`), `alreadyExists` (never overwrites), `io`.
    public static func importJSON(
        _ bytes: [UInt8],
        from source: String = "the export",
        to path: String,
        allowMasked: Bool = false
    ) throws(FlashError) -> FlashStore {
        try importExport(FlashExport.parse(bytes, source: source), from: source, to: path, allowMasked: allowMasked)
    }

    /// Makes a new image at `path` from a parsed export (see `importJSON`).
    ///
    /// ```swift
    /// let export = try FlashExport.parse(bytes, source: "phone.json")
    /// let store = try FlashStore.importExport(export, from: "phone.json", to: "copy.flash", allowMasked: true)
    /// print("left out: \(export.maskedEntries)")
    /// ```
    /// - Throws: `maskedExport` (masked entries without `allowMasked`), `alreadyExists`, `io`.
    public static func importExport(
        _ export: FlashExport,
        from source: String = "the export",
        to path: String,
        allowMasked: Bool = false
    ) throws(FlashError) -> FlashStore {
        let masked = export.maskedEntries
        if !masked.isEmpty && !allowMasked {
            let shown = masked.prefix(6).joined(separator: ", ") + (masked.count > 6 ? ", ..." : "")
            throw FlashError(
                kind: .maskedExport,
                path: source,
                message: "\(source) was exported with secrets masked (\(masked.count) masked: \(shown)); importing it "
                    + "would plant \"********\" in place of the real values. Export again with --include-secrets, or "
                    + "import with --allow-masked to leave the masked entries out (factory defaults, no key, no saved "
                    + "copy); nothing was written to \(path)"
            )
        }
        let snapshot = export.snapshot
        var changes = FlashChanges()
        changes.bootCount = snapshot.bootCount
        changes.savedFiles = FileKind.allCases.compactMap { snapshot.savedFiles[$0] }
        changes.parameters = snapshot.parameters
        changes.setLocalEdits = snapshot.localEdits.keys.sorted().compactMap { snapshot.localEdits[$0] }
        changes.armTimers = snapshot.timers
        changes.fileStatus = FileKind.allCases.compactMap { snapshot.fileStatus[$0] }
        changes.fileKey = snapshot.fileKey.map { .install($0) }
        changes.rootCertificates = snapshot.rootCertificates.keys.sorted().compactMap { snapshot.rootCertificates[$0] }
        changes.events = export.events
        return try create(at: path, identity: snapshot.identity, applying: changes)
    }
}
