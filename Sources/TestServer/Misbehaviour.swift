import Foundation

/// What the provisioning server does instead of serving a path normally: the ways real servers, proxies and
/// networks break a phone's download (issue 7). `vphone testserver --rule PATTERN=BEHAVIOUR` selects one per path.
///
/// ```swift
/// let rule = try Rule(parsing: "/Config*.cfg=close-mid-body")
/// ```
public enum Misbehaviour: Hashable, Sendable {
    /// Serve the file normally (a rule that exempts paths from a broader one after it).
    case none
    /// Answer with this HTTP status (400-599) and a short text body.
    case status(Int)
    /// Accept the request and send nothing, not even headers, for this many seconds (then close).
    case stall(seconds: Double)
    /// Send the file's headers at once and its body `bytesPerSecond` at a time, one second apart.
    case trickle(bytesPerSecond: Int)
    /// Announce the whole length, send half of the body, close the connection.
    case closeMidBody
    /// Announce half of the body's length in `Content-Length`, then send the whole body.
    case overLength
    /// A body that never ends (chunked), made of XML-looking lines.
    case endless
    /// `302` to the same path, forever.
    case redirectLoop
    /// `302` to a `file://` URL on the phone's own disk.
    case redirectToFile
    /// `401` with Basic and Digest challenges, whatever credentials come.
    case authForever
    /// `200` with bytes that are no configuration file at all (deterministic pseudo-random).
    case garbage
    /// A valid file meant for another phone: the path with its 12-hex-digit MAC replaced by another MAC whose file
    /// the tree holds.
    case wrongMAC
    /// Serve another path of the tree instead.
    case other(path: String)

    /// Every behaviour in the order the README's table lists them, with typical arguments.
    public static let catalogue: [Misbehaviour] = [
        .status(404), .status(403), .status(500), .status(503), .stall(seconds: 3600), .trickle(bytesPerSecond: 16),
        .closeMidBody, .overLength, .endless, .redirectLoop, .redirectToFile, .authForever, .garbage, .wrongMAC,
    ]

    /// The rule syntax for this behaviour: `404`, `stall`, `stall:30`, `trickle:16`, `other:/x.cfg`, ...
    public var syntax: String {
        switch self {
        case .none: return "ok"
        case .status(let code): return String(code)
        case .stall(let seconds): return seconds == 3600 ? "stall" : "stall:\(Self.number(seconds))"
        case .trickle(let rate): return "trickle:\(rate)"
        case .closeMidBody: return "close-mid-body"
        case .overLength: return "over-length"
        case .endless: return "endless"
        case .redirectLoop: return "redirect-loop"
        case .redirectToFile: return "redirect-file"
        case .authForever: return "auth-forever"
        case .garbage: return "garbage"
        case .wrongMAC: return "wrong-mac"
        case .other(let path): return "other:\(path)"
        }
    }

    /// One line for `--help` and the README.
    public var summary: String {
        switch self {
        case .none: return "serve the file normally"
        case .status(let code): return "answer HTTP \(code)"
        case .stall: return "accept the connection, send nothing (stall:SECONDS, default an hour)"
        case .trickle: return "send the body a few bytes a second (trickle:BYTES_PER_SECOND, default 16)"
        case .closeMidBody: return "announce the full length, send half the body, close"
        case .overLength: return "send more bytes than Content-Length announces"
        case .endless: return "send a body that never ends"
        case .redirectLoop: return "redirect (302) to the same path forever"
        case .redirectToFile: return "redirect (302) to file:///etc/passwd"
        case .authForever: return "demand authentication (401) whatever the credentials"
        case .garbage: return "answer 200 with random bytes"
        case .wrongMAC: return "serve a valid file of another MAC"
        case .other(let path): return "serve \(path) instead"
        }
    }

    /// The longest `stall:SECONDS`: a year.
    public static let longestStall: Double = 31_536_000
    /// The fastest `trickle:BYTES_PER_SECOND`: a gigabyte a second.
    public static let trickleRange: ClosedRange<Int> = 1...1_000_000_000
    /// The statuses a rule may answer with: client and server errors.
    public static let statusRange: ClosedRange<Int> = 400...599

    /// Parses the right-hand side of a rule.
    /// - Throws: `RuleError` listing what is accepted.
    public init(parsing text: String) throws(RuleError) { try self.init(parsing: text, rule: text) }

