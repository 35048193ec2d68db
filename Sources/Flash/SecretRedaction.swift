import PhoneCore

/// Takes secrets out of what a masked export shows: saved configuration files (kept decrypted in flash, so
/// they hold `SIP_PASS` and `CFG_FILE_KEY` in clear) and URLs carrying `user:password@`.
///
/// A scan of the bytes rather than a parse: it must also catch a secret in a file the phone refused, a
/// comment, or a format the profile does not read.
enum SecretRedaction {
    static let mask = "********"

    enum Outcome: Equatable {
        /// Nothing secret found.
        case unchanged
        /// The body with every secret value replaced by `********`.
        case redacted([UInt8])
        /// Neither a configuration file nor an encrypted one: it cannot be vouched for, so it is left out.
        case withheld
    }

    // MARK: - Configuration files

    /// Redacts the values of parameters named by `isSecret` in an XML or Standard Format body, and the
    /// credentials of URLs in it. An encrypted body (`U2FsdGVkX1...`, spec §5) is kept: it is useless without
    /// the key, which a masked export masks too.
    static func redact(body: [UInt8], isSecret: (String) -> Bool) -> Outcome {
        var start = body.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        while start < body.count, [0x20, 0x09, 0x0D, 0x0A].contains(body[start]) { start += 1 }
        if start == body.count { return .unchanged }
        let rest = body[start...]
        if rest.starts(with: Array("U2FsdGVkX1".utf8)) { return .unchanged }
        var out: [UInt8]
        if rest.first == UInt8(ascii: "<") {
            out = redactXML(body, isSecret: isSecret)
        } else if rest.starts(with: Array("# Panasonic SIP Phone Standard Format File #".utf8)) {
            out = redactStandardFormat(body, isSecret: isSecret)
        } else {
            return .withheld
        }
        out = redactURLCredentials(in: out)
        return out == body ? .unchanged : .redacted(out)
    }

