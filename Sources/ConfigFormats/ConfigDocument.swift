// The parameters read from one configuration file, with the line each came from.
// Pure values: parsing lives in ConfigParser, libxml2 only in ConfigParser+XML.swift.

// MARK: - Formats and sections

/// The two file formats Panasonic SIP phones read (spec §2).
public enum ConfigFormat: String, Sendable, Hashable, CaseIterable, Codable {
    /// `<PANASIPPhoneConfig>` XML: what the KX-UTG300 reads.
    case xml
    /// Panasonic "Standard Format" text (`NAME="value"` lines): what sibling models (KX-UT1xx, KX-TGP) read.
    case text
}

/// Where a parameter sits in its file (spec §2).
public enum ConfigSection: String, Sendable, Hashable {
    /// Under `<Initial>`: the paths of the standard, product and master files and the root certificates.
    case initial
    /// Anywhere else: the device settings.
    case device
}

// MARK: - Entries

/// One parameter as written in a file.
///
/// ```swift
/// let entry = ConfigEntry(name: "SIP_AUTHID_1", value: "1001", perm: "!", line: 12)
/// ```
public struct ConfigEntry: Hashable, Sendable {
    /// The flat name. A parameter inside `<Line idx="n">` is `NAME_n` (`SIP_AUTHID_1`), as in the text format
    /// (spec §2).
    public var name: String
    /// The element text exactly as written, entities decoded; an empty element gives `""` (spec §2).
    public var value: String
    /// The `perm` attribute (`!`, `!R`, `R`, `RW`, ...) or `""` when absent (spec §4).
    public var perm: String
    /// The `access` attribute (`A`, `U`, `AU`) or `""` when absent (spec §2).
    public var access: String
    /// The 1-based line of the parameter (its start tag in XML).
    public var line: Int
    /// `initial` for parameters under `<Initial>`, `device` for every other one.
    public var section: ConfigSection

    public init(
        name: String,
        value: String,
        perm: String = "",
        access: String = "",
        line: Int = 0,
        section: ConfigSection = .device
    ) {
        self.name = name
        self.value = value
        self.perm = perm
        self.access = access
        self.line = line
        self.section = section
    }
}

/// Something in a file that was skipped without making the file invalid (a text line over 537 bytes, a
/// parameter set twice, stray text between XML elements).
public struct ConfigWarning: Hashable, Sendable, CustomStringConvertible {
    /// The 1-based line the warning is about.
    public var line: Int
    /// What was skipped and why.
    public var message: String

    public init(line: Int, message: String) {
        self.line = line
        self.message = message
    }

    /// `line N: MESSAGE`.
    public var description: String { "line \(line): \(message)" }
}

// MARK: - Document

/// A whole configuration file, parsed: every parameter by name, split into the `<Initial>` part and the rest.
///
/// ```swift
/// let doc = try ConfigParser.parse(bytes, file: "http://prov/Config0080F0C571EB.cfg")
/// let product = doc.initial["CFG_PRODUCT_FILE_PATH"]?.value
/// ```
public struct ConfigDocument: Sendable, Hashable {
    /// The format the file was written in.
    public var format: ConfigFormat
    /// Parameters under `<Initial>` (`CFG_STANDARD_FILE_PATH`, `CFG_ROOT_CERTIFICATE_PATH1`, ...), by name.
    public var initial: [String: ConfigEntry]
    /// Every other parameter, by name.
    public var device: [String: ConfigEntry]
    /// The XML had an `<Initial>` element; for text, one of the initial parameter names was present.
    public var hasInitialSection: Bool
    /// What was skipped without making the file invalid, in file order.
    public var warnings: [ConfigWarning]

    public init(
        format: ConfigFormat,
        initial: [String: ConfigEntry] = [:],
        device: [String: ConfigEntry] = [:],
        hasInitialSection: Bool = false,
        warnings: [ConfigWarning] = []
    ) {
        self.format = format
        self.initial = initial
        self.device = device
        self.hasInitialSection = hasInitialSection
        self.warnings = warnings
    }

    /// The initial and device entries together, in file order (by line, then name).
    public var entries: [ConfigEntry] {
        (Array(initial.values) + Array(device.values)).sorted { ($0.line, $0.name) < ($1.line, $1.name) }
    }
}
