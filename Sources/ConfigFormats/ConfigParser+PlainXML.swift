// The XML reader's fast path: a byte scanner for the plain XML that provisioning servers write, with libxml2 as
// the authority for everything else.
//
// A fleet parses one per-phone standard file per phone, and libxml2 (a parser context, its name dictionary, the
// SAX callbacks) was about an eighth of the phone logic's CPU. Real files use a small part of XML: ASCII names,
// quoted ASCII attributes, UTF-8 text and comments with the five predefined entities, LF or CRLF line ends. This
// scanner reads exactly that part and builds the document the SAX reader would build; at the first byte outside it (a
// DOCTYPE, CDATA, a processing instruction, a namespace prefix, a numeric character reference, a CR not followed by
// an LF, a CR or LF inside an attribute value, bytes that are not UTF-8 or not an XML character, a duplicate
// attribute, a wrong root, a bad `<Line idx>`, stray text, anything not well-formed) it gives up and the file goes to libxml2, which accepts it or names the error. So it never accepts
// what libxml2 refuses and never reports an error of its own: `scanPlainXML` returns a document only when libxml2
// would return the same one, and the `config-xml` fuzz target checks exactly that on every input it tries.
//
// A fleet's per-phone files come from one template and differ in a few values. The last phone's file is kept
// (`PlainXMLTemplate`), and the next one is first read against it: its bytes outside the parameters' texts and the
// template's one-line comments must be the template's, and only the texts (and those comments, which servers often
// write per phone: `<!-- for 0080F0A1B2C3, 2026-11-27 08:00 -->`) are read, by the scanner's own readers
// (`values(_:like:)`). The fuzz target checks that whatever is read this way is what the scanner reads.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension ConfigParser {
    /// The document the libxml2 reader makes of `bytes`, when they are plain XML; nil: let libxml2 read them.
    package static func scanPlainXML(_ bytes: [UInt8]) -> ConfigDocument? {
        PlainXMLScanner.read(bytes)
    }

    /// The document `parse` makes of a file the scanner read in file order (`FileOrder.scanned`): its parameters by
    /// name, a parameter set twice taking the last value with a warning, as the readers do.
    package static func document(of scanned: ScannedEntries) -> ConfigDocument {
        var entries = XMLEntries(capacity: scanned.entries.count)
        for entry in scanned.entries { entries.add(entry) }
        return entries.document(hasInitialSection: scanned.hasInitialSection)
    }
}

/// A plain XML file as the scanner read it in file order, before any dictionary is made.
package struct ScannedEntries: Sendable {
    /// Every parameter in file order: `<Initial>` ones (section `.initial`) and ones set twice included.
    package var entries: [ConfigEntry]
    /// The file had an `<Initial>` element.
    package var hasInitialSection: Bool
    /// The file as a template for the next one (`ConfigParser.values(_:like:file:accepting:limits:)`), when it was
    /// asked for and can serve: nil when a parameter's text has a line end (a later file with another text there would
    /// move the lines of the parameters after it) or a comment in it (no later file could match it).
    package var template: PlainXMLTemplate?
}

/// A plain XML file kept so that the next file made from the same template (a fleet's per-phone files differ in a
/// few values) is read by comparing its layout bytes with this one's and reading only its parameters' texts.
package struct PlainXMLTemplate: Sendable {
    package let body: [UInt8]
    /// Each parameter's text in file order: its range in `body`, from its start tag's end to its end tag; nil for
    /// an empty-element tag (`<NAME/>`), whose empty value is part of the layout.
    let texts: [Range<Int>?]
    /// The comments on one line (outside the texts, as a template has no other), in file order: each one's range in
    /// `body` from right after its `<!--` to right after its `-->`. The next file may say anything there that the
    /// scanner reads as a comment, on one line (a comment makes no parameter, and the lines of the later ones stay).
    /// A comment over several lines is layout like the rest.
    let comments: [Range<Int>]
    /// The file had an `<Initial>` element.
    package let hasInitialSection: Bool
    /// Its parameters' values in file order: a text with the same bytes in the next file is given this copy.
    let values: [String]
}

