import ConfigFormats

/// A device model: what the firmware is, what it accepts, and the factory default of every parameter.
///
/// Profiles are data (`Profiles/*.json`, ARCHITECTURE rule 7); the runtime reads the file and decodes it into this.
public struct DeviceProfile: Hashable, Sendable, Codable {
    /// `{MODEL}`, e.g. `KX-UTG300`.
    public var model: String
    /// `{fwver}`, e.g. `03.210`.
    public var firmwareVersion: String
    /// The maker's OUI, e.g. `0080F0` (spec §1); a MAC outside it is allowed but noted.
    public var macPrefix: String
    /// Formats this model's firmware accepts (spec §2: the KX-UTG300 accepts XML only).
    public var formats: [ConfigFormat]
    /// Number of SIP lines: per-line defaults are expanded for lines 1...lines.
    public var lines: Int
    /// Size limit per format, in bytes (spec §2: 240 KB XML, 120 KB text).
    public var maxFileBytes: [String: Int]
    /// Factory defaults of device-wide parameters (spec §8). `HTTP_USER_AGENT` holds the User-Agent template.
    public var defaults: [String: String]
    /// Factory defaults of per-line parameters, by bare name (`SIP_AUTHID`), expanded to `SIP_AUTHID_1`...
    public var lineDefaults: [String: String]
    /// Parameters whose values are secrets: masked in every listing, never logged.
    public var secrets: [String]
    /// Behaviours where the guide is silent (spec "decision" rules), switchable per profile.
    public var quirks: Quirks
    /// Network timeouts of the firmware's HTTP client.
    public var connectTimeoutMs: Int
    public var totalTimeoutMs: Int

    public struct Quirks: Hashable, Sendable, Codable {
        /// Reuse one connection across a phone's own files (default off: a fresh connection per file).
        public var reuseConnection: Bool
        /// Ask Panasonic's redirection server when nothing else gives a URL (default off; not simulated).
        public var redirectionServer: Bool
        /// A freshly downloaded value with `perm="!"` overwrites a local edit; a saved copy standing in after a
        /// failure does not (spec §4 applies to provisioning, and a failed download provisions nothing).
        public var overrideFromSavedCopy: Bool
        /// The digest of EVP_BytesToKey for encrypted files: `md5` (the 2014 firmware) or `sha256` (spec §5).
        public var kdfDigest: String

        public init(
            reuseConnection: Bool = false,
            redirectionServer: Bool = false,
            overrideFromSavedCopy: Bool = false,
            kdfDigest: String = "md5"
        ) {
            self.reuseConnection = reuseConnection
            self.redirectionServer = redirectionServer
            self.overrideFromSavedCopy = overrideFromSavedCopy
            self.kdfDigest = kdfDigest
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            reuseConnection = try c.decodeIfPresent(Bool.self, forKey: .reuseConnection) ?? false
            redirectionServer = try c.decodeIfPresent(Bool.self, forKey: .redirectionServer) ?? false
            overrideFromSavedCopy = try c.decodeIfPresent(Bool.self, forKey: .overrideFromSavedCopy) ?? false
            kdfDigest = try c.decodeIfPresent(String.self, forKey: .kdfDigest) ?? "md5"
        }
    }

    /// Everything that makes a profile unusable, in one list of sentences (empty = valid).
    public var problems: [String] {
        var out: [String] = []
        if model.isEmpty { out.append("model is empty") }
        if firmwareVersion.isEmpty { out.append("firmwareVersion is empty") }
        if formats.isEmpty { out.append("formats is empty: list \"xml\" and/or \"text\"") }
        if lines < 1 || lines > 99 { out.append("lines is \(lines): expected 1...99") }
        if defaults["HTTP_USER_AGENT"] == nil {
            out.append("defaults has no HTTP_USER_AGENT (the User-Agent template)")
        }
        for f in formats where (maxFileBytes[f.rawValue] ?? 0) <= 0 {
            out.append("maxFileBytes has no positive limit for \"\(f.rawValue)\"")
        }
        if !["md5", "sha256"].contains(quirks.kdfDigest) {
            out.append("quirks.kdfDigest is \"\(quirks.kdfDigest)\": expected \"md5\" or \"sha256\"")
        }
        if connectTimeoutMs <= 0 || totalTimeoutMs <= 0 { out.append("timeouts must be positive") }
        return out
    }

