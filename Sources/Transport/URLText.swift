// Just enough URL parsing to refuse schemes before libcurl sees them and to keep passwords out of
// messages. libcurl does the real parsing.

enum URLText {
    /// The scheme in lower case (`"https"`), or nil when the URL does not start with one.
    static func scheme(of url: String) -> String? {
        var scheme = ""
        for character in url.unicodeScalars {
            if character == ":" { return scheme.isEmpty ? nil : scheme.lowercased() }
            let isLetter = ("a"..."z").contains(character) || ("A"..."Z").contains(character)
            let isOther = ("0"..."9").contains(character) || character == "+" || character == "-" || character == "."
            guard isLetter || (!scheme.isEmpty && isOther) else { return nil }
            scheme.unicodeScalars.append(character)
        }
        return nil
    }

    /// The index range of `user:password@` (the `@` included) in the URL's authority, if any.
    private static func userinfoRange(in url: String) -> Range<String.Index>? {
        let authorityStart = url.firstRange(of: "://")?.upperBound ?? url.startIndex
        let rest = url[authorityStart...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? url.endIndex
        guard let at = url[authorityStart..<authorityEnd].lastIndex(of: "@") else { return nil }
        return authorityStart..<url.index(after: at)
    }

    /// The URL without `user:password@`.
    static func redacted(_ url: String) -> String {
        guard let range = userinfoRange(in: url) else { return url }
        var result = url
        result.removeSubrange(range)
        return result
    }

    /// The user and password in the URL's authority, percent-decoded.
    static func credentials(in url: String) -> (user: String, password: String?)? {
        guard let range = userinfoRange(in: url) else { return nil }
        let userinfo = url[range].dropLast()
        if let colon = userinfo.firstIndex(of: ":") {
            return (percentDecoded(userinfo[..<colon]), percentDecoded(userinfo[userinfo.index(after: colon)...]))
        }
        return (percentDecoded(userinfo), nil)
    }

    /// `host` or `host:port` of the URL (no userinfo), or the redacted URL when it has no authority.
    static func hostAndPort(of url: String) -> String {
        let redacted = redacted(url)
        guard let start = redacted.firstRange(of: "://")?.upperBound else { return redacted }
        let rest = redacted[start...]
        let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? redacted.endIndex
        return String(redacted[start..<end])
    }

    /// The host name or address alone (IPv6 addresses keep their brackets).
    static func host(of url: String) -> String {
        let authority = hostAndPort(of: url)
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            return String(authority[...close])
        }
        if let colon = authority.firstIndex(of: ":") { return String(authority[..<colon]) }
        return authority
    }

    private static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
                let value = UInt8(String(decoding: iterator.prefix(2), as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