extension PlainXMLTemplate {
    /// The template's body with each change's range replaced by the bytes of `file` in its `file` range: `file`
    /// again, when `changes` are what reading it against this template found (`TemplateRead.changes`).
    package func rebuilt(_ changes: [TemplateChange], from file: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(file.count)
        var from = 0
        for change in changes {
            out += body[from..<change.template.lowerBound]
            out += file[change.file]
            from = change.template.upperBound
        }
        out += body[from...]
        return out
    }
}

/// A file read against a template (`ConfigParser.values(_:like:file:accepting:limits:)`).
package struct TemplateRead: Sendable {
    /// Its parameters' values in file order.
    package var values: [String]
    /// The texts and one-line comments whose bytes differ from the template's, in file order. Every other byte is
    /// the template's, so the file is the template's body with each of these put in (`PlainXMLTemplate.rebuilt`): a
    /// fleet keeps a phone's saved copy that way, without looking for the differences again.
    package var changes: [TemplateChange]
}

/// A text or comment of a file read against a template, where its bytes differ from the template's.
package struct TemplateChange: Sendable, Equatable {
    /// Its range in the template's body.
    package var template: Range<Int>
    /// Its range in the file.
    package var file: Range<Int>
}

/// A file read for a fleet phone's own configuration (`ConfigParser.parseInFileOrder`).
package enum FileOrder: Sendable {
    /// Plain XML, read by the scanner: the entries in file order (`ConfigParser.document(of:)` makes the document).
    case scanned(ScannedEntries)
    /// Any other file (read by libxml2, or Standard Format text): the document.
    case document(ConfigDocument)
}

/// The parameters an XML reader has found so far, and its warnings: both readers (the scanner and libxml2's) fill
/// one, so they make the same document of the same file.
struct XMLEntries {
    var initial: [String: ConfigEntry] = [:]
    var device: [String: ConfigEntry]
    var warnings: [ConfigWarning] = []

    /// - Parameter size: the file's size (the dictionary is sized once, `expectedCount`).
    init(size: Int) { self.init(capacity: Self.expectedCount(size: size)) }

    /// How many parameters a file of `size` bytes probably holds: real device files hold one per 50 to 70 bytes.
    static func expectedCount(size: Int) -> Int { min(size / 48, 4096) }

    /// - Parameter capacity: how many parameters there will be.
    init(capacity: Int) { device = Dictionary(minimumCapacity: capacity) }

    /// Adds a leaf. spec §2: inside `<Line idx="n">` its name is `NAME_n` (the caller's), and the same parameter twice
    /// in one XML file means the last one wins, with a warning.
    mutating func add(_ entry: ConfigEntry) {
        let earlier =
            entry.section == .initial
            ? initial.updateValue(entry, forKey: entry.name) : device.updateValue(entry, forKey: entry.name)
        if let earlier {
            warnings.append(
                ConfigWarning(
                    line: entry.line,
                    message: "\(entry.name) is set again; this value replaces the one from line \(earlier.line) (in "
                        + "XML the last one wins)"
                )
            )
        }
    }

    func document(hasInitialSection: Bool) -> ConfigDocument {
        ConfigDocument(
            format: .xml,
            initial: initial,
            device: device,
            hasInitialSection: hasInitialSection,
            warnings: warnings
        )
    }
}

/// Gives up (returns nil from `read`) rather than decide anything libxml2 should decide.
struct PlainXMLScanner {
    /// The document; nil when the bytes are not plain XML.
    static func read(_ bytes: [UInt8]) -> ConfigDocument? {
        readInOrder(bytes, keepingTemplate: false).map(ConfigParser.document(of:))
    }

