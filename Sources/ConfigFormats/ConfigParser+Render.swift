// Writes parameters back as KX-UTG300 XML, for fixtures and exports; `parse` reads the result back to the same
// entries.

extension ConfigParser {
    /// Serialises parameters to the UTG XML format (spec §2).
    ///
    /// The root is `<PANASIPPhoneConfig>`. Initial entries go under `<Initial>`: the three file paths in
    /// `<CfgFiles>`, the root certificates in `<Certs>`, any other name directly in `<Initial>`. Device entries go
    /// under `<Device>`, except `NAME_n` where `NAME` is in `perLineNames`, which goes in
    /// `<Lines><Line idx="n"><NAME>`. An empty section is left out. `perm` and `access` are written when not
    /// empty; text is escaped so that `parse` gives back the same values (CR, tab and LF in attributes as
    /// character references). Entries keep their order within each group.
    ///
    /// Two things cannot be written as XML 1.0, and are replaced rather than producing a file that does not
    /// parse: a control character other than tab, LF and CR becomes U+FFFD, and an entry whose name is not an
    /// XML element name (Standard Format allows `1ABC`) becomes a comment saying it was left out.
    ///
    /// ```swift
    /// let xml = ConfigParser.renderXML(
    ///     initial: [ConfigEntry(name: "CFG_STANDARD_FILE_PATH", value: "http://prov/{MAC}.cfg")],
    ///     device: [ConfigEntry(name: "SIP_AUTHID_1", value: "1001", perm: "!")],
    ///     perLineNames: ["SIP_AUTHID"])
    /// ```
    public static func renderXML(initial: [ConfigEntry], device: [ConfigEntry], perLineNames: Set<String>) -> String {
        var out = "<PANASIPPhoneConfig>\n"
        if !initial.isEmpty {
            let cfgFiles: Set<String> = ["CFG_STANDARD_FILE_PATH", "CFG_PRODUCT_FILE_PATH", "CFG_MASTER_FILE_PATH"]
            let certs: Set<String> = [
                "CFG_ROOT_CERTIFICATE_PATH1", "CFG_ROOT_CERTIFICATE_PATH2", "CFG_ROOT_CERTIFICATE_PATH3",
            ]
            out += "  <Initial>\n"
            renderGroup("CfgFiles", initial.filter { cfgFiles.contains($0.name) }, indent: 4, into: &out)
            renderGroup("Certs", initial.filter { certs.contains($0.name) }, indent: 4, into: &out)
            for entry in initial where !cfgFiles.contains(entry.name) && !certs.contains(entry.name) {
                renderLeaf(entry.name, entry, indent: 4, into: &out)
            }
            out += "  </Initial>\n"
        }
        if !device.isEmpty {
            var plain: [ConfigEntry] = []
            var lines: [Int: [(name: Substring, entry: ConfigEntry)]] = [:]
            for entry in device {
                if let (name, index) = splitLineName(entry.name, perLineNames: perLineNames) {
                    lines[index, default: []].append((name, entry))
                } else {
                    plain.append(entry)
                }
            }
            out += "  <Device>\n"
            for entry in plain { renderLeaf(entry.name, entry, indent: 4, into: &out) }
            if !lines.isEmpty {
                out += "    <Lines>\n"
                for index in lines.keys.sorted() {
                    out += "      <Line idx=\"\(index)\">\n"
                    for (name, entry) in lines[index] ?? [] { renderLeaf(name, entry, indent: 8, into: &out) }
                    out += "      </Line>\n"
                }
                out += "    </Lines>\n"
            }
            out += "  </Device>\n"
        }
        out += "</PANASIPPhoneConfig>\n"
        return out
    }

    private static func renderGroup(_ group: String, _ entries: [ConfigEntry], indent: Int, into out: inout String) {
        guard !entries.isEmpty else { return }
        let pad = String(repeating: " ", count: indent)
        out += "\(pad)<\(group)>\n"
        for entry in entries { renderLeaf(entry.name, entry, indent: indent + 2, into: &out) }
        out += "\(pad)</\(group)>\n"
    }

    private static func renderLeaf<S: StringProtocol>(
        _ name: S,
        _ entry: ConfigEntry,
        indent: Int,
        into out: inout String
    ) {
        let pad = String(repeating: " ", count: indent)
        guard isXMLName(name) else {
            out += "\(pad)<!-- left out: \(escapeComment(entry.name)) is not an XML element name -->\n"
            return
        }
        out += "\(pad)<\(name)"
        if !entry.perm.isEmpty { out += " perm=\"\(escape(entry.perm, inAttribute: true))\"" }
        if !entry.access.isEmpty { out += " access=\"\(escape(entry.access, inAttribute: true))\"" }
        out += ">\(escape(entry.value, inAttribute: false))</\(name)>\n"
    }

    /// `SIP_AUTHID_1` -> (`SIP_AUTHID`, 1) when `SIP_AUTHID` is a per-line name and 1 is a line from 1 to 99.
    private static func splitLineName(_ name: String, perLineNames: Set<String>) -> (Substring, Int)? {
        guard let underscore = name.lastIndex(of: "_") else { return nil }
        let digits = name[name.index(after: underscore)...]
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let index = Int(digits), (1...99).contains(index), String(index) == digits
        else { return nil }
        let base = name[..<underscore]
        guard perLineNames.contains(String(base)) else { return nil }
        return (base, index)
    }

    /// An XML element name without a namespace prefix: a letter, `_` or non-ASCII first, then also digits, `.`
    /// and `-`.
    private static func isXMLName<S: StringProtocol>(_ name: S) -> Bool {
        guard let first = name.unicodeScalars.first else { return false }
        func isStart(_ c: Unicode.Scalar) -> Bool {
            (c >= "A" && c <= "Z") || (c >= "a" && c <= "z") || c == "_" || c.value >= 0xC0
        }
        return isStart(first)
            && name.unicodeScalars.allSatisfy { isStart($0) || ($0 >= "0" && $0 <= "9") || $0 == "." || $0 == "-" }
    }

    private static func escape(_ text: String, inAttribute: Bool) -> String {
        // Most values need nothing: no markup characters, no control characters, no U+FFFE/U+FFFF (EF BF BE/BF).
        let plain = text.utf8.allSatisfy { byte in
            byte >= 0x20 && byte != UInt8(ascii: "&") && byte != UInt8(ascii: "<") && byte != UInt8(ascii: ">")
                && byte != UInt8(ascii: "\"") && byte != 0xEF
        }
        if plain { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"" where inAttribute: out += "&quot;"
            // A parser turns CR and CRLF into LF, and tab, CR and LF in attributes into spaces: keep them as
            // character references.
            case "\r": out += "&#13;"
            case "\t" where inAttribute: out += "&#9;"
            case "\n" where inAttribute: out += "&#10;"
            case "\t", "\n": out.unicodeScalars.append(scalar)
            case _ where scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF:
                out.unicodeScalars.append("\u{FFFD}")
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static func escapeComment(_ text: String) -> String {
        escape(text, inAttribute: true).replacingDoubleHyphens()
    }
}

extension String {
    /// `--` may not appear in an XML comment.
    fileprivate func replacingDoubleHyphens() -> String {
        var out = ""
        var previousHyphen = false
        for scalar in unicodeScalars {
            if scalar == "-" && previousHyphen {
                out += " -"
            } else {
                out.unicodeScalars.append(scalar)
            }
            previousHyphen = scalar == "-"
        }
        return out
    }
}
