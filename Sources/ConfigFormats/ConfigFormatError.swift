// Why a configuration file is invalid (spec §6: an invalid file is never applied, not even in part).

/// A configuration file that cannot be used, with the file, the line and what to fix.
///
/// ```swift
/// do { _ = try ConfigParser.parse(bytes, file: url) } catch { print(error) }
/// // Config0080F0C571EB.cfg:5: not well-formed XML: the end tag </CFG_PRODUCT_FILE_PATH is not closed; ...
/// ```
public struct ConfigFormatError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The name or URL the caller gave for the file.
    public var file: String
    /// The 1-based line of the problem, when known.
    public var line: Int?
    /// What is wrong, in words a user can act on (it names the fix when there is one).
    public var reason: String
    /// The family of the problem, for callers that react differently (for example to a refused format).
    public var kind: Kind

    /// An error of kind `.other`; the parser itself always sets a precise kind.
    public init(file: String, line: Int? = nil, reason: String) {
        self.init(file: file, line: line, reason: reason, kind: .other)
    }

    init(file: String, line: Int?, reason: String, kind: Kind) {
        self.file = file
        self.line = line
        self.reason = reason
        self.kind = kind
    }

    /// `FILE:LINE: REASON`, or `FILE: REASON` when the line is unknown.
    public var description: String {
        if let line { return "\(file):\(line): \(reason)" }
        return "\(file): \(reason)"
    }

    /// The family of a `ConfigFormatError`. A struct around a private enum, so families can be added later.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private enum Code: String, Hashable, Sendable {
            case empty, tooLarge, unrecognised, notAccepted, malformed, doctype, wrongRoot, structure, other
        }
        private let code: Code
        private init(_ code: Code) { self.code = code }

        /// The file has no bytes, or only whitespace.
        public static let empty = Kind(.empty)
        /// The file is over the size limit of its format.
        public static let tooLarge = Kind(.tooLarge)
        /// The file is neither XML nor Standard Format text (encrypted, UTF-16, something else).
        public static let unrecognised = Kind(.unrecognised)
        /// The file is in a format this model does not accept (text for a KX-UTG300).
        public static let notAccepted = Kind(.notAccepted)
        /// The XML is not well-formed, or a text line breaks the Standard Format syntax.
        public static let malformed = Kind(.malformed)
        /// The XML has a DOCTYPE (entities, DTD), which a configuration file may not have.
        public static let doctype = Kind(.doctype)
        /// The XML root element is not `<PANASIPPhoneConfig>`.
        public static let wrongRoot = Kind(.wrongRoot)
        /// Well-formed, but the structure is wrong (for example `<Line>` without a valid `idx`).
        public static let structure = Kind(.structure)
        /// Made by a caller through the public initialiser.
        public static let other = Kind(.other)

        public var description: String { code.rawValue }
    }
}