    /// Every parameter in file order, and no dictionary (a fleet phone's own file, whose by-name document is made
    /// only when its names are new); nil when the bytes are not plain XML.
    /// - Parameter keepingTemplate: also make the file a template for the next one (`ScannedEntries.template`).
    static func readInOrder(_ bytes: [UInt8], keepingTemplate: Bool) -> ScannedEntries? {
        bytes.withUnsafeBufferPointer { buffer in
            var scanner = PlainXMLScanner(buffer)
            let expected = XMLEntries.expectedCount(size: buffer.count)
            scanner.order.reserveCapacity(expected)
            scanner.texts.reserveCapacity(expected)
            guard scanner.scan() else { return nil }
            var template: PlainXMLTemplate?
            if keepingTemplate && scanner.textsAreOneLineOfText {
                template = PlainXMLTemplate(
                    body: bytes,
                    texts: scanner.texts,
                    comments: scanner.comments.filter { !buffer[$0].contains(0x0A) },
                    hasInitialSection: scanner.hasInitialSection,
                    values: scanner.order.map(\.value)
                )
            }
            return ScannedEntries(
                entries: scanner.order,
                hasInitialSection: scanner.hasInitialSection,
                template: template
            )
        }
    }

    /// The values of the parameters of `bytes` in file order and the texts and comments whose bytes differ, when the
    /// bytes are `template`'s file with other texts; nil otherwise (then the file is read).
    ///
    /// Every byte outside the texts and the one-line comments must be the template's; each text is read by `text()`
    /// and each of those comments by `commentText()`, as the scanner reads them, with no line end in any (the scanner
    /// counts only the line ends it reads there, and its count must stay 1), as the template's have none: else the
    /// lines of the later parameters, `<NAME/>` ones included, would move. The scanner reading these bytes would then
    /// go through the same states as it did for the template, so it would find the same parameters, on the same lines,
    /// with these values, and no more.
    static func values(_ bytes: [UInt8], like template: PlainXMLTemplate) -> TemplateRead? {
        guard bytes.count <= Self.maxFileBytes else { return nil }
        return bytes.withUnsafeBufferPointer { buffer in
            template.body.withUnsafeBufferPointer { layout -> TemplateRead? in
                var scanner = PlainXMLScanner(buffer)
                var values: [String] = []
                values.reserveCapacity(template.texts.count)
                var changes: [TemplateChange] = []
                changes.reserveCapacity(64)
                var from = 0
                var comment = 0
                for (index, text) in template.texts.enumerated() {
                    guard let text else {
                        values.append("")
                        continue
                    }
                    guard
                        scanner.skip(
                            layout,
                            from: &from,
                            to: text.lowerBound,
                            comments: template.comments,
                            &comment,
                            changes: &changes
                        )
                    else { return nil }
                    let start = scanner.p
                    // The template's text again, up to the `<` it ended at (most values are the same in every
                    // phone's file): the scanner would read these bytes as it read the template's, to the same end,
                    // with no line end (a template's texts have none) and the same value. Shared, and not read.
                    let end = start + text.count
                    if end < buffer.count, buffer[end] == UInt8(ascii: "<"),
                        Self.same(buffer[start..<end], layout[text])
                    {
                        values.append(template.values[index])
                        scanner.p = end
                        from = text.upperBound
                        continue
                    }
                    scanner.textStart = start
                    do {
                        try scanner.text()
                    } catch {
                        return nil
                    }
                    guard scanner.line == 1 else { return nil }
                    // Another text (the same bytes reach here only without their `<`, and the layout after them
                    // then differs).
                    values.append(scanner.leafText(end: scanner.p))
                    changes.append(TemplateChange(template: text, file: start..<scanner.p))
                    from = text.upperBound
                }
                guard
                    scanner.skip(
                        layout,
                        from: &from,
                        to: layout.count,
                        comments: template.comments,
                        &comment,
                        changes: &changes
                    ),
                    scanner.p == buffer.count
                else { return nil }
                return TemplateRead(values: values, changes: changes)
            }
        }
    }

    private struct GiveUp: Error {}

