// Reads a configuration file into parameters: format detection, size limits and the dispatch to the XML
// (ConfigParser+XML.swift) or Standard Format (ConfigParser+StandardFormat.swift) reader.

/// Parses and writes Panasonic configuration files (spec §2).
public enum ConfigParser {
    /// The size limits: 240 KB for XML (spec §2 [decision], the UT670 limit), 120 KB for Standard Format text.
    public static let defaultLimits: [ConfigFormat: Int] = [.xml: 240 * 1024, .text: 120 * 1024]

    /// The 44 bytes every Standard Format file starts with (spec §2).
    static let standardFormatHeader: [UInt8] = Array("# Panasonic SIP Phone Standard Format File #".utf8)

    /// The names that belong to the `<Initial>` part when they come from a text file.
    static let initialNames: Set<String> = [
        "CFG_STANDARD_FILE_PATH", "CFG_PRODUCT_FILE_PATH", "CFG_MASTER_FILE_PATH",
        "CFG_ROOT_CERTIFICATE_PATH1", "CFG_ROOT_CERTIFICATE_PATH2", "CFG_ROOT_CERTIFICATE_PATH3",
    ]

    // MARK: - Detection

    /// Detects the format from the bytes: `.text` when they start with the 44-byte Standard Format header (after
    /// an optional UTF-8 BOM), `.xml` when the first non-blank character is `<`, `nil` otherwise.
    ///
    /// ```swift
    /// ConfigParser.detect(Array("<PANASIPPhoneConfig/>".utf8))  // .xml
    /// ```
    public static func detect(_ bytes: [UInt8]) -> ConfigFormat? {
        let start = bomLength(bytes)
        if bytes.count - start >= standardFormatHeader.count,
            bytes[start..<(start + standardFormatHeader.count)].elementsEqual(standardFormatHeader)
        {
            return .text
        }
        guard let first = bytes[start...].first(where: { !isBlank($0) }) else { return nil }
        return first == UInt8(ascii: "<") ? .xml : nil
    }

    // MARK: - Parsing

    /// Parses a whole file, or throws; never returns a partial document (spec §6: an invalid file is not applied).
    ///
    /// ```swift
    /// let doc = try ConfigParser.parse(bytes, file: "http://prov.example/Config0080F0C571EB.cfg")
    /// for entry in doc.entries { print(entry.name, entry.value) }
    /// ```
    ///
    /// - Parameters:
    ///   - bytes: the file as downloaded (already decrypted).
    ///   - file: the name or URL to put in errors.
    ///   - accepting: the formats the device model reads (a KX-UTG300 reads `.xml` only).
    ///   - limits: the largest size in bytes per format; a format missing here uses `defaultLimits`.
    /// - Throws: `ConfigFormatError` naming the file, the line when known, and the problem: empty, over the size
    ///   limit, a format the model does not accept, not well-formed XML, a DOCTYPE, a root other than
    ///   `<PANASIPPhoneConfig>`, a bad `<Line idx>`, or a Standard Format line that breaks the syntax.
    public static func parse(
        _ bytes: [UInt8],
        file: String,
        accepting: Set<ConfigFormat> = [.xml],
        limits: [ConfigFormat: Int] = defaultLimits
    ) throws(ConfigFormatError) -> ConfigDocument {
        switch try checkedFormat(bytes, file: file, accepting: accepting, limits: limits) {
        case .xml:
            if let scanned = PlainXMLScanner.read(bytes) { return scanned }
            return try parseXMLWithLibXML2(bytes, file: file)
        case .text: return try parseStandardFormat(bytes, file: file)
        }
    }

    /// `parse` for a fleet phone's own file: a plain XML file's entries in file order, before any dictionary is made
    /// (a fleet's per-phone files come from one template, so the merge can put them in name order the way it did for
    /// the last phone, and the document is made only for a file whose names are new); any other file's document.
    /// The checks and errors are `parse`'s.
    package static func parseInFileOrder(
        _ bytes: [UInt8],
        file: String,
        accepting: Set<ConfigFormat>,
        limits: [ConfigFormat: Int]
    ) throws(ConfigFormatError) -> FileOrder {
        switch try checkedFormat(bytes, file: file, accepting: accepting, limits: limits) {
        case .xml:
            if let scanned = PlainXMLScanner.readInOrder(bytes, keepingTemplate: true) { return .scanned(scanned) }
            return .document(try parseXMLWithLibXML2(bytes, file: file))
        case .text:
            return .document(try parseStandardFormat(bytes, file: file))
        }
    }

