/// Macro expansion and the URL rules of spec §1 and §3, as pure functions.
public struct MacroContext: Hashable, Sendable {
    public var mac: MAC
    public var model: String
    public var firmware: String

    public init(mac: MAC, model: String, firmware: String) {
        self.mac = mac
        self.model = model
        self.firmware = firmware
    }

    /// Expands `{MAC}`, `{mac}`, `{MODEL}`, `{fwver}`. Macros are case-sensitive and an unknown `{XYZ}` stays as it
    /// is (spec §1).
    public func expand(_ text: String) -> String {
        // Byte-wise: the macros and braces are ASCII, and a fleet expands a URL for every file of every phone.
        guard text.withUTF8Bytes({ $0.contains(UInt8(ascii: "{")) }) else { return text }
        var text = text
        return text.withUTF8 { u in
            var out: [UInt8] = []
            out.reserveCapacity(u.count + 16)
            var i = 0
            while i < u.count {
                guard u[i] == UInt8(ascii: "{") else {
                    out.append(u[i])
                    i += 1
                    continue
                }
                // No `}` after this `{`: the rest is text (and no later `{` is looked at again, or a value full of
                // `{` would cost its length squared).
                guard let close = u[(i + 1)...].firstIndex(of: UInt8(ascii: "}")) else {
                    out += u[i...]
                    break
                }
                let name = UnsafeBufferPointer(rebasing: u[(i + 1)..<close])
                if name.elementsEqual("MAC".utf8) {
                    mac.appendHex(uppercase: true, to: &out)
                } else if name.elementsEqual("mac".utf8) {
                    mac.appendHex(uppercase: false, to: &out)
                } else if name.elementsEqual("MODEL".utf8) {
                    out += model.utf8
                } else if name.elementsEqual("fwver".utf8) {
                    out += firmware.utf8
                } else {
                    out += u[i...close]
                }
                i = close + 1
            }
            return String(decoding: out, as: UTF8.self)
        }
    }

    /// Whether `text` may name the phone's MAC (`{MAC}` or `{mac}`), when its expansion can differ from phone to
    /// phone. It may say yes for a text that does not (`{{mac}`: the first `{` opens, and `{mac` is no macro); it never
    /// says no for one that does.
    static func namesTheMAC(_ text: String) -> Bool {
        text.withUTF8Bytes { u in
            // Each `{` with the 4 bytes after it: a walk over the String's views cost ~1.8k instructions a URL.
            guard u.count >= 5 else { return false }
            for i in 0...(u.count - 5) where u[i] == UInt8(ascii: "{") && u[i + 4] == UInt8(ascii: "}") {
                let name = (u[i + 1], u[i + 2], u[i + 3])
                if name == (0x4D, 0x41, 0x43) || name == (0x6D, 0x61, 0x63) { return true }  // MAC, mac
            }
            return false
        }
    }
}

/// Why a provisioning URL cannot be used at all.
public struct URLProblem: Error, Hashable, Sendable, CustomStringConvertible {
    public var url: String
    public var reason: String
    public var description: String { "\(redactURL(url)): \(reason)" }
}

public enum ProvisioningURL {
    /// Schemes the phone speaks (spec §3 and the security rules): nothing else is ever fetched.
    public static let allowedSchemes = ["http", "https", "tftp", "ftp"]
    /// A URL without a scheme is tried with these, in this order (spec §3).
    public static let schemelessOrder = ["tftp", "http", "https", "ftp"]
    /// URLs are at most 384 characters (spec §3, from a sibling model).
    public static let maxLength = 384

    /// The URLs to try for one configured location, in order: macros expanded, `{MODEL}.cfg` appended when the URL
    /// names no file, and the four schemes of a scheme-less URL.
    /// - Throws: `URLProblem` for an empty URL, a refused scheme, or one longer than 384 characters.
    public static func candidates(_ raw: String, macros: MacroContext) throws(URLProblem) -> [String] {
        let expanded = macros.expand(raw.trimmingWhitespace())
        guard !expanded.isEmpty else { throw URLProblem(url: raw, reason: "the URL is empty") }
        guard expanded.utf8.count <= maxLength else {
            throw URLProblem(
                url: expanded,
                reason: "the URL is \(expanded.utf8.count) characters long; the phone accepts at most \(maxLength)"
            )
        }
        if let problem = characterProblem(expanded) ?? portProblem(expanded) {
            throw URLProblem(url: expanded, reason: problem)
        }
        if let scheme = scheme(of: expanded) {
            guard allowedSchemes.contains(scheme.lowercased()) else {
                throw URLProblem(
                    url: expanded,
                    reason: "the scheme \"\(scheme)\" is refused: the phone speaks only http, https, tftp and ftp"
                )
            }
            return [withFileName(expanded, macros: macros)]
        }
        return schemelessOrder.map { withFileName("\($0)://\(expanded)", macros: macros) }
    }

