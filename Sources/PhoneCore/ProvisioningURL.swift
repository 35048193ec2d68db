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
        guard text.contains("{") else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 16)
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            out += rest[..<open]
            guard let close = rest[open...].firstIndex(of: "}") else {
                rest = rest[open...]
                break
            }
            let name = rest[rest.index(after: open)..<close]
            switch name {
            case "MAC": out += mac.upper
            case "mac": out += mac.lower
            case "MODEL": out += model
            case "fwver": out += firmware
            default: out += rest[open...close]
            }
            rest = rest[rest.index(after: close)...]
        }
        out += rest
        return out
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

    /// The scheme of `url` if it has `scheme://`.
    public static func scheme(of url: String) -> String? {
        guard let r = url.schemeSeparator else { return nil }
        let s = url[..<r.lowerBound]
        guard let first = s.first, first.isLetter,
            s.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == "." })
        else { return nil }
        return String(s)
    }

    /// Appends `{MODEL}.cfg` when the URL's path is empty or ends with `/` (spec §3).
    static func withFileName(_ url: String, macros: MacroContext) -> String {
        guard let r = url.schemeSeparator else { return url }
        let afterScheme = url[r.upperBound...]
        let end = afterScheme.firstIndex { $0 == "?" || $0 == "#" } ?? afterScheme.endIndex
        let hostAndPath = afterScheme[..<end]
        let suffix = afterScheme[end...]
        let head = String(url[..<r.upperBound]) + String(hostAndPath)
        let fileName = "\(macros.model).cfg"
        guard let slash = hostAndPath.firstIndex(of: "/") else { return head + "/" + fileName + String(suffix) }
        if hostAndPath[slash...].hasSuffix("/") { return head + fileName + String(suffix) }
        return url
    }
}

/// `http://id:pass@host/x` -> `http://***@host/x`: credentials never reach a log (security rules).
public func redactURL(_ url: String) -> String {
    guard let r = url.schemeSeparator else { return url }
    let rest = url[r.upperBound...]
    let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
    guard let at = rest[..<authorityEnd].lastIndex(of: "@") else { return url }
    return String(url[..<r.upperBound]) + "***" + String(rest[at...])
}

extension String {
    /// The range of the first `://`, without Foundation.
    var schemeSeparator: Range<String.Index>? {
        var i = startIndex
        while i < endIndex {
            if self[i] == ":", self[i...].hasPrefix("://") { return i..<index(i, offsetBy: 3) }
            i = index(after: i)
        }
        return nil
    }

    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) ?? first
        return String(scalars[first...last])
    }
}
