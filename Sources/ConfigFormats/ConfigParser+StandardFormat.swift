// Panasonic "Standard Format" text, read by the KX-UTG300's sibling models (spec §2):
//
//     # Panasonic SIP Phone Standard Format File #<CR><LF>
//     # a comment<CR><LF>
//     SIP_AUTHID_1="1001"<CR><LF>
//     <CR><LF>                                   (the file ends with an empty line)

extension ConfigParser {
    /// The longest line, in bytes without its CRLF; longer lines are ignored (spec §2).
    static let standardFormatMaxLine = 537

    /// Parses Standard Format text whose header `detect` has already seen.
    static func parseStandardFormat(_ bytes: [UInt8], file: String) throws(ConfigFormatError) -> ConfigDocument {
        let scanned = bytes.withUnsafeBufferPointer { StandardFormatScanner(bytes: $0, file: file).scan() }
        return try scanned.get()
    }
}

/// One pass over the bytes: lines, terminators, comments and `NAME="value"`, collecting entries in file order.
private struct StandardFormatScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    let file: String
    var initial: [String: ConfigEntry] = [:]
    var device: [String: ConfigEntry]
    var warnings: [ConfigWarning] = []
    var hasInitialSection = false

    init(bytes: UnsafeBufferPointer<UInt8>, file: String) {
        self.bytes = bytes
        self.file = file
        // A parameter line is rarely under 24 bytes: size the dictionary once.
        device = Dictionary(minimumCapacity: min(bytes.count / 24, 4096))
    }

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")

    func invalid(_ line: Int, _ reason: String) -> ConfigFormatError {
        ConfigFormatError(file: file, line: line, reason: reason, kind: .malformed)
    }

    consuming func scan() -> Result<ConfigDocument, ConfigFormatError> {
        let count = bytes.count
        var start = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        var lineNumber = 0
        while start < count {
            lineNumber += 1
            // spec §2: lines end with CRLF. Find the end of this one, noting any non-ASCII byte on the way.
            var end = start
            var allBits: UInt8 = 0
            while end < count {
                let byte = bytes[end]
                if byte == Self.cr || byte == Self.lf { break }
                allBits |= byte
                end += 1
            }
            if end == count {
                return .failure(
                    invalid(lineNumber, "the file must end with an empty line: add CRLF after the last line")
                )
            }
            if bytes[end] == Self.lf {
                return .failure(invalid(lineNumber, "line ends with LF only; Standard Format needs CRLF"))
            }
            if end + 1 == count || bytes[end + 1] != Self.lf {
                return .failure(invalid(lineNumber, "line ends with CR only; Standard Format needs CRLF"))
            }
            let line = UnsafeBufferPointer(rebasing: bytes[start..<end])
            start = end + 2

            // spec §2: at most 537 bytes a line; a longer one is skipped, not fatal.
            if line.count > ConfigParser.standardFormatMaxLine {
                warnings.append(
                    ConfigWarning(
                        line: lineNumber,
                        message: "line is \(line.count) bytes long, over the limit of "
                            + "\(ConfigParser.standardFormatMaxLine); it is ignored"
                    )
                )
                continue
            }
            if allBits & 0x80 != 0 && !ConfigParser.isValidUTF8(line) {
                return .failure(invalid(lineNumber, "line is not valid UTF-8; save the file as UTF-8"))
            }
            // spec §2: '#' comments (the header is one) and blank lines carry nothing.
            if line.isEmpty || line[0] == UInt8(ascii: "#") || line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) {
                continue
            }
            switch parseAssignment(line) {
            case .failure(let reason):
                return .failure(invalid(lineNumber, reason.text))
            case .success(let (name, value)):
                let isInitial = Self.isInitialName(name)
                if isInitial { hasInitialSection = true }
                let entry = ConfigEntry(
                    name: name,
                    value: value,
                    line: lineNumber,
                    section: isInitial ? .initial : .device
                )
                // spec §2: the same name twice in a text file, the first one wins. One hash for the usual case;
                // a duplicate puts the first entry back.
                let earlier =
                    isInitial ? initial.updateValue(entry, forKey: name) : device.updateValue(entry, forKey: name)
                if let earlier {
                    if isInitial { initial[name] = earlier } else { device[name] = earlier }
                    warnings.append(
                        ConfigWarning(
                            line: lineNumber,
                            message: "\(name) is set again; ignored, the value from line \(earlier.line) is kept (in "
                                + "Standard Format the first one wins)"
                        )
                    )
                }
            }
        }
        // The loop ends only right after a CRLF, so the file ended with an empty line.
        return .success(
            ConfigDocument(
                format: .text,
                initial: initial,
                device: device,
                hasInitialSection: hasInitialSection,
                warnings: warnings
            )
        )
    }

    /// Initial names all start with `CFG_` and are at least 20 bytes long: skip the set lookup for the others.
    private static func isInitialName(_ name: String) -> Bool {
        name.utf8.count >= 20 && name.utf8.starts(with: "CFG_".utf8) && ConfigParser.initialNames.contains(name)
    }

    struct Reason: Error { var text: String }

    /// Splits `NAME="value"`: NAME of `[A-Za-z0-9_]+`, no spaces around `=`, the value in double quotes and
    /// nothing after the closing quote (spec §2). The closing quote is the last byte of the line, so a value may
    /// hold `"` itself [decision: the format has no escape, and display names can hold quotes].
    private func parseAssignment(_ line: UnsafeBufferPointer<UInt8>) -> Result<(String, String), Reason> {
        let expected = "expected NAME=\"value\""
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }
        var index = 0
        while index < line.count && Self.isNameByte(line[index]) { index += 1 }
        guard index > 0 else {
            if isSpace(line[0]) {
                return .failure(Reason(text: "\(expected) at the start of the line, without leading spaces"))
            }
            return .failure(
                Reason(
                    text: "\(expected) where NAME is letters, digits and '_'; the line starts with "
                        + ConfigParser.quoted(line.prefix(20))
                )
            )
        }
        let name = String(decoding: UnsafeBufferPointer(rebasing: line[..<index]), as: UTF8.self)
        guard index < line.count else {
            return .failure(Reason(text: "\(expected); \(name) has no '=' and no value"))
        }
        if isSpace(line[index]) {
            return .failure(Reason(text: "no spaces are allowed around '=' (write \(name)=\"value\")"))
        }
        guard line[index] == UInt8(ascii: "=") else {
            return .failure(
                Reason(
                    text: "\(expected); the name may only hold letters, digits and '_', but \(name) is followed by "
                        + ConfigParser.quoted(line[index...].prefix(1))
                )
            )
        }
        index += 1
        guard index < line.count else {
            return .failure(Reason(text: "\(name)= has no value; write \(name)=\"\" for an empty value"))
        }
        if isSpace(line[index]) {
            return .failure(Reason(text: "no spaces are allowed around '=' (write \(name)=\"value\")"))
        }
        guard line[index] == UInt8(ascii: "\"") else {
            return .failure(Reason(text: "the value of \(name) must be in double quotes: \(name)=\"...\""))
        }
        let valueStart = index + 1
        guard let closing = line[valueStart...].lastIndex(of: UInt8(ascii: "\"")) else {
            return .failure(Reason(text: "the value of \(name) has no closing '\"'; add it at the end of the line"))
        }
        guard closing == line.count - 1 else {
            return .failure(
                Reason(
                    text: "nothing may follow the closing quote of \(name)'s value; found "
                        + ConfigParser.quoted(line[(closing + 1)...].prefix(20))
                )
            )
        }
        let value = String(decoding: UnsafeBufferPointer(rebasing: line[valueStart..<closing]), as: UTF8.self)
        return .success((name, value))
    }

    private static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"):
            true
        default: false
        }
    }
}

extension ConfigParser {
    /// Strict UTF-8 (no overlong forms, no surrogates), as the standard library decodes it.
    static func isValidUTF8<C: Collection<UInt8>>(_ bytes: C) -> Bool {
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }
}