    /// A space or control character no URL may hold (libcurl would refuse it as "bad/illegal format" at fetch
    /// time, with no word of where), or nil.
    static func characterProblem(_ url: String) -> String? {
        guard let bad = url.withUTF8Bytes({ $0.first(where: { $0 <= 0x20 || $0 == 0x7F }) }) else { return nil }
        return bad == 0x20
            ? "the URL holds a space: write it as %20"
            : "the URL holds the control character 0x\(String(bad, radix: 16, uppercase: true)): remove it"
    }

    /// A port that is not a number in 1...65535 (`host:0`, `host:65536`, `host:-1`, `host:http`), or nil. A
    /// missing port (`host`, `host:`) is the scheme's default.
    static func portProblem(_ url: String) -> String? {
        let u = url.utf8
        let start = url.schemeSeparator?.upperBound ?? u.startIndex
        let end =
            u[start...].firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }
            ?? u.endIndex
        var host = u[start..<end]
        if let at = host.lastIndex(of: UInt8(ascii: "@")) { host = host[host.index(after: at)...] }
        // An IPv6 literal's colons are inside its brackets.
        if let close = host.lastIndex(of: UInt8(ascii: "]")) { host = host[host.index(after: close)...] }
        guard let colon = host.lastIndex(of: UInt8(ascii: ":")) else { return nil }
        let digits = host[host.index(after: colon)...]
        if digits.isEmpty { return nil }
        let text = String(decoding: digits, as: UTF8.self)
        guard digits.count <= 5, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let port = Int(text), (1...65535).contains(port)
        else { return "the port \"\(text)\" is not a port number (1-65535)" }
        return nil
    }

    /// The scheme of `url` if it has `scheme://`.
    public static func scheme(of url: String) -> String? {
        guard let r = url.schemeSeparator else { return nil }
        let bytes = url.utf8[..<r.lowerBound]
        guard let first = bytes.first else { return nil }
        if bytes.allSatisfy({ $0 < 0x80 }) {
            // ASCII (every real URL): letters, digits, "+", "-" and ".", starting with a letter.
            func isLetter(_ b: UInt8) -> Bool { (b | 0x20) >= UInt8(ascii: "a") && (b | 0x20) <= UInt8(ascii: "z") }
            guard isLetter(first),
                bytes.allSatisfy({
                    isLetter($0) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || $0 == UInt8(ascii: "+")
                        || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".")
                })
            else { return nil }
            return String(url[..<r.lowerBound])
        }
        let s = url[..<r.lowerBound]
        guard let first = s.first, first.isLetter,
            s.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == "." })
        else { return nil }
        return String(s)
    }

    /// Appends `{MODEL}.cfg` when the URL's path is empty or ends with `/` (spec §3).
    static func withFileName(_ url: String, macros: MacroContext) -> String {
        guard let r = url.schemeSeparator else { return url }
        let u = url.utf8
        let end = u[r.upperBound...].firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? u.endIndex
        guard u[r.upperBound..<end].contains(UInt8(ascii: "/")) else {
            return String(url[..<end]) + "/" + macros.model + ".cfg" + String(url[end...])
        }
        // The path (before any query or fragment) ends with "/": a directory.
        if u[u.index(before: end)] == UInt8(ascii: "/") {
            return String(url[..<end]) + macros.model + ".cfg" + String(url[end...])
        }
        return url
    }
}

/// `http://id:pass@host/x` -> `http://***@host/x`: credentials never reach a log (security rules).
public func redactURL(_ url: String) -> String {
    // No `@` anywhere: nothing to mask (nearly every URL; the machine masks each one for its log fields).
    guard url.withUTF8Bytes({ $0.contains(UInt8(ascii: "@")) }), let r = url.schemeSeparator else { return url }
    let u = url.utf8
    let authorityEnd =
        u[r.upperBound...].firstIndex {
            $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#")
        } ?? u.endIndex
    guard let at = u[r.upperBound..<authorityEnd].lastIndex(of: UInt8(ascii: "@")) else { return url }
    return String(url[..<r.upperBound]) + "***" + String(url[at...])
}

extension String {
    /// The range of the first `://`, without Foundation.
    var schemeSeparator: Range<String.Index>? {
        let found: Int? = withUTF8Bytes { u in
            guard u.count >= 3 else { return nil }
            for i in 0...(u.count - 3)
            where u[i] == UInt8(ascii: ":") && u[i + 1] == UInt8(ascii: "/") && u[i + 2] == UInt8(ascii: "/") {
                return i
            }
            return nil
        }
        guard let found else { return nil }
        let colon = utf8.index(utf8.startIndex, offsetBy: found)
        return colon..<utf8.index(colon, offsetBy: 3)
    }

    /// `body` over the UTF-8 bytes in place (a native string's own storage): scanning a URL through the `utf8` view
    /// costs tens of instructions a byte, and the machine scans every URL of every fetch.
    func withUTF8Bytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        var text = self
        return text.withUTF8(body)
    }

    func trimmingWhitespace() -> String {
        // Fast path: nothing to trim when both ends are visible ASCII.
        if let f = utf8.first, let l = utf8.last, f > 0x20, f < 0x7F, l > 0x20, l < 0x7F { return self }
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) ?? first
        return String(scalars[first...last])
    }
}