    /// Parses `text`, the right-hand side of `rule`, which errors quote.
    init(parsing text: String, rule: String) throws(RuleError) {
        let (word, argument) = Self.split(text)
        if argument != nil, !["stall", "trickle", "other"].contains(word) {
            throw RuleError("\"\(rule)\": \(word) takes no argument")
        }
        switch word {
        case "ok", "none":
            self = .none
        case "stall":
            guard let argument else {
                self = .stall(seconds: 3600)
                return
            }
            // Checked before use: a number past UInt64 nanoseconds would crash the server at the first request.
            guard let seconds = Double(argument), seconds > 0, seconds <= Self.longestStall else {
                throw RuleError(
                    "\"\(rule)\": stall:\(argument) is out of range; give the seconds to stall, more than 0 and at "
                        + "most 31536000 (a year), e.g. stall:30 (or stall alone: an hour)"
                )
            }
            self = .stall(seconds: seconds)
        case "trickle":
            guard let argument else {
                self = .trickle(bytesPerSecond: 16)
                return
            }
            // Compared as a Double before the conversion: Int(1e30) would crash the server.
            guard let rate = Double(argument), rate.isFinite, rate == rate.rounded(),
                Double(Self.trickleRange.lowerBound) <= rate, rate <= Double(Self.trickleRange.upperBound)
            else {
                throw RuleError(
                    "\"\(rule)\": trickle:\(argument) is out of range; give a whole number of bytes per second, "
                        + "from 1 to 1000000000, e.g. trickle:16"
                )
            }
            self = .trickle(bytesPerSecond: Int(rate))
        case "close-mid-body": self = .closeMidBody
        case "over-length": self = .overLength
        case "endless": self = .endless
        case "redirect-loop": self = .redirectLoop
        case "redirect-file": self = .redirectToFile
        case "auth-forever", "auth": self = .authForever
        case "garbage": self = .garbage
        case "wrong-mac": self = .wrongMAC
        case "other":
            guard let path = argument, path.hasPrefix("/") else {
                throw RuleError("\"\(rule)\": other: needs a path of the served tree, e.g. other:/ConfigCom.cfg")
            }
            self = .other(path: path)
        default:
            if !word.isEmpty, word.allSatisfy({ ("0"..."9").contains($0) }) {
                guard let code = Int(word), Self.statusRange.contains(code) else {
                    throw RuleError(
                        "\"\(rule)\": HTTP status \(word) is out of range; a rule answers 400 to 599, e.g. 404 or 503"
                    )
                }
                self = .status(code)
            } else {
                throw RuleError.bad(rule)
            }
        }
    }

    private static func split(_ text: String) -> (String, String?) {
        guard let colon = text.firstIndex(of: ":") else { return (text.lowercased(), nil) }
        return (text[..<colon].lowercased(), String(text[text.index(after: colon)...]))
    }

    private static func number(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}

/// A path pattern and what to do there. Patterns are shell globs on the request path (`*` any run of characters,
/// `?` one character): `/Config0080F0C571EB.cfg`, `/Config*.cfg`, `*`.
public struct Rule: Hashable, Sendable, CustomStringConvertible {
    public var pattern: String
    public var behaviour: Misbehaviour

    public init(pattern: String, behaviour: Misbehaviour) {
        self.pattern = pattern
        self.behaviour = behaviour
    }

    /// Parses `PATTERN=BEHAVIOUR` (`/ConfigCom.cfg=503`).
    public init(parsing text: String) throws(RuleError) {
        guard let equals = text.lastIndex(of: "="), equals != text.startIndex else {
            throw RuleError("\"\(text)\": expected PATTERN=BEHAVIOUR, e.g. '/Config*.cfg=404'")
        }
        let pattern = String(text[..<equals])
        guard pattern.hasPrefix("/") || pattern.hasPrefix("*") else {
            throw RuleError("\"\(text)\": the pattern must start with / or * (it matches the request path)")
        }
        let behaviour = String(text[text.index(after: equals)...])
        self.init(pattern: pattern, behaviour: try Misbehaviour(parsing: behaviour, rule: text))
    }

    public var description: String { "\(pattern)=\(behaviour.syntax)" }

    /// Parses a rules file: one `PATTERN=BEHAVIOUR` per line; blank lines and `#` comments are skipped.
    /// - Throws: `RuleError` naming the file and the line.
    public static func parseFile(_ text: String, name: String) throws(RuleError) -> [Rule] {
        var rules: [Rule] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            do {
                rules.append(try Rule(parsing: trimmed))
            } catch {
                throw RuleError("\(name):\(n + 1): \(error)")
            }
        }
        return rules
    }

    /// Whether the glob matches the whole of `path`.
    public func matches(_ path: String) -> Bool { Self.glob(Array(pattern.utf8)[...], Array(path.utf8)[...]) }

    private static func glob(_ p: ArraySlice<UInt8>, _ s: ArraySlice<UInt8>) -> Bool {
        var p = p
        var s = s
        // Iterative matching with one backtrack point for the last `*`: linear in practice, never exponential.
        var star: (p: ArraySlice<UInt8>, s: ArraySlice<UInt8>)?
        while true {
            if let c = p.first, c == UInt8(ascii: "*") {
                p = p.dropFirst()
                star = (p, s)
                continue
            }
            if let c = p.first, let d = s.first, c == UInt8(ascii: "?") || c == d {
                p = p.dropFirst()
                s = s.dropFirst()
                continue
            }
            if p.isEmpty && s.isEmpty { return true }
            guard let backtrack = star, !backtrack.s.isEmpty else { return false }
            star = (backtrack.p, backtrack.s.dropFirst())
            p = backtrack.p
            s = backtrack.s.dropFirst()
        }
    }
}

/// A rule that cannot be used, with what is accepted.
public struct RuleError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }

    static func bad(_ text: String) -> RuleError {
        RuleError(
            "\"\(text)\": unknown behaviour; expected one of ok, 400-599, stall[:SECONDS], trickle[:BYTES_PER_SECOND], "
                + "close-mid-body, over-length, endless, redirect-loop, redirect-file, auth-forever, garbage, "
                + "wrong-mac, other:PATH"
        )
    }
}