    /// For a fleet phone's own file, before `parseInFileOrder`: the values of its parameters in file order, and where
    /// its bytes differ, when it is the last phone's file (`template`) with other texts; else nil. The checks and
    /// errors are `parse`'s.
    package static func values(
        _ bytes: [UInt8],
        like template: PlainXMLTemplate,
        file: String,
        accepting: Set<ConfigFormat>,
        limits: [ConfigFormat: Int]
    ) throws(ConfigFormatError) -> TemplateRead? {
        guard try checkedFormat(bytes, file: file, accepting: accepting, limits: limits) == .xml else { return nil }
        return PlainXMLScanner.values(bytes, like: template)
    }

    /// The file's format, once detection, the model's formats and the size limit have let it through.
    private static func checkedFormat(
        _ bytes: [UInt8],
        file: String,
        accepting: Set<ConfigFormat>,
        limits: [ConfigFormat: Int]
    ) throws(ConfigFormatError) -> ConfigFormat {
        guard let format = detect(bytes) else { throw unrecognised(bytes, file: file, accepting: accepting) }
        guard accepting.contains(format) else {
            let accepted = ConfigFormat.allCases.filter { accepting.contains($0) }.map(\.rawValue)
            let list = accepted.isEmpty ? "no format" : accepted.joined(separator: " and ")
            throw ConfigFormatError(
                file: file,
                line: nil,
                reason: "this model accepts \(list); the file is \(format.longName)",
                kind: .notAccepted
            )
        }
        // spec §2 [decision]: a file over the limit is invalid as a whole.
        let limit = limits[format] ?? defaultLimits[format] ?? Int.max
        guard bytes.count <= limit else {
            throw ConfigFormatError(
                file: file,
                line: nil,
                reason: "file is \(bytes.count) bytes; the limit for \(format.shortName) files is \(limit) bytes",
                kind: .tooLarge
            )
        }
        return format
    }

    /// The error for bytes that are neither format, as helpful as the first bytes allow.
    private static func unrecognised(
        _ bytes: [UInt8],
        file: String,
        accepting: Set<ConfigFormat>
    )
        -> ConfigFormatError
    {
        func error(
            _ line: Int?,
            _ reason: String,
            _ kind: ConfigFormatError.Kind = .unrecognised
        )
            -> ConfigFormatError
        {
            ConfigFormatError(file: file, line: line, reason: reason, kind: kind)
        }
        let start = bomLength(bytes)
        guard let firstIndex = bytes[start...].firstIndex(where: { !isBlank($0) }) else {
            return error(nil, bytes.isEmpty ? "empty file" : "empty file (only whitespace)", .empty)
        }
        // spec §5: an encrypted file starts with the base64 of "Salted__".
        if bytes[firstIndex...].starts(with: Array("U2FsdGVkX1".utf8)) {
            return error(
                nil,
                "the file is encrypted (it starts with U2FsdGVkX1); it must be decrypted with the CFG_FILE_KEY "
                    + "stored on the phone before it can be read"
            )
        }
        if bytes.starts(with: [0xFF, 0xFE]) || bytes.starts(with: [0xFE, 0xFF]) {
            return error(nil, "the file is UTF-16; save it as UTF-8")
        }
        let line = 1 + bytes[..<firstIndex].count(where: { $0 == UInt8(ascii: "\n") })
        let found = "it starts with \(quoted(bytes[firstIndex...].prefix(40).prefix { $0 != 0x0D && $0 != 0x0A }))"
        let header = String(decoding: standardFormatHeader, as: UTF8.self)
        if accepting.contains(.text), bytes[firstIndex] == UInt8(ascii: "#") {
            return error(line, "a Standard Format file must start with the exact line '\(header)'; \(found)")
        }
        var expected = "XML starting with '<'"
        if accepting.contains(.text) { expected += " or Standard Format text starting with '\(header)'" }
        return error(line, "not a configuration file: expected \(expected); \(found)")
    }

    // MARK: - Byte helpers

    /// 3 when the bytes start with a UTF-8 byte order mark, else 0.
    static func bomLength(_ bytes: [UInt8]) -> Int { bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0 }

    static func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A }

    /// Bytes shown in a message: printable ASCII as is, anything else as `\xNN`, in single quotes.
    static func quoted<C: Collection<UInt8>>(_ bytes: C) -> String {
        var text = "'"
        for byte in bytes {
            if byte >= 0x20 && byte < 0x7F {
                text.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                text += "\\x" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return text + "'"
    }
}

extension ConfigFormat {
    /// How errors name a file of this format.
    var longName: String {
        switch self {
        case .xml: "XML"
        case .text: "Panasonic Standard Format text"
        }
    }

    var shortName: String {
        switch self {
        case .xml: "XML"
        case .text: "Standard Format text"
        }
    }
}