    private struct Frame {
        enum Role { case root, initial, device, line, other }
        var nameStart: Int
        var nameEnd: Int
        var line: Int
        var role: Role
        var inInitial: Bool
        var lineIndex: Int?
        var hasElementChild = false
        /// Where its content starts: right after its start tag.
        var contentStart = 0
    }

    private let b: UnsafeBufferPointer<UInt8>
    private var p = 0
    private var line = 1
    private var frames: [Frame] = []
    /// Text of the innermost open element since its start tag or last child: `carried` (text before a comment or
    /// with entities decoded), then the bytes from `textStart` to the current position.
    private var textStart = 0
    private var carried: [UInt8] = []
    private var perm = ""
    private var access = ""
    private var hasInitialSection = false
    /// A CRLF line end was read: values are then taken without their CRs.
    private var hasCR = false
    /// Every parameter in file order.
    private var order: [ConfigEntry] = []
    /// Every parameter's text, as `PlainXMLTemplate.texts` holds it.
    private var texts: [Range<Int>?] = []
    /// Every comment, from right after its `<!--` to right after its `-->` (`PlainXMLTemplate.comments`).
    private var comments: [Range<Int>] = []
    /// The attributes of the start tag being read: names and values as ranges of `b`.
    private var attributes: [(name: Range<Int>, value: Range<Int>)] = []

    /// libxml2 refuses more than 256 levels; plain files have a handful.
    private static let maxDepth = 64
    private static let maxNameLength = 256
    /// libxml2 refuses a text or attribute value over 10,000,000 bytes; plain files are kilobytes (and a phone's
    /// limit is 240 KB), so anything over a megabyte is libxml2's whole.
    private static let maxFileBytes = 1_000_000

    private init(_ buffer: UnsafeBufferPointer<UInt8>) {
        b = buffer
    }

    /// Reads the whole file; false when it is not plain XML.
    private mutating func scan() -> Bool {
        do {
            try document()
            return true
        } catch {
            return false
        }
    }

    // MARK: - Document

    private mutating func document() throws(GiveUp) {
        guard b.count <= Self.maxFileBytes else { throw GiveUp() }
        try declaration()
        var sawRoot = false
        while true {
            skipBlanks()
            guard p < b.count else { break }
            guard b[p] == UInt8(ascii: "<"), p + 1 < b.count else { throw GiveUp() }
            if b[p + 1] == UInt8(ascii: "!") {
                try comment()
                continue
            }
            // Before the root, or a second root after it: libxml2 decides.
            guard !sawRoot else { throw GiveUp() }
            try element()
            sawRoot = true
        }
        guard sawRoot else { throw GiveUp() }
    }

    /// `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` at the very start, or nothing.
    private mutating func declaration() throws(GiveUp) {
        guard starts(with: "<?xml") else { return }
        p += 5
        var seen = 0
        for (index, name) in ["version", "encoding", "standalone"].enumerated() {
            let save = (p, line)
            guard skipBlanks() else { break }
            guard starts(with: name) else {
                (p, line) = save
                continue
            }
            p += name.utf8.count
            skipBlanks()
            guard p < b.count, b[p] == UInt8(ascii: "=") else { throw GiveUp() }
            p += 1
            skipBlanks()
            let value = try quoted()
            let text = String(decoding: b[value], as: UTF8.self)
            switch index {
            case 0: guard text == "1.0" else { throw GiveUp() }
            case 1: guard text.lowercased() == "utf-8" else { throw GiveUp() }
            default: guard text == "yes" || text == "no" else { throw GiveUp() }
            }
            seen |= 1 << index
        }
        guard seen & 1 == 1 else { throw GiveUp() }
        skipBlanks()
        guard starts(with: "?>") else { throw GiveUp() }
        p += 2
    }

    /// `<!-- ... -->` whose text has no `--` and does not end with `-`; anything else after `<!` (DOCTYPE, CDATA) is
    /// libxml2's.
    private mutating func comment() throws(GiveUp) {
        guard starts(with: "<!--") else { throw GiveUp() }
        p += 4
        let start = p
        try commentText()
        comments.append(start..<p)
    }