    /// The factory default of every parameter, per-line ones expanded (`SIP_AUTHID_1`...).
    public var factoryDefaults: [String: String] {
        var all = defaults
        for line in 1...max(1, lines) {
            for (name, value) in lineDefaults { all["\(name)_\(line)"] = value }
        }
        return all
    }

    /// Size limits as the parser wants them.
    public var parserLimits: [ConfigFormat: Int] {
        var out: [ConfigFormat: Int] = [:]
        for f in ConfigFormat.allCases { if let v = maxFileBytes[f.rawValue] { out[f] = v } }
        return out
    }

    /// The largest file this model downloads: the transport aborts past it (spec §2).
    public var downloadCap: Int { formats.compactMap { maxFileBytes[$0.rawValue] }.max() ?? 240 * 1024 }

    /// Whether `name` (flat, maybe `NAME_n`) is a secret.
    public func isSecret(_ name: String) -> Bool {
        secrets.contains(name) || secrets.contains(Self.bareName(name))
    }

    /// Whether the profile knows `name` (flat).
    public func knows(_ name: String) -> Bool {
        if defaults[name] != nil { return true }
        let bare = Self.bareName(name)
        guard bare != name, lineDefaults[bare] != nil, let n = Int(name.dropFirst(bare.count + 1)) else { return false }
        return (1...lines).contains(n)
    }

    /// `SIP_AUTHID_1` -> `SIP_AUTHID`; names without a numeric suffix are returned unchanged.
    public static func bareName(_ name: String) -> String {
        guard let us = name.lastIndex(of: "_"), name.index(after: us) < name.endIndex,
            name[name.index(after: us)...].allSatisfy(\.isNumber)
        else { return name }
        return String(name[..<us])
    }
}

// MARK: - Lines the model does not have

extension DeviceProfile {
    /// The line of `name` when it is a per-line parameter of a line this model does not have (`SIP_PASS_7` on a
    /// 6-line phone, `SIP_PASS_0`); nil for every other name.
    public func absentLine(_ name: String) -> Int? {
        // Most names end in a letter: no per-line parameter at all. The rest are nearly all of lines the model has:
        // the number is read where it lies, and a name looked up only for a line out of range (every file of every
        // fleet phone comes through here).
        let u = name.utf8
        func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
        guard let last = u.last, isDigit(last), let underscore = u.lastIndex(of: UInt8(ascii: "_")) else { return nil }
        let number = name[u.index(after: underscore)...]
        guard number.utf8.allSatisfy(isDigit), let n = Int(number) else { return nil }
        if (1...max(1, lines)).contains(n) { return nil }
        return lineDefaults[String(name[..<underscore])] != nil ? n : nil
    }

    /// `document` without the per-line parameters of lines this model does not have (`<Line idx="7">` or
    /// `PHONE_NUMBER_7` on a 6-line phone), each such line named once in the warnings at its first parameter: the
    /// phone has nowhere to put them, so it ignores them as it ignores any part of a file it cannot use, and the rest
    /// of the file applies. nil when the document has none (the common case: nothing is copied).
    public func withoutAbsentLines(_ document: ConfigDocument) -> ConfigDocument? {
        var dropped: [Int: [ConfigEntry]] = [:]
        for section in [document.initial, document.device] {
            for (name, entry) in section {
                if let n = absentLine(name) { dropped[n, default: []].append(entry) }
            }
        }
        guard !dropped.isEmpty else { return nil }
        var out = document
        var added: [ConfigWarning] = []
        let has = lines <= 1 ? "has line 1 only" : "has lines 1 to \(lines)"
        for (n, entries) in dropped {
            let sorted = entries.sorted { ($0.line, $0.name) < ($1.line, $1.name) }
            for e in sorted {
                if e.section == .initial { out.initial[e.name] = nil } else { out.device[e.name] = nil }
            }
            let names = sorted.prefix(5).map(\.name).joined(separator: ", ")
            let more = sorted.count > 5 ? " and \(sorted.count - 5) more" : ""
            added.append(
                ConfigWarning(
                    line: sorted[0].line,
                    message: "\(names)\(more): the \(model) \(has), not line \(n); ignored"
                )
            )
        }
        // In file order, the parser's warnings first on a line.
        out.warnings = (document.warnings.map { ($0, 0) } + added.map { ($0, 1) })
            .sorted { ($0.0.line, $0.1, $0.0.message) < ($1.0.line, $1.1, $1.0.message) }
            .map(\.0)
        return out
    }
}