    /// `<NAME ...>secret</NAME>` -> `<NAME ...>********</NAME>` for every secret NAME, anywhere (comments too:
    /// a commented-out old password is still a password).
    static func redactXML(_ bytes: [UInt8], isSecret: (String) -> Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            guard bytes[i] == UInt8(ascii: "<"), i + 1 < bytes.count, isNameStart(bytes[i + 1]) else {
                out.append(bytes[i])
                i += 1
                continue
            }
            var nameEnd = i + 1
            while nameEnd < bytes.count, isNameByte(bytes[nameEnd]) { nameEnd += 1 }
            let name = String(decoding: bytes[(i + 1)..<nameEnd], as: UTF8.self)
            guard let tagEnd = endOfTag(bytes, from: nameEnd), bytes[tagEnd - 1] != UInt8(ascii: "/"),
                isSecret(name), let close = find(Array("</\(name)".utf8), in: bytes, from: tagEnd + 1),
                close > tagEnd + 1
            else {
                out.append(bytes[i])
                i += 1
                continue
            }
            out += bytes[i...tagEnd]
            out += Array(mask.utf8)
            i = close
        }
        return out
    }

    /// `NAME="secret"` -> `NAME="********"` on every line whose NAME is secret, commented-out lines included.
    static func redactStandardFormat(_ bytes: [UInt8], isSecret: (String) -> Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for (index, line) in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            if index > 0 { out.append(UInt8(ascii: "\n")) }
            out += redactLine(Array(line), isSecret: isSecret)
        }
        return out
    }

    private static func redactLine(_ line: [UInt8], isSecret: (String) -> Bool) -> [UInt8] {
        guard let equals = line.firstIndex(of: UInt8(ascii: "=")) else { return line }
        let blanks: Set<UInt8> = [0x20, 0x09, UInt8(ascii: "#")]
        let nameBytes = line[..<equals].drop { blanks.contains($0) }.reversed().drop { $0 == 0x20 || $0 == 0x09 }
        let name = String(decoding: nameBytes.reversed(), as: UTF8.self)
        guard !name.isEmpty, isSecret(name) else { return line }
        var valueEnd = line.count
        if valueEnd > equals + 1, line[valueEnd - 1] == 0x0D { valueEnd -= 1 }
        var valueStart = equals + 1
        let quote = UInt8(ascii: "\"")
        if let open = line[valueStart..<valueEnd].firstIndex(of: quote),
            let closing = line[(open + 1)..<valueEnd].lastIndex(of: quote)
        {
            valueStart = open + 1
            valueEnd = closing
        }
        guard valueEnd > valueStart else { return line }
        return Array(line[..<valueStart]) + Array(mask.utf8) + Array(line[valueEnd...])
    }

    // MARK: - URLs

    /// `scheme://user:password@host` -> `scheme://***@host` wherever a URL appears in the bytes (as
    /// `redactURL` does for one URL).
    static func redactURLCredentials(in bytes: [UInt8]) -> [UInt8] {
        let separator = Array("://".utf8)
        guard find(separator, in: bytes, from: 0) != nil else { return bytes }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            guard bytes[i] == UInt8(ascii: ":"), bytes[i...].starts(with: separator) else {
                out.append(bytes[i])
                i += 1
                continue
            }
            let authorityStart = i + 3
            var end = authorityStart
            let stops = Array("/?#<>\"' \t\r\n".utf8)
            while end < bytes.count, !stops.contains(bytes[end]) { end += 1 }
            out += separator
            if let at = bytes[authorityStart..<end].lastIndex(of: UInt8(ascii: "@")) {
                out += Array("***".utf8)
                i = at
            } else {
                i = authorityStart
            }
        }
        return out
    }

    /// A value that is a secret (by its name) becomes `********`; a URL's credentials become `***`.
    /// Nil when nothing needs hiding.
    static func redact(value: String, name: String, isSecret: (String) -> Bool) -> String? {
        if isSecret(name) { return value.isEmpty ? nil : mask }
        let redacted = redactURL(value)
        return redacted == value ? nil : redacted
    }

    /// `text` with the credentials of every URL in it replaced by `***` (a failure reason quoting a URL).
    static func redactURLCredentials(in text: String) -> String {
        text.contains("://") ? String(decoding: redactURLCredentials(in: Array(text.utf8)), as: UTF8.self) : text
    }

    /// The URL without credentials, or nil when it has none.
    static func redact(url: String) -> String? {
        let redacted = redactURL(url)
        return redacted == url ? nil : redacted
    }

    // MARK: - Bytes

    private static func isNameStart(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
            || byte == UInt8(ascii: "_")
    }

    private static func isNameByte(_ byte: UInt8) -> Bool {
        isNameStart(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-")
            || byte == UInt8(ascii: ".") || byte == UInt8(ascii: ":")
    }

    /// The index of the `>` closing the tag whose name ends at `from`, skipping quoted attribute values.
    private static func endOfTag(_ bytes: [UInt8], from: Int) -> Int? {
        var quote: UInt8?
        var i = from
        while i < bytes.count {
            let byte = bytes[i]
            if let q = quote {
                if byte == q { quote = nil }
            } else if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") {
                quote = byte
            } else if byte == UInt8(ascii: ">") {
                return i
            } else if byte == UInt8(ascii: "<") {
                return nil
            }
            i += 1
        }
        return nil
    }

    /// The first index of `needle` in `bytes` at or after `from`.
    static func find(_ needle: [UInt8], in bytes: [UInt8], from: Int) -> Int? {
        guard let first = needle.first, needle.count <= bytes.count else { return nil }
        var i = from
        while i + needle.count <= bytes.count {
            if bytes[i] == first, bytes[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}

extension LogEntry {
    /// The entry with the credentials of every URL quoted in its message or fields replaced by `***`: how a masked
    /// export and `vphone events` show it (an event written before the phone masked them, or by another tool).
    public var withURLCredentialsMasked: LogEntry {
        var out = self
        out.message = SecretRedaction.redactURLCredentials(in: message)
        out.fields = fields.mapValues { SecretRedaction.redactURLCredentials(in: $0) }
        return out
    }
}