    /// A comment's text and its `-->`, from right after its `<!--`.
    private mutating func commentText() throws(GiveUp) {
        while p + 2 < b.count {
            let c = b[p]
            if c == UInt8(ascii: "-") {
                guard b[p + 1] == UInt8(ascii: "-") else {
                    p += 1
                    continue
                }
                // `--` ends the comment; a `-` right before it (`--->`) is libxml2's to refuse.
                guard b[p + 2] == UInt8(ascii: ">") else { throw GiveUp() }
                p += 3
                return
            }
            try character(c)
        }
        throw GiveUp()
    }

    // MARK: - Elements

    private mutating func element() throws(GiveUp) {
        // One loop for the whole tree, not recursion: `frames` is the stack.
        while true {
            guard p < b.count else { throw GiveUp() }
            if b[p] == UInt8(ascii: "<") {
                guard p + 1 < b.count else { throw GiveUp() }
                switch b[p + 1] {
                case UInt8(ascii: "/"):
                    try endTag()
                    if frames.isEmpty { return }
                case UInt8(ascii: "!"):
                    guard !frames.isEmpty else { throw GiveUp() }
                    textUpToHere()
                    try comment()
                    textStart = p
                default:
                    if !frames.isEmpty { textUpToHere() }
                    try startTag()
                    if frames.isEmpty { return }  // a self-closing root
                }
            } else {
                try text()
            }
        }
    }

    private mutating func startTag() throws(GiveUp) {
        p += 1
        let (nameStart, nameEnd) = try name()
        // Attributes: at most 8, each after blanks (into a buffer kept from tag to tag: this runs for every element
        // of every phone's file).
        attributes.removeAll(keepingCapacity: true)
        var selfClosing = false
        while true {
            let spaced = skipBlanks()
            guard p < b.count else { throw GiveUp() }
            if b[p] == UInt8(ascii: ">") { break }
            if b[p] == UInt8(ascii: "/") {
                guard p + 1 < b.count, b[p + 1] == UInt8(ascii: ">") else { throw GiveUp() }
                selfClosing = true
                break
            }
            guard spaced, attributes.count < 8 else { throw GiveUp() }
            let attribute = try name()
            // xmlns and xml:* attributes mean namespaces to libxml2.
            guard !b[attribute.0..<attribute.1].starts(with: "xml".utf8) else { throw GiveUp() }
            skipBlanks()
            guard p < b.count, b[p] == UInt8(ascii: "=") else { throw GiveUp() }
            p += 1
            skipBlanks()
            let value = try quoted()
            let range = attribute.0..<attribute.1
            for earlier in attributes where b[earlier.name].elementsEqual(b[range]) { throw GiveUp() }
            attributes.append((range, value))
        }
        // libxml2 reports the line where the start tag's `>` (or `/>`) is.
        let tagLine = line
        p += selfClosing ? 2 : 1

        guard let parent = frames.last else {
            guard equal(nameStart..<nameEnd, "PANASIPPhoneConfig") else { throw GiveUp() }
            frames.reserveCapacity(8)
            frames.append(
                Frame(
                    nameStart: nameStart,
                    nameEnd: nameEnd,
                    line: tagLine,
                    role: .root,
                    inInitial: false,
                    contentStart: p
                )
            )
            textStart = p
            if selfClosing { try endElement() }
            return
        }
        try requireBlank()
        frames[frames.count - 1].hasElementChild = true
        perm = ""
        access = ""
        var frame = Frame(
            nameStart: nameStart,
            nameEnd: nameEnd,
            line: tagLine,
            role: .other,
            inInitial: parent.inInitial,
            lineIndex: parent.lineIndex,
            contentStart: p
        )
        let name = nameStart..<nameEnd
        if equal(name, "Line") {
            // spec §2: idx is a whole number from 1 to 99; one <Line> level. Otherwise libxml2's reader says why.
            guard parent.lineIndex == nil, attributes.count == 1, equal(attributes[0].name, "idx") else {
                throw GiveUp()
            }
            let digits = attributes[0].value
            guard (1...4).contains(digits.count), b[digits].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                throw GiveUp()
            }
            let index = b[digits].reduce(0) { $0 * 10 + Int($1 - 0x30) }
            guard (1...99).contains(index) else { throw GiveUp() }
            frame.role = .line
            frame.lineIndex = index
        } else if equal(name, "Initial") {
            frame.role = .initial
            frame.inInitial = true
            hasInitialSection = true
        } else if equal(name, "Device") {
            frame.role = .device
        } else {
            for attribute in attributes {
                if equal(attribute.name, "perm") {
                    perm = String(decoding: b[attribute.value], as: UTF8.self)
                } else if equal(attribute.name, "access") {
                    access = String(decoding: b[attribute.value], as: UTF8.self)
                }
            }
        }
        guard frames.count < Self.maxDepth else { throw GiveUp() }
        frames.append(frame)
        textStart = p
        if selfClosing { try endElement() }
    }

    private mutating func endTag() throws(GiveUp) {
        guard let open = frames.last else { throw GiveUp() }
        let end = p
        p += 2
        let (nameStart, nameEnd) = try name()
        guard b[nameStart..<nameEnd].elementsEqual(b[open.nameStart..<open.nameEnd]) else { throw GiveUp() }
        skipBlanks()
        guard p < b.count, b[p] == UInt8(ascii: ">") else { throw GiveUp() }
        p += 1
        try endElement(textEnd: end)
    }

    /// Closes the innermost element; its text runs from `textStart` (after `carried`) to `textEnd`.
    private mutating func endElement(textEnd: Int? = nil) throws(GiveUp) {
        let frame = frames.removeLast()
        let end = textEnd ?? textStart
        if frame.role == .other && !frame.hasElementChild {
            // A leaf: a parameter. spec §2: inside <Line idx="n"> it is NAME_n.
            var name = String(decoding: b[frame.nameStart..<frame.nameEnd], as: UTF8.self)
            if let index = frame.lineIndex {
                name.append("_")
                name.append(String(index))
            }
            texts.append(textEnd.map { frame.contentStart..<$0 })
            let entry = ConfigEntry(
                name: name,
                value: leafText(end: end),
                perm: perm,
                access: access,
                line: frame.line,
                section: frame.inInitial ? .initial : .device
            )
            order.append(entry)
        } else {
            // Text in a group is ignored with a warning: libxml2's reader words that.
            carried.append(contentsOf: b[textStart..<end])
            try requireBlank()
        }
        textStart = p
    }

    /// Whether every parameter's text is text alone (no comment) on one line (a CR is always a CRLF's): see
    /// `ScannedEntries.template`.
    private var textsAreOneLineOfText: Bool {
        texts.allSatisfy { text in
            text.map { !b[$0].contains { $0 == 0x0A || $0 == UInt8(ascii: "<") } } ?? true
        }
    }

    /// A leaf's text: `carried`, then the bytes from `textStart` to `end`.
    private mutating func leafText(end: Int) -> String {
        if carried.isEmpty && (!hasCR || !b[textStart..<end].contains(0x0D)) {
            return String(decoding: b[textStart..<end], as: UTF8.self)
        }
        carried.append(contentsOf: b[textStart..<end])
        // Every CR let through is one of a CRLF, which XML reads as the LF alone.
        if hasCR { carried.removeAll { $0 == 0x0D } }
        let value = String(decoding: carried, as: UTF8.self)
        carried.removeAll(keepingCapacity: true)
        return value
    }

    /// Text up to the next `<`: plain bytes, and the five predefined entities (decoded into `carried`).
    private mutating func text() throws(GiveUp) {
        while p < b.count {
            let c = b[p]
            if c == UInt8(ascii: "<") { return }
            if c == UInt8(ascii: "&") {
                carried.append(contentsOf: b[textStart..<p])
                carried.append(try entity())
                textStart = p
                continue
            }
            if c == UInt8(ascii: "]"), p + 2 < b.count, b[p + 1] == UInt8(ascii: "]"), b[p + 2] == UInt8(ascii: ">") {
                throw GiveUp()
            }
            try character(c)
        }
    }

    /// `&amp;` `&lt;` `&gt;` `&quot;` `&apos;`; any other reference is libxml2's.
    private mutating func entity() throws(GiveUp) -> UInt8 {
        for (name, byte) in Self.entities where starts(with: name) {
            p += name.utf8.count
            return byte
        }
        throw GiveUp()
    }

    private static let entities: [(String, UInt8)] = [
        ("&amp;", UInt8(ascii: "&")), ("&lt;", UInt8(ascii: "<")), ("&gt;", UInt8(ascii: ">")),
        ("&quot;", UInt8(ascii: "\"")), ("&apos;", UInt8(ascii: "'")),
    ]

    /// Moves the pending text into `carried` (before a comment or a child element).
    private mutating func textUpToHere() {
        carried.append(contentsOf: b[textStart..<p])
        textStart = p
    }

    /// The text of a group must be layout only; otherwise libxml2's reader warns about it.
    private mutating func requireBlank() throws(GiveUp) {
        guard carried.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) else { throw GiveUp() }
        carried.removeAll(keepingCapacity: true)
    }

    // MARK: - Tokens

    /// An ASCII name: a letter or `_`, then letters, digits, `_`, `-`, `.` (no namespace prefix).
    private mutating func name() throws(GiveUp) -> (Int, Int) {
        let start = p
        guard p < b.count, isNameStart(b[p]) else { throw GiveUp() }
        p += 1
        while p < b.count, isNameStart(b[p]) || (b[p] >= 0x30 && b[p] <= 0x39) || b[p] == 0x2D || b[p] == 0x2E {
            p += 1
        }
        guard p - start <= Self.maxNameLength else { throw GiveUp() }
        return (start, p)
    }

    private func isNameStart(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F
    }

    /// A quoted attribute value without `<`, `&` or layout characters (which XML normalises): the range inside
    /// the quotes.
    private mutating func quoted() throws(GiveUp) -> Range<Int> {
        guard p < b.count, b[p] == UInt8(ascii: "\"") || b[p] == UInt8(ascii: "'") else { throw GiveUp() }
        let quote = b[p]
        p += 1
        let start = p
        while p < b.count, b[p] != quote {
            let c = b[p]
            guard c >= 0x20, c < 0x7F, c != UInt8(ascii: "<"), c != UInt8(ascii: "&") else { throw GiveUp() }
            p += 1
        }
        guard p < b.count else { throw GiveUp() }
        p += 1
        return start..<(p - 1)
    }

    /// One character of text or of a comment, starting with `c` (at `p`), and moves past it: printable ASCII, tab,
    /// LF (counted), the CR of a CRLF, or the UTF-8 of a character from U+00A0 up that XML allows. A CR on its own
    /// (which XML turns into LF), other controls, U+0080–U+009F, U+FFFE, U+FFFF and bytes that are not UTF-8 are
    /// libxml2's.
    @inline(__always) private mutating func character(_ c: UInt8) throws(GiveUp) {
        if c >= 0x20 && c < 0x7F {
            p += 1
        } else if c == 0x0A {
            line += 1
            p += 1
        } else if c == 0x09 {
            p += 1
        } else if c == 0x0D {
            try lineEndCR()
        } else {
            try utf8Sequence(c)
        }
    }

    /// The CR of a CRLF line end (Windows-made files), which XML reads as the LF alone: moves past the CR, and the LF
    /// is then counted as any other. A CR on its own (which XML also turns into an LF) is libxml2's.
    private mutating func lineEndCR() throws(GiveUp) {
        guard crlf() else { throw GiveUp() }
        p += 1
    }

    /// Whether the CR at `p` is one of a CRLF (and notes that the file has one).
    private mutating func crlf() -> Bool {
        guard p + 1 < b.count, b[p + 1] == 0x0A else { return false }
        hasCR = true
        return true
    }

    /// A well-formed UTF-8 sequence (no over-long form, no surrogate, nothing past U+10FFFF), as RFC 3629 table 3-7.
    private mutating func utf8Sequence(_ c: UInt8) throws(GiveUp) {
        let length = c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0
        guard length > 0, p + length <= b.count else { throw GiveUp() }
        let second = b[p + 1]
        let range: ClosedRange<UInt8> =
            switch c {
            case 0xC2: 0xA0...0xBF  // U+0080–U+009F: C1 controls, left to libxml2
            case 0xE0: 0xA0...0xBF
            case 0xED: 0x80...0x9F  // not the surrogates
            case 0xF0: 0x90...0xBF
            case 0xF4: 0x80...0x8F
            default: 0x80...0xBF
            }
        guard range.contains(second) else { throw GiveUp() }
        for k in 2..<length where b[p + k] & 0xC0 != 0x80 { throw GiveUp() }
        // U+FFFE and U+FFFF are not XML characters.
        if c == 0xEF && second == 0xBF && b[p + 2] >= 0xBE { throw GiveUp() }
        p += length
    }

    /// Skips spaces, tabs, LFs and CRLFs; true when it skipped any. A CR on its own stops it (and then fails where it
    /// stands).
    @discardableResult private mutating func skipBlanks() -> Bool {
        let start = p
        while p < b.count {
            let c = b[p]
            if c == 0x0A {
                line += 1
            } else if c == 0x0D {
                guard crlf() else { break }
            } else if c != 0x20 && c != 0x09 {
                break
            }
            p += 1
        }
        return p > start
    }

    /// Moves past the template's bytes from `from` up to `end`, each of its one-line comments before `end` (from
    /// `comments[next]` on) read as the scanner reads a comment, on one line, and added to `changes` when its bytes
    /// differ; false when the bytes at `p` differ or are no comment on one line.
    private mutating func skip(
        _ layout: UnsafeBufferPointer<UInt8>,
        from: inout Int,
        to end: Int,
        comments: [Range<Int>],
        _ next: inout Int,
        changes: inout [TemplateChange]
    ) -> Bool {
        while next < comments.count, comments[next].lowerBound < end {
            let comment = comments[next]
            guard skip(layout[from..<comment.lowerBound]) else { return false }
            let start = p
            do {
                try commentText()
            } catch {
                return false
            }
            guard line == 1 else { return false }
            if !Self.same(b[start..<p], layout[comment]) {
                changes.append(TemplateChange(template: comment, file: start..<p))
            }
            from = comment.upperBound
            next += 1
        }
        guard skip(layout[from..<end]) else { return false }
        from = end
        return true
    }

    /// Moves past `layout` when the bytes at `p` are the same; false otherwise.
    private mutating func skip(_ layout: Slice<UnsafeBufferPointer<UInt8>>) -> Bool {
        guard layout.count <= b.count - p, Self.same(b[p..<(p + layout.count)], layout) else { return false }
        p += layout.count
        return true
    }

    /// Whether two byte ranges hold the same bytes (`memcmp`: the layout between a fleet file's texts is most of it).
    private static func same(_ x: Slice<UnsafeBufferPointer<UInt8>>, _ y: Slice<UnsafeBufferPointer<UInt8>>) -> Bool {
        x.count == y.count
            && (x.isEmpty
                || memcmp(x.base.baseAddress! + x.startIndex, y.base.baseAddress! + y.startIndex, x.count) == 0)
    }

    private func starts(with literal: String) -> Bool {
        var q = p
        for c in literal.utf8 {
            guard q < b.count, b[q] == c else { return false }
            q += 1
        }
        return true
    }

    private func equal(_ range: Range<Int>, _ literal: StaticString) -> Bool {
        guard range.count == literal.utf8CodeUnitCount else { return false }
        let bytes = literal.utf8Start
        for (offset, index) in range.enumerated() where b[index] != bytes[offset] { return false }
        return true
    }
}
